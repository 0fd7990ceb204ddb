"""Scheduled intake: job files dropped in a folder or an S3 prefix, each run once.

A job file is YAML or JSON holding one request body in the API's own shape, or a list
of them; media references may be URLs, s3:// URIs or paths (relative ones are read
from the intake's own root). Its author is someone else: `vaceflow.jobfile` bounds it
and holds its references to the trust policy. A file's life:

    <root>/name.yaml  --claim-->  processing/name.yaml  --finish-->  done/ or failed/
                                                                    + name.yaml.result.json

Claiming is the race guard for files: a local claim is one atomic `rename`, so of two
watchers exactly one gets the file; on S3 (no rename) a claim is a conditional copy
then a delete, and a watcher that finds the source gone skips it. Two S3 watchers may
still both claim a file in a narrow window: the catalog's identity, not the file,
decides what is paid for, so the second only finds the job already claimed.

A watcher that dies mid-file leaves its claim in processing/. A claim older than the
watcher's `reclaim_after` is taken over (`stale`, `reclaim`) and run again: that
pays nothing twice, since the catalog resumes the task the dead watcher submitted or
returns the video it collected.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from vaceflow.errors import InputNotAllowed, StorageError
from vaceflow.redact import redact_text
from vaceflow.settings import Settings
from vaceflow.trust import MAX_JOB_FILE_BYTES

__all__ = [
    "DONE",
    "FAILED",
    "JOB_SUFFIXES",
    "PROCESSING",
    "RESULT_SUFFIX",
    "FileResult",
    "FolderIntake",
    "Intake",
    "JobResult",
    "Refusal",
    "S3Intake",
    "is_job_file",
    "open_intake",
    "safe_error",
]

JOB_SUFFIXES = (".json", ".yaml", ".yml")
RESULT_SUFFIX = ".result.json"
PROCESSING, DONE, FAILED = "processing", "done", "failed"
_ERROR_CHARS = 500


class Refusal(BaseModel):
    """Why the trust policy refused an input: which one, the rule, how to allow it."""

    input: str | None
    rule: str
    allow: str

    @classmethod
    def of(cls, exc: BaseException) -> Refusal | None:
        if not isinstance(exc, InputNotAllowed):
            return None
        return cls(input=exc.input_name, rule=exc.rule, allow=exc.allow)


class JobResult(BaseModel):
    """One body of a job file, as the sidecar reports it."""

    index: int
    id: str | None = None
    status: str
    output: str | None = None
    error: str | None = None
    refusal: Refusal | None = None


class FileResult(BaseModel):
    """What became of one job file: the `<name>.result.json` sidecar's content."""

    file: str
    status: Literal["done", "failed"]
    moved_to: str | None = None
    finished_at: datetime
    jobs: list[JobResult] = []
    error: str | None = None
    """Why the file itself was refused (unreadable, not a job body, not allowed)."""
    refusal: Refusal | None = None
    """When the trust policy refused it: nothing of the file was fetched or run."""

    @classmethod
    def of(
        cls, name: str, jobs: list[JobResult], error: BaseException | str | None = None
    ) -> FileResult:
        ok = error is None and bool(jobs) and all(j.status == "succeeded" for j in jobs)
        return cls(
            file=name,
            status="done" if ok else "failed",
            finished_at=datetime.now(UTC),
            jobs=jobs,
            error=safe_error(str(error)) if error else None,
            refusal=Refusal.of(error) if isinstance(error, BaseException) else None,
        )


def safe_error(message: str) -> str:
    """An error message fit for a sidecar: URLs without signatures, and short."""
    return redact_text(message)[:_ERROR_CHARS]


def is_job_file(name: str) -> bool:
    return name.lower().endswith(JOB_SUFFIXES) and not name.endswith(RESULT_SUFFIX)


class Intake(Protocol):
    """Where job files arrive. Names are file names directly under the root."""

    @property
    def base(self) -> str:
        """The root, for relative media paths."""
        ...

    def pending(self) -> list[str]:
        """Job files waiting, oldest name order."""
        ...

    def claim(self, name: str) -> bytes | None:
        """Move `name` into processing/ and return its bytes; None when another
        watcher took it first."""
        ...

    def stale(self, older_than: timedelta) -> list[str]:
        """Claims in processing/ made longer ago than `older_than` (their watcher is
        presumed dead), oldest name order."""
        ...

    def reclaim(self, name: str) -> bytes | None:
        """Take over a stale claim (its age starts again) and return its bytes; None
        when another watcher took it over or finished it first."""
        ...

    def finish(self, name: str, result: FileResult) -> str:
        """Move a claimed file to done/ or failed/ with its sidecar; where it went."""
        ...


def _sidecar(result: FileResult) -> bytes:
    return result.model_dump_json(indent=2).encode("utf-8")


class FolderIntake:
    """A local folder; claims are atomic renames (one filesystem). A claim reads at most
    `max_bytes` + 1 bytes: enough to refuse a file that is too big."""

    def __init__(self, root: Path, max_bytes: int = MAX_JOB_FILE_BYTES) -> None:
        self.root = root.expanduser().resolve()
        self.max_bytes = max_bytes

    @property
    def base(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"FolderIntake({str(self.root)!r})"

    def pending(self) -> list[str]:
        if not self.root.is_dir():
            raise StorageError(f"intake folder {self.root} does not exist")
        return sorted(p.name for p in self.root.iterdir() if p.is_file() and is_job_file(p.name))

    def claim(self, name: str) -> bytes | None:
        target = self.root / PROCESSING / name
        target.parent.mkdir(exist_ok=True)
        try:
            os.rename(self.root / name, target)  # atomic: one watcher wins
        except FileNotFoundError:
            return None
        os.utime(target)  # the claim's age, not the file's
        return self._read(target)

    def stale(self, older_than: timedelta) -> list[str]:
        folder = self.root / PROCESSING
        if not folder.is_dir():
            return []
        cutoff = datetime.now(UTC).timestamp() - older_than.total_seconds()
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and is_job_file(p.name) and p.stat().st_mtime < cutoff
        )

    def reclaim(self, name: str) -> bytes | None:
        claimed = self.root / PROCESSING / name
        taken = claimed.with_name(f".{name}.{secrets.token_hex(4)}.reclaim")
        try:
            os.rename(claimed, taken)  # atomic: one watcher takes it over
        except FileNotFoundError:
            return None
        os.utime(taken)
        os.rename(taken, claimed)
        return self._read(claimed)

    def _read(self, path: Path) -> bytes:
        with path.open("rb") as f:
            return f.read(self.max_bytes + 1)

    def finish(self, name: str, result: FileResult) -> str:
        folder = self.root / result.status
        folder.mkdir(exist_ok=True)
        dest = _free_name(folder, name)
        result = result.model_copy(update={"moved_to": str(dest)})
        tmp = folder / f".{dest.name}{RESULT_SUFFIX}.tmp"
        tmp.write_bytes(_sidecar(result))
        os.replace(tmp, folder / f"{dest.name}{RESULT_SUFFIX}")
        with suppress(FileNotFoundError):  # a stale claim another watcher finished
            os.replace(self.root / PROCESSING / name, dest)
        return str(dest)


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or with a time stamp when an earlier file of that name is there."""
    dest = folder / name
    if not dest.exists():
        return dest
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return folder / f"{Path(name).stem}.{stamp}{Path(name).suffix}"


class S3Intake:
    """An S3 prefix (`s3://bucket/prefix/`) through the core's S3 client."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, max_bytes: int = MAX_JOB_FILE_BYTES
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.max_bytes = max_bytes

    @classmethod
    def from_uri(cls, uri: str, settings: Settings) -> S3Intake:
        from vaceflow.storage.s3 import make_s3_client

        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise StorageError(f"{uri!r} is not an s3://bucket/prefix/ URI")
        return cls(make_s3_client(settings), parts.netloc, parts.path, settings.job_file_max_bytes)

    def __repr__(self) -> str:
        return f"S3Intake('s3://{self.bucket}/{self.prefix}/')"

    @property
    def base(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def pending(self) -> list[str]:
        return sorted(self._job_files(self._key("") + "/" if self.prefix else ""))

    def claim(self, name: str) -> bytes | None:
        source, target = self._key(name), self._key(PROCESSING, name)
        try:
            got, data = self._read(source)
            with self._translate("CopyObject", target):
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=target,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    CopySourceIfMatch=got["ETag"],
                )
        except StorageError as exc:
            if exc.status in (404, 412):  # gone or replaced: another watcher has it
                return None
            raise
        self._delete(source)
        return data

    def stale(self, older_than: timedelta) -> list[str]:
        cutoff = datetime.now(UTC) - older_than
        written = self._job_files(self._key(PROCESSING, "") + "/")
        return sorted(name for name, at in written.items() if at < cutoff)

    def reclaim(self, name: str) -> bytes | None:
        key = self._key(PROCESSING, name)
        try:
            got, data = self._read(key)
            # Copied onto itself with a new claimant: its LastModified (the claim's
            # age) starts again, and only if nobody did the same since we looked.
            with self._translate("CopyObject", key):
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": key},
                    CopySourceIfUnmodifiedSince=got["LastModified"],
                    Metadata={"vaceflow-claim": secrets.token_hex(4)},
                    MetadataDirective="REPLACE",
                )
        except StorageError as exc:
            if exc.status in (404, 412):
                return None
            raise
        return data

    def finish(self, name: str, result: FileResult) -> str:
        dest = self._key(result.status, name)
        result = result.model_copy(update={"moved_to": f"s3://{self.bucket}/{dest}"})
        with self._translate("PutObject", dest + RESULT_SUFFIX):
            self.client.put_object(
                Bucket=self.bucket,
                Key=dest + RESULT_SUFFIX,
                Body=_sidecar(result),
                ContentType="application/json",
            )
        source = self._key(PROCESSING, name)
        try:
            with self._translate("CopyObject", dest):
                self.client.copy_object(
                    Bucket=self.bucket, Key=dest, CopySource={"Bucket": self.bucket, "Key": source}
                )
        except StorageError as exc:
            if exc.status != 404:
                raise  # 404: a second watcher's claim, finished by the first
        self._delete(source)
        return f"s3://{self.bucket}/{dest}"

    def _job_files(self, start: str) -> dict[str, datetime]:
        """The job files directly under `start`, with when each was last written."""
        found: dict[str, datetime] = {}
        with self._translate("ListObjectsV2", start):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, Delimiter="/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(start) :]
                    if name and is_job_file(name):
                        found[name] = obj["LastModified"]
        return found

    def _read(self, key: str) -> tuple[dict[str, Any], bytes]:
        """The object's answer (its ETag, LastModified) and up to `max_bytes` + 1 of its
        bytes: enough to tell a file over the limit."""
        with self._translate("GetObject", key):
            got = self.client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = got["Body"].read(self.max_bytes + 1)
        return got, data

    def _delete(self, key: str) -> None:
        with self._translate("DeleteObject", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    @contextmanager
    def _translate(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(exc.response.get("Error", {}).get("Code") or status or "")
            if code in ("NoSuchKey", "NotFound"):
                status = 404
            raise StorageError(
                f"S3 {operation} s3://{self.bucket}/{key} failed: {code}",
                operation=operation,
                bucket=self.bucket,
                key=key,
                status=status,
                code=code,
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(
                f"S3 {operation} s3://{self.bucket}/{key} failed: {exc}",
                operation=operation,
                bucket=self.bucket,
                key=key,
                retryable=True,
            ) from exc


def open_intake(source: str, settings: Settings | None = None) -> Intake:
    """The intake for `source`: an s3://bucket/prefix/ URI or a local folder."""
    settings = settings or Settings.load()
    if source.startswith("s3://"):
        return S3Intake.from_uri(source, settings)
    return FolderIntake(Path(source), settings.job_file_max_bytes)

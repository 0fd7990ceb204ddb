"""Staging on any S3-compatible store (AWS, MinIO, SeaweedFS, Alibaba OSS in S3 mode).

Inputs go to `{prefix}/inputs/{sha256}{ext}` (HEAD before PUT: the same bytes are
stored once), outputs to `{prefix}/outputs/{job_id}/...`. The service gets a
presigned GET URL that lives as long as the job may wait, or a plain URL under
VACEFLOW_PUBLIC_BASE_URL. Credentials come from the settings when given, else from
boto3's own chain. Every call to the store is retried by boto3's standard retry mode
and by nothing above it (the Prefect tasks that stage and publish do not retry); every
botocore error is translated into a `StorageError` here, at the boundary.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)

from vaceflow.errors import ConfigError, StorageError
from vaceflow.identity import sha256_file
from vaceflow.settings import Settings
from vaceflow.storage.staged import StagedInput, content_name, content_type

__all__ = [
    "PRESIGN_MAX_SECONDS",
    "URL_TTL_MARGIN_SECONDS",
    "S3Store",
    "input_url_ttl",
    "inputs_prefix",
    "is_transient",
    "make_s3_client",
]

log = logging.getLogger(__name__)

PRESIGN_MAX_SECONDS = 7 * 24 * 3600
"""SigV4 presigned URLs cannot live longer (and not past the signing credentials)."""
URL_TTL_MARGIN_SECONDS = 15 * 60
"""Added to the wait timeout: the service may fetch an input just before we give up."""

_MB = 1024 * 1024
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden"})
_NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling"}
)


def input_url_ttl(settings: Settings) -> int:
    """Seconds an input URL lives: VACEFLOW_URL_TTL, else the wait timeout plus a margin."""
    ttl = settings.url_ttl or int(settings.wait_timeout) + URL_TTL_MARGIN_SECONDS
    return min(ttl, PRESIGN_MAX_SECONDS)


def inputs_prefix(prefix: str) -> str:
    """Where staged inputs go under `prefix` (jobs from outside may read them too)."""
    prefix = prefix.strip("/")
    return f"{prefix}/inputs" if prefix else "inputs"


def is_transient(exc: BotoCoreError | ClientError) -> bool:
    """Whether another try may succeed: the store was busy (SlowDown, 5xx), could not be
    reached, or a body broke off."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _TRANSIENT_CODES or (status is not None and status >= 500)
    transient = (EndpointConnectionError, ConnectTimeoutError, HTTPClientError, IncompleteReadError)
    return isinstance(exc, transient)


def make_s3_client(settings: Settings, *, max_attempts: int = 5) -> Any:
    """A boto3 S3 client: keys from the settings if set (the only place they are
    unwrapped), else boto3's chain; SigV4; boto3's standard retry mode, `max_attempts`
    tries of each call, the first included (1: the caller retries, as
    `vaceflow.media.sources` does). boto3's own `max_attempts` counts only the retries."""
    secret = settings.s3_secret_access_key
    token = settings.s3_session_token
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": settings.s3_addressing_style},
    )
    with _session_lock:  # botocore sessions are not thread-safe; their clients are
        return _shared_session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            config=config,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            aws_session_token=token.get_secret_value() if token else None,
            region_name=settings.s3_region,
        )


_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    """One boto3 session per process: a new one reads botocore's endpoint and service
    models again (0.2 s of CPU, a second on a busy machine) for every client. Keys go
    to each client, never onto the shared session."""
    global _session
    if _session is None:
        _session = boto3.session.Session(botocore_session=botocore.session.get_session())
    return _session


class S3Store:
    """One bucket and prefix behind one pooled boto3 client; also a `Stager`."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "vaceflow",
        url_ttl: int = 3600,
        public_base_url: str | None = None,
        create_bucket: bool = False,
        transfer: TransferConfig | None = None,
    ) -> None:
        if not 0 < url_ttl <= PRESIGN_MAX_SECONDS:
            raise ConfigError(f"URL TTL {url_ttl} s is outside 1..{PRESIGN_MAX_SECONDS} s")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url_ttl = url_ttl
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.create_bucket = create_bucket
        # Memory stays near chunksize x (concurrency + queue), whatever the file size.
        self.transfer = transfer or TransferConfig(
            multipart_threshold=16 * _MB,
            multipart_chunksize=8 * _MB,
            max_concurrency=4,
            max_io_queue=8,
            io_chunksize=256 * 1024,
        )
        self._bucket_checked = False

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.s3_bucket:
            raise ConfigError("no S3 bucket configured: set VACEFLOW_S3_BUCKET")
        return cls(
            make_s3_client(settings),
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            url_ttl=input_url_ttl(settings),
            public_base_url=settings.public_base_url,
            create_bucket=settings.s3_create_bucket,
        )

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def __repr__(self) -> str:
        return (
            f"S3Store(endpoint={self.endpoint!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"
        )

    # --- keys -------------------------------------------------------------------------
    def input_key(self, name: str) -> str:
        return f"{inputs_prefix(self.prefix)}/{name}"

    def output_key(self, job_id: str, name: str) -> str:
        base = f"{self.prefix}/outputs" if self.prefix else "outputs"
        return f"{base}/{job_id}/{name}"

    # --- the Stager interface ---------------------------------------------------------
    def stage(self, path: Path) -> StagedInput:
        """Upload `path` under its content hash unless already there; a fresh URL."""
        path = Path(path)
        sha = sha256_file(path)
        key = self.input_key(content_name(sha, path))
        size = path.stat().st_size
        ctype = content_type(path)
        if self.head(key) == size:
            log.info("input %s already staged as %s", path.name, key)
        else:
            self.upload_file(path, key, content_type=ctype, metadata={"sha256": sha})
            log.info("staged %s as %s (%d bytes)", path.name, key, size)
        url, expires_at = self.url_for(key, self.url_ttl)
        return StagedInput(
            url=url, key=key, sha256=sha, size=size, content_type=ctype, expires_at=expires_at
        )

    def discard(self, staged: Iterable[StagedInput]) -> None:
        self.delete(s.key for s in staged)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> S3Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- object operations ------------------------------------------------------------
    def ensure_bucket(self) -> None:
        """Check the bucket once; create it only when allowed, else say how to."""
        if self._bucket_checked:
            return
        try:
            with self._translate("HeadBucket"):
                self.client.head_bucket(Bucket=self.bucket)
        except StorageError as exc:
            if exc.code not in _NO_BUCKET_CODES:
                raise
            if not self.create_bucket:
                raise StorageError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}: create it, "
                    "or set VACEFLOW_S3_CREATE_BUCKET=1 to let vaceflow create it",
                    operation="HeadBucket",
                    bucket=self.bucket,
                    status=404,
                    code="NoSuchBucket",
                ) from exc
            with self._translate("CreateBucket"):
                self.client.create_bucket(Bucket=self.bucket)
            log.info("created bucket %s at %s", self.bucket, self.endpoint)
        self._bucket_checked = True

    def head(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""
        self.ensure_bucket()
        try:
            with self._translate("HeadObject", key):
                answer = self.client.head_object(Bucket=self.bucket, Key=key)
        except StorageError as exc:
            if exc.status == 404:
                return None
            raise
        return int(answer["ContentLength"])

    def upload_file(
        self, path: Path, key: str, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Streamed (multipart above the threshold): memory does not grow with the file."""
        self.ensure_bucket()
        extra = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        with self._translate("PutObject", key):
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs=extra, Config=self.transfer
            )

    def put_bytes(self, key: str, body: bytes, *, content_type: str) -> None:
        self.ensure_bucket()
        with self._translate("PutObject", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def delete(self, keys: Iterable[str]) -> None:
        objects = [{"Key": k} for k in dict.fromkeys(keys)]
        for start in range(0, len(objects), 1000):
            with self._translate("DeleteObjects"):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects[start : start + 1000]}
                )
            for err in answer.get("Errors", []):
                log.warning("could not delete %s: %s", err.get("Key"), err.get("Code"))

    def url_for(self, key: str, ttl: int) -> tuple[str, datetime | None]:
        """A URL anyone can GET: plain under the public base URL, else presigned for `ttl`."""
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(key)}", None
        ttl = min(ttl, PRESIGN_MAX_SECONDS)
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
        with self._translate("PresignGetObject", key):
            url = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl
            )
        return str(url), expires_at

    def expire_inputs_after(self, days: int) -> None:
        """A lifecycle rule deleting `{prefix}/inputs/` objects `days` after upload."""
        self.ensure_bucket()
        rule = {
            "ID": "vaceflow-expire-inputs",
            "Filter": {"Prefix": self.input_key("")},
            "Status": "Enabled",
            "Expiration": {"Days": days},
        }
        with self._translate("PutBucketLifecycleConfiguration"):
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [rule]}
            )

    # --- errors -----------------------------------------------------------------------
    @contextmanager
    def _translate(self, operation: str, key: str | None = None) -> Iterator[None]:
        """botocore's errors in, one `StorageError` that says what to fix out."""
        try:
            yield
        except S3UploadFailedError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError | BotoCoreError):
                raise self._storage_error(cause, operation, key) from exc
            raise self._storage_error(exc, operation, key) from exc
        except (ClientError, BotoCoreError) as exc:
            raise self._storage_error(exc, operation, key) from exc

    def _storage_error(self, exc: Exception, operation: str, key: str | None) -> StorageError:
        where = f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"
        ctx: dict[str, Any] = {"operation": operation, "bucket": self.bucket, "key": key}
        if isinstance(exc, NoCredentialsError):
            return StorageError(
                "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "a profile (AWS_PROFILE) or an instance role",
                **ctx,
            )
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return StorageError(
                f"cannot reach the S3 endpoint {self.endpoint} ({operation} {where}): "
                "is it running? check VACEFLOW_S3_ENDPOINT_URL",
                retryable=True,
                unreachable=True,
                **ctx,
            )
        if not isinstance(exc, ClientError):
            return StorageError(f"S3 {operation} {where} failed: {exc}", **ctx)
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or status or "")
        message = error.get("Message") or ""
        ctx |= {"status": status, "code": code}
        if code in _CREDENTIAL_CODES:
            return StorageError(
                f"S3 at {self.endpoint} refused the credentials ({code}): check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile in use)",
                **ctx,
            )
        if code in _DENIED_CODES or status == 403:
            return StorageError(
                f"S3 at {self.endpoint} denied {operation} on {where} ({code}): check the "
                "credentials and that they may use this bucket",
                **ctx,
            )
        if code in _NO_BUCKET_CODES or (status == 404 and operation == "HeadBucket"):
            ctx["code"] = "NoSuchBucket"
            return StorageError(f"bucket {self.bucket!r} does not exist at {self.endpoint}", **ctx)
        return StorageError(
            f"S3 {operation} {where} failed: {code} {message}".rstrip(),
            retryable=is_transient(exc),
            **ctx,
        )

"""Where an input comes from: a local path, an http(s) URL or an s3:// object.

Remote inputs are streamed into a work folder with a byte cap and a deadline; every
failure (404, timeout, oversize, no such key) is a `MediaError` naming the input.
httpx and boto3 errors are translated here and never leak. A fetch that failed in a way
another try may not repeat (no connection, a timeout, HTTP 5xx or 429, a body cut
short) is tried again from the start, `FETCH_RETRY`: this is the one layer that
retries fetching an input (boto3 makes one try of each call, the prepare task none).

Every reference passes the run's `TrustPolicy` first, and each redirect hop and each
connection again; under an enforced policy a local file is copied from the very file
that was opened and checked, so a path swapped after the check reads nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx

from vaceflow.errors import RETRYABLE_STATUSES, MediaError
from vaceflow.redact import redact_url
from vaceflow.retry import RetryPolicy
from vaceflow.trust import TrustPolicy

if TYPE_CHECKING:
    from vaceflow.settings import Settings

__all__ = ["FETCH_RETRY", "GIB", "MAX_REDIRECTS", "Sources", "display_ref"]

log = logging.getLogger("vaceflow.media")

GIB = 1024**3
MAX_REDIRECTS = 10
FETCH_RETRY = RetryPolicy(attempts=3, base=1.0, cap=10.0)
"""Tries of one remote input, the first included (delays of up to 1 s, then 2 s)."""


class _Transient(MediaError):
    """A failure another try may not repeat (no connection, 5xx, 429, a body cut short)."""


display_ref = redact_url
"""The name `vaceflow.media.prepare` and the CLI import it by (`vaceflow.redact`)."""


class Sources:
    """Turns input references into local files under `work_dir`."""

    def __init__(
        self,
        work_dir: Path,
        *,
        max_bytes: int = 4 * GIB,
        timeout: float = 120.0,
        s3_client: Callable[[], Any] | None = None,
        policy: TrustPolicy | None = None,
        retry: RetryPolicy = FETCH_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`s3_client` makes the boto3 client for s3:// inputs (the storage's own,
        with its endpoint and keys; one try per call: `retry` tries again here); without
        it s3:// inputs are refused. `policy`: what may be read (default: anything; the
        person running the process chose)."""
        self.work_dir = work_dir
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.s3_client = s3_client
        self.policy = policy or TrustPolicy.open()
        self.retry = retry
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, policy: TrustPolicy | None = None) -> Sources:
        """Downloads into the data folder's work/, s3:// through the storage's client."""
        from vaceflow.storage.s3 import make_s3_client

        return cls(
            settings.data_dir / "work",
            s3_client=lambda: make_s3_client(settings, max_attempts=1),
            policy=policy,
        )

    def fetch(self, ref: str, *, name: str) -> Path:
        """A local file holding the input `ref`; MediaError naming `name` when it cannot,
        InputNotAllowed when the policy forbids reading it."""
        self.policy.check(ref, name=name)
        parts = urlsplit(ref)
        if parts.scheme in ("http", "https"):
            return self._fetch_remote(ref, name, lambda: self._http_chunks(ref, name))
        if parts.scheme == "s3":
            return self._fetch_remote(
                ref, name, lambda: self._s3_chunks(parts.netloc, parts.path, name)
            )
        if parts.scheme not in ("", "file") and len(parts.scheme) > 1:
            raise MediaError(
                f"{name}: {redact_url(ref)}: unsupported scheme {parts.scheme!r} "
                "(give a path, an http(s):// URL or an s3:// URI)",
                input_name=name,
            )
        path = self.policy.check_path(
            unquote(parts.path) if parts.scheme == "file" else ref, name=name
        )
        if not path.is_file():
            raise MediaError(f"{name}: {path}: no such file", input_name=name)
        if not self.policy.enforced:
            return path  # read in place
        return self._download(ref, name, self._file_chunks(path, name))

    def _fetch_remote(self, ref: str, name: str, chunks: Callable[[], Iterator[bytes]]) -> Path:
        """`_download` of a fresh stream, again after a transient failure (`self.retry`)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._download(ref, name, chunks())
            except _Transient as exc:
                if attempt >= self.retry.attempts:
                    raise MediaError(f"{exc} ({attempt} attempts)", input_name=name) from None
                delay = self.retry.delay(attempt)
                log.warning("%s; fetching it again in %.1f s", exc, delay)
                self._sleep(delay)

    def _download(self, ref: str, name: str, chunks: Iterator[bytes]) -> Path:
        leaf = Path(unquote(urlsplit(ref).path)).name or "input"
        folder = self.work_dir / hashlib.sha256(ref.encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / leaf
        # A writer of its own: two runs fetching the same input at once (a batch, two
        # workers) each fill their own partial file, and the last complete one wins.
        partial = folder / f".{leaf}.{os.getpid()}-{threading.get_ident()}.part"
        deadline = time.monotonic() + self.timeout
        received = 0
        try:
            with partial.open("wb") as f:
                for chunk in chunks:
                    received += len(chunk)
                    if received > self.max_bytes:
                        raise MediaError(
                            f"{name}: {redact_url(ref)} is larger than "
                            f"{self.max_bytes / 1024**2:.0f} MB; refusing to download more",
                            input_name=name,
                        )
                    if time.monotonic() > deadline:
                        raise MediaError(
                            f"{name}: {redact_url(ref)}: download took over {self.timeout:g} s",
                            input_name=name,
                        )
                    f.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target

    def _file_chunks(self, path: Path, name: str) -> Iterator[bytes]:
        """The bytes of the file opened at `path`, once the opened file passed the policy."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise MediaError(f"{name}: {path}: {exc.strerror}", input_name=name) from exc
        with os.fdopen(fd, "rb") as f:
            self.policy.check_opened(fd, path, name=name)
            while chunk := f.read(1 << 20):
                yield chunk

    def _http_chunks(self, url: str, name: str) -> Iterator[bytes]:
        """The body of `url`, following redirects here so that the policy sees each hop."""
        shown = redact_url(url)
        try:
            with self.policy.http_client(name=name, timeout=min(self.timeout, 30.0)) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            hop = str(response.url.join(response.headers["location"]))
                            self.policy.check_url(hop, name=name, via=url)
                            url = hop
                            continue
                        status = response.status_code
                        if status != 200:
                            again = _Transient if status in RETRYABLE_STATUSES else MediaError
                            raise again(f"{name}: {shown}: HTTP {status}", input_name=name)
                        self._check_length(response.headers.get("content-length"), shown, name)
                        yield from response.iter_bytes(1 << 20)
                        return
                raise MediaError(
                    f"{name}: {shown}: more than {MAX_REDIRECTS} redirects", input_name=name
                )
        except httpx.TimeoutException as exc:
            raise _Transient(
                f"{name}: {shown}: timed out ({type(exc).__name__})", input_name=name
            ) from exc
        except httpx.HTTPError as exc:
            transient = isinstance(exc, httpx.TransportError) and not isinstance(
                exc, httpx.UnsupportedProtocol
            )
            again = _Transient if transient else MediaError
            raise again(f"{name}: {shown}: {type(exc).__name__}: {exc}", input_name=name) from exc

    def _s3_chunks(self, bucket: str, key_path: str, name: str) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        from vaceflow.storage.s3 import is_transient

        key = unquote(key_path.lstrip("/"))
        shown = f"s3://{bucket}/{key}"
        if self.s3_client is None:
            raise MediaError(f"{name}: {shown}: no S3 client configured", input_name=name)
        try:
            obj = self.s3_client().get_object(Bucket=bucket, Key=key)
            self._check_length(obj.get("ContentLength"), shown, name)
            yield from obj["Body"].iter_chunks(1 << 20)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            again = _Transient if is_transient(exc) else MediaError
            raise again(f"{name}: {shown}: {code}", input_name=name) from exc
        except BotoCoreError as exc:
            again = _Transient if is_transient(exc) else MediaError
            raise again(f"{name}: {shown}: {type(exc).__name__}", input_name=name) from exc

    def _check_length(self, length: object, shown: str, name: str) -> None:
        if length is not None and int(str(length)) > self.max_bytes:
            raise MediaError(
                f"{name}: {shown} is {int(str(length)) / 1024**2:.0f} MB, over the "
                f"{self.max_bytes / 1024**2:.0f} MB download cap",
                input_name=name,
            )

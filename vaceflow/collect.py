"""Fetch a task's result video: whole, verified, or not at all.

The result link is presigned (the signature is in the query string), so no header
of ours is needed and none is sent: the client is bare (no auth, `trust_env=False`).
The link is a credential for 24 h: it is redacted in every message, and httpx's own
request log line gets the same treatment (`_RedactSignedUrls`). The body streams
to a temporary file beside the destination, hashed on the way, fsynced, probed, and
only then renamed into place: a reader never sees a partial or corrupt video.

A download that failed in a way another try may not repeat (no connection, HTTP 5xx or
429, a body cut short) is tried again from scratch, `DOWNLOAD_RETRY`: this is the one
layer that retries it (the collect task does not; a run started again collects a task
the catalog shows succeeded and not collected).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from vaceflow.errors import RETRYABLE_STATUSES, DownloadFailed, MediaError, ResultExpired
from vaceflow.media.probe import MediaInfo, probe
from vaceflow.redact import redact_url
from vaceflow.retry import RetryPolicy

__all__ = ["DOWNLOAD_RETRY", "Downloaded", "download_video", "link_expiry"]

log = logging.getLogger("vaceflow.collect")

CHUNK = 1024 * 1024
DOWNLOAD_RETRY = RetryPolicy(attempts=4, base=1.0, cap=10.0)
"""Tries of one download, the first included (delays of up to 1, 2 and 4 s)."""


@dataclass(frozen=True)
class Downloaded:
    """A result video on disk, checked: an MP4 with a video stream and a duration."""

    path: Path
    sha256: str
    size_bytes: int
    info: MediaInfo


class _RedactSignedUrls(logging.Filter):
    """Drops the query string of URLs in httpx's "HTTP Request: GET <url>" lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, httpx.URL) and a.query for a in record.args
        ):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) and a.query else a
                for a in record.args
            )
        return True


_HTTPX_LOG = logging.getLogger("httpx")
if not any(isinstance(f, _RedactSignedUrls) for f in _HTTPX_LOG.filters):
    _HTTPX_LOG.addFilter(_RedactSignedUrls())


class _Transient(Exception):
    """A failure another attempt may not repeat (network, 5xx, a body cut short)."""


def download_video(
    url: str,
    dest_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    timeout: float = 60.0,
    retry: RetryPolicy = DOWNLOAD_RETRY,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> Downloaded:
    """Download `url` into `dest_dir` (as `name`, default: the link's file name).

    Raises ResultExpired when the link has expired (its `Expires` is past, or the host
    answers 403), DownloadFailed when the file cannot be fetched whole or is not a
    playable MP4; transient failures are retried from scratch first.
    """
    safe = redact_url(url)
    expiry = link_expiry(url)
    if expiry is not None and expiry <= now():
        raise ResultExpired(
            f"the result link {safe} expired at {_utc(expiry)}: result links live 24 h "
            "after the task ends, download sooner",
            url=safe,
        )
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / (name or _file_name(url))
    with httpx.Client(
        timeout=timeout, follow_redirects=True, trust_env=False, transport=transport
    ) as http:
        attempt = 0
        while True:
            attempt += 1
            try:
                return _download_once(http, url, final, safe)
            except _Transient as exc:
                if attempt >= retry.attempts:
                    raise DownloadFailed(
                        f"could not download {safe} after {attempt} attempts: {exc}", url=safe
                    ) from None
                delay = retry.delay(attempt)
                log.warning("download of %s failed (%s); retrying in %.1f s", safe, exc, delay)
                sleep(delay)


def link_expiry(url: str) -> float | None:
    """When a presigned link stops working (epoch seconds), if the link says.

    OSS V1 links carry `Expires` (epoch seconds); S3 SigV4 links carry `X-Amz-Date`
    and `X-Amz-Expires` (seconds after it).
    """
    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if query.get("expires", "").isdigit():
        return float(query["expires"])
    stamp, lifetime = query.get("x-amz-date"), query.get("x-amz-expires", "")
    if stamp and lifetime.isdigit():
        try:
            signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        return signed.timestamp() + int(lifetime)
    return None


def _download_once(http: httpx.Client, url: str, final: Path, safe: str) -> Downloaded:
    part: Path | None = None
    try:
        with http.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            status = response.status_code
            if status == 403:
                raise ResultExpired(
                    f"the result link {safe} was refused (HTTP 403): it has expired (links "
                    "live 24 h after the task ends) or its signature is not valid",
                    url=safe,
                    status=status,
                )
            if status in RETRYABLE_STATUSES:
                raise _Transient(f"HTTP {status}")
            if status != 200:
                raise DownloadFailed(f"{safe} answered HTTP {status}", url=safe, status=status)
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
            part = Path(name)
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            size = part.stat().st_size
            announced = response.headers.get("content-length")
            if announced is not None and announced.isdigit() and int(announced) != size:
                raise _Transient(f"the body broke off after {size} of {announced} bytes")
        info = _verify(part, safe)
        os.replace(part, final)
        part = None
        _fsync_dir(final.parent)
        log.info("downloaded %s to %s (%d bytes)", safe, final, size)
        info = info.model_copy(update={"path": str(final)})
        return Downloaded(path=final, sha256=digest.hexdigest(), size_bytes=size, info=info)
    except httpx.TransportError as exc:
        raise _Transient(f"{type(exc).__name__}: {_scrub(str(exc), url, safe)}") from None
    finally:
        if part is not None:
            part.unlink(missing_ok=True)


def _verify(path: Path, safe: str) -> MediaInfo:
    try:
        info = probe(path)
    except MediaError as exc:
        raise DownloadFailed(
            f"the file downloaded from {safe} is not a readable video: {exc}", url=safe
        ) from None
    problem = None
    if info.is_image or not info.is_mp4:
        problem = f"it is {info.container}/{info.codec}, not an MP4 video"
    elif not info.duration or info.duration <= 0:
        problem = "it has no duration"
    if problem:
        raise DownloadFailed(f"the file downloaded from {safe} is unusable: {problem}", url=safe)
    return info


def _file_name(url: str) -> str:
    """The link's last path segment when it is a plain `.mp4` name, else `result.mp4`."""
    last = urlsplit(url).path.rsplit("/", 1)[-1]
    return (
        last if re.fullmatch(r"[\w.-]+\.mp4", last) and not last.startswith(".") else "result.mp4"
    )


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _scrub(text: str, url: str, safe: str) -> str:
    return text.replace(url, safe)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

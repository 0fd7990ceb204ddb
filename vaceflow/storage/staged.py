"""What staging produces, and the one interface both stores implement.

A staged input is named by its content (`<sha256><ext>`): the name is ASCII whatever
the source file was called (the service refuses URLs with Chinese characters), the
same bytes are stored once, and a resumed job finds its inputs again.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from vaceflow.redact import redact_url

__all__ = [
    "OSS_RESOLVE_HEADER",
    "StagedInput",
    "Stager",
    "content_name",
    "content_type",
    "needs_oss_resolve",
]

OSS_RESOLVE_HEADER = ("X-DashScope-OssResourceResolve", "enable")
"""The submit header without which the service will not read `oss://` inputs."""

_ASCII_EXT = re.compile(r"^\.[a-z0-9]{1,10}$")


class StagedInput(BaseModel):
    """One input the service can fetch: where, until when, and how to ask for it."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(repr=False)
    """Give this to the service; it may carry a signature, so log `redacted` instead."""
    key: str
    sha256: str
    size: int
    content_type: str
    expires_at: datetime | None
    """When `url` stops working (None: a public URL, kept until the lifecycle rule)."""
    needs_oss_resolve: bool = False
    """True for `oss://` URLs: the submit must carry `OSS_RESOLVE_HEADER`."""

    @property
    def redacted(self) -> str:
        return redact_url(self.url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", self.redacted
        yield from super().__repr_args__()

    def valid_for(self, seconds: float, *, now: datetime | None = None) -> bool:
        """Whether the URL still works `seconds` from now (a resumed job's question)."""
        if self.expires_at is None:
            return True
        now = now or datetime.now(UTC)
        return (self.expires_at - now).total_seconds() >= seconds


@runtime_checkable
class Stager(Protocol):
    """Puts local files where the service can fetch them."""

    def stage(self, path: Path) -> StagedInput:
        """Upload `path` unless the same content is already there; return its URL."""
        ...

    def discard(self, staged: Iterable[StagedInput]) -> None:
        """Delete inputs a finished job no longer needs (where the store allows it)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Stager: ...

    def __exit__(self, *exc: object) -> None: ...


def needs_oss_resolve(staged: Iterable[StagedInput]) -> bool:
    """Whether a submit using these inputs must carry `OSS_RESOLVE_HEADER`."""
    return any(s.needs_oss_resolve for s in staged)


def content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def content_name(sha256: str, path: Path) -> str:
    """`<sha256><ext>`: the extension kept only when it is plain ASCII (`.PNG` -> `.png`)."""
    ext = path.suffix.lower()
    if not _ASCII_EXT.match(ext):
        ext = mimetypes.guess_extension(content_type(path)) or ""
    return f"{sha256}{ext}"

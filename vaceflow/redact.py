"""URLs as they may be shown or stored: without their query string and credentials.

A presigned S3 URL or the service's `video_url` carries its signature in the query
(`X-Amz-Signature=...`, `Signature=...`, `Expires=...`); a URL may carry a password
(`https://user:pass@host`). Every log line, error message, repr and catalog row that
names a URL goes through `redact_url` (or `redact_text` / `redact_json` around it):
they keep where a file was, never the key to it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_json", "redact_text", "redact_url"]

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def redact_url(value: str) -> str:
    """`value` without query, fragment and user info when it is a URL; else unchanged."""
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return value
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_text(text: str) -> str:
    """Every URL inside free text (an error message) stripped as `redact_url` does."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact_json(value: Any) -> Any:
    """A JSON value with every string that holds a URL stripped."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value

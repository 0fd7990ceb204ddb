"""URLs as they may be shown: a presigned URL's query string is a credential.

Every log line, error message and repr that names a URL goes through `redact_url`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """The URL without user info, query string or fragment (`...?X-Amz-Signature=` goes)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    tail = "?..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + tail

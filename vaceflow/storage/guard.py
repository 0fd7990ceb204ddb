"""Refuse, before any spend, staged URLs the service could never fetch.

The real service fetches inputs from the internet: a URL on 127.0.0.1, a private
network or a bare intranet name would only fail minutes later as `InvalidURL`. Against
an endpoint on loopback (the emulator) local URLs are fine. Which hosts are local is
`vaceflow.trust`'s rule (the same one that keeps other people's jobs off them).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from vaceflow.errors import ConfigError
from vaceflow.redact import redact_url
from vaceflow.regions import WORKSPACE_ID, Endpoint
from vaceflow.trust import is_local_host

__all__ = ["check_fetchable", "is_local_host"]


def check_fetchable(endpoint: Endpoint, urls: Iterable[str]) -> None:
    """Raise `ConfigError` for a URL the service at `endpoint` cannot fetch."""
    if endpoint.workspace_id is not None and not WORKSPACE_ID.match(endpoint.workspace_id):
        raise ConfigError(
            f"workspace id {endpoint.workspace_id!r} is not a valid host label "
            "(letters, digits, '-' and '_', at most 64): check DASHSCOPE_WORKSPACE_ID"
        )
    service_is_local = is_local_host(endpoint.host)
    for url in urls:
        if not url.isascii():
            raise ConfigError(
                f"the service refuses URLs with non-ASCII characters: {redact_url(url)}"
            )
        parts = urlsplit(url)
        if parts.scheme == "oss":
            continue
        if parts.scheme not in ("http", "https"):
            raise ConfigError(f"the service cannot fetch {redact_url(url)}: not http(s)")
        if not service_is_local and is_local_host(parts.hostname or ""):
            raise ConfigError(
                f"the service cannot fetch {redact_url(url)}; configure a public S3 endpoint "
                "(VACEFLOW_S3_ENDPOINT_URL, or VACEFLOW_PUBLIC_BASE_URL), or use "
                "VACEFLOW_STAGING=dashscope"
            )

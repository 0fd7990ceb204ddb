"""DashScope regions: base URL and model name belong together, with the key.

A Singapore key fails in Beijing and the reverse, and the model is named
`wan2.1-vace-plus` in Singapore but `wanx2.1-vace-plus` in Beijing: a `Region`
carries both, so they cannot be mixed by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from vaceflow.errors import ConfigError

__all__ = ["WORKSPACE_ID", "Endpoint", "Region", "resolve_endpoint"]

WORKSPACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Region(StrEnum):
    SINGAPORE = "singapore"
    BEIJING = "beijing"

    @property
    def base_url(self) -> str:
        return _BASE_URLS[self]

    @property
    def model(self) -> str:
        return _MODELS[self]


_BASE_URLS = {
    Region.SINGAPORE: "https://dashscope-intl.aliyuncs.com/api/v1",
    Region.BEIJING: "https://dashscope.aliyuncs.com/api/v1",
}
_MODELS = {Region.SINGAPORE: "wan2.1-vace-plus", Region.BEIJING: "wanx2.1-vace-plus"}
_ALIASES = {
    "intl": Region.SINGAPORE,
    "ap-southeast-1": Region.SINGAPORE,
    "cn": Region.BEIJING,
    "cn-beijing": Region.BEIJING,
}


@dataclass(frozen=True)
class Endpoint:
    """Where to send calls and which model name to use there."""

    base_url: str
    model: str
    workspace_id: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


def parse_region(value: str | Region) -> Region:
    if isinstance(value, Region):
        return value
    key = value.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return Region(key)
    except ValueError:
        raise ConfigError(
            f"unknown DashScope region {value!r}; use singapore (intl) or beijing (cn)"
        ) from None


def resolve_endpoint(
    *,
    region: str | Region = Region.SINGAPORE,
    base_url: str | None = None,
    workspace_id: str | None = None,
    model: str | None = None,
) -> Endpoint:
    """Pick the base URL and model name.

    `base_url` (DASHSCOPE_HTTP_BASE_URL, as the official SDK reads it) wins; else a
    workspace id selects the Singapore workspace endpoint; else the region's URL. The
    model name follows the region unless given.
    """
    reg = parse_region(region)
    if workspace_id is not None and not WORKSPACE_ID.match(workspace_id):
        raise ConfigError(
            f"workspace id {workspace_id!r} is not a valid host label "
            "(letters, digits, '-' and '_', at most 64): check DASHSCOPE_WORKSPACE_ID"
        )
    if base_url:
        url = base_url.rstrip("/")
        if not urlsplit(url).scheme.startswith("http"):
            raise ConfigError(f"DashScope base URL {base_url!r} is not an http(s) URL")
    elif workspace_id:
        if reg is not Region.SINGAPORE:
            raise ConfigError("workspace endpoints exist only for the Singapore region")
        url = f"https://{workspace_id}.ap-southeast-1.maas.aliyuncs.com/api/v1"
    else:
        url = reg.base_url
    return Endpoint(base_url=url, model=model or reg.model, workspace_id=workspace_id)

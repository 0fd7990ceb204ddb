"""Prefect's API settings as Prefect would resolve them, read without importing Prefect.

Importing Prefect takes about 2 s, and with no server named its first flow run starts a
temporary one (7 to 15 s) that nobody will look at. `vaceflow run` reads these first:
with no server named it runs the same steps without Prefect, and with one it reaches
the server's shared limits on plain HTTP and submits before Prefect is imported
(`vaceflow.cli.running`). The places read are Prefect's own, in its order: the
environment, `.env`, `prefect.toml`, `pyproject.toml` (`[tool.prefect]`), then the
active profile. Anything this cannot read for certain gives None: the caller then asks
Prefect itself, as before.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["API_FIELDS", "prefect_api_settings", "prefect_server_named"]

API_FIELDS = (
    "url",
    "key",
    "auth_string",
    "tls_insecure_skip_verify",
    "ssl_cert_file",
    "request_timeout",
)
"""The fields of Prefect's `api` settings a client of the API needs."""


def prefect_server_named(cwd: Path | None = None) -> bool:
    """True when a Prefect API URL is configured (or might be)."""
    api = prefect_api_settings(cwd)
    return api is None or bool(api.get("url"))


def prefect_api_settings(cwd: Path | None = None) -> dict[str, Any] | None:
    """The `api` settings that are set ({} for none: Prefect's ephemeral default), by
    field name, each from the first place that sets it; None when one of the places
    cannot be read for certain."""
    here = cwd or Path.cwd()
    dotenv = _dotenv(here / ".env")
    toml = _toml(here / "prefect.toml")
    pyproject = _toml(here / "pyproject.toml")
    if dotenv is None or toml is None or pyproject is None:
        return None
    project = pyproject.get("tool", {}).get("prefect", {})
    if "PREFECT_PROFILES_PATH" in dotenv or "profiles_path" in toml or "profiles_path" in project:
        return None  # a profile elsewhere: not worth reading Prefect's rules twice
    profile = _active_profile()
    if profile is None:
        return None
    found: dict[str, Any] = {}
    for field in API_FIELDS:
        name = f"PREFECT_API_{field.upper()}"
        sources: tuple[Mapping[str, Any], ...] = (
            os.environ,
            dotenv,
            {name: value} if (value := _table(toml, "api").get(field)) is not None else {},
            {name: value} if (value := _table(project, "api").get(field)) is not None else {},
            profile,
        )
        for source in sources:
            if name in source:
                found[field] = source[name]
                break
    return found


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name, {})
    return table if isinstance(table, dict) else {}


def _active_profile() -> dict[str, Any] | None:
    """The active profile's settings ({} for Prefect's default), None when unknown."""
    path = os.environ.get("PREFECT_PROFILES_PATH")
    if path is None:
        home = os.environ.get("PREFECT_HOME") or str(Path.home() / ".prefect")
        path = str(Path(home).expanduser() / "profiles.toml")
    if not Path(path).is_file():
        return {}  # Prefect's default profile: ephemeral, no server
    data = _toml(Path(path))
    if data is None:
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active")
    profile = data.get("profiles", {}).get(active) if active else None
    if profile is None:
        # One of Prefect's own profiles ("local" names a server): ask Prefect.
        return {} if active in (None, "ephemeral") else None
    return profile if isinstance(profile, dict) else None


def _toml(path: Path) -> dict[str, Any] | None:
    """The file's tables ({} when absent, None when unreadable)."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None


def _dotenv(path: Path) -> dict[str, str] | None:
    """KEY=VALUE lines ({} when absent, None when unreadable)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError):
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values

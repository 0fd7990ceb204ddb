"""Whether Prefect would report runs to a server, read without importing Prefect.

Importing Prefect takes about 2 s, and with no server named its first flow run starts a
temporary one (7 to 15 s) that nobody will look at. `vaceflow run` asks this first and,
when no server is named, runs the same steps without Prefect. The places read are
Prefect's own, in its order: the environment, `.env`, `prefect.toml`, `pyproject.toml`
(`[tool.prefect]`), then the active profile. Anything this cannot read for certain
counts as a server named: the flow then runs as before.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["prefect_server_named"]


def prefect_server_named(cwd: Path | None = None) -> bool:
    """True when a Prefect API URL is configured (or might be)."""
    here = cwd or Path.cwd()
    if os.environ.get("PREFECT_API_URL"):
        return True
    dotenv = _dotenv(here / ".env")
    toml = _toml(here / "prefect.toml")
    pyproject = _toml(here / "pyproject.toml")
    if dotenv is None or toml is None or pyproject is None:
        return True
    project = pyproject.get("tool", {}).get("prefect", {})
    if dotenv.get("PREFECT_API_URL") or toml.get("api", {}).get("url"):
        return True
    if project.get("api", {}).get("url"):
        return True
    if "PREFECT_PROFILES_PATH" in dotenv or "profiles_path" in toml or "profiles_path" in project:
        return True  # a profile elsewhere: not worth reading Prefect's rules twice
    return _profile_names_a_server()


def _profile_names_a_server() -> bool:
    path = os.environ.get("PREFECT_PROFILES_PATH")
    if path is None:
        home = os.environ.get("PREFECT_HOME") or str(Path.home() / ".prefect")
        path = str(Path(home).expanduser() / "profiles.toml")
    if not Path(path).is_file():
        return False  # Prefect's default profile: ephemeral, no server
    data = _toml(Path(path))
    if data is None:
        return True
    active = os.environ.get("PREFECT_PROFILE") or data.get("active")
    profile = data.get("profiles", {}).get(active) if active else None
    if profile is None:
        return active not in (None, "ephemeral")  # one of Prefect's own ("local": yes)
    return bool(profile.get("PREFECT_API_URL"))


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

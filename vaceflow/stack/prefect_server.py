"""Prefect's own server, work pool and process workers, driven through the `prefect` CLI
and the server's REST API (the core never imports prefect).

Workers heartbeat every few seconds and the server checks for silent ones as often,
so a dead worker shows OFFLINE in the pool within about 20 s instead of 2 minutes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from vaceflow.errors import StackError

__all__ = [
    "HEARTBEAT_SECONDS",
    "POOL",
    "WorkerSeen",
    "api_answers",
    "ensure_pool",
    "pool_workers",
    "server_command",
    "server_env",
    "without_prefect",
    "worker_command",
    "worker_env",
    "worker_statuses",
]

POOL = "vaceflow"
HEARTBEAT_SECONDS = 5


def _prefect() -> list[str]:
    """The `prefect` CLI of this very environment (not whatever is first on PATH)."""
    return [sys.executable, "-m", "prefect"]


def without_prefect(env: Mapping[str, str]) -> dict[str, str]:
    """`env` less any PREFECT_* setting that could point a process at another server."""
    return {k: v for k, v in env.items() if not k.startswith("PREFECT_")}


def server_command(port: int) -> list[str]:
    return [*_prefect(), "server", "start", "--port", str(port), "--host", "127.0.0.1"]


def server_env(
    base: Mapping[str, str], home: Path, database_url: str | None, port: int | None = None
) -> dict[str, str]:
    """SQLite in `home` unless given a database URL (the team's PostgreSQL). With the
    server's `port`, its UI calls the API there (else it calls the default port 4200)."""
    env = without_prefect(base) | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": str(HEARTBEAT_SECONDS),
    }
    if database_url is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    if port is not None:
        env["PREFECT_SERVER_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    return env


def api_answers(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_pool(api_url: str, pool: str, env: Mapping[str, str]) -> None:
    """Create the process work pool unless it exists (its job template left as it is)."""
    try:
        found = httpx.get(f"{api_url}/work_pools/{pool}", timeout=10.0).status_code
    except httpx.HTTPError as exc:
        raise StackError(f"the Prefect API at {api_url} did not answer: {exc}") from None
    if found == 200:
        return
    out = subprocess.run(
        [*_prefect(), "work-pool", "create", pool, "--type", "process"],
        env=dict(env) | {"PREFECT_API_URL": api_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise StackError(f"could not create the work pool {pool!r}:\n{out.stdout[-1500:]}")


def worker_command(pool: str, name: str) -> list[str]:
    return [*_prefect(), "worker", "start", "--pool", pool, "--type", "process", "--name", name]


def worker_env(base: Mapping[str, str], api_url: str, home: Path) -> dict[str, str]:
    return without_prefect(base) | {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home),
        "PREFECT_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    }


@dataclass(frozen=True)
class WorkerSeen:
    """A worker as the server sees it."""

    status: str
    """ONLINE or OFFLINE"""
    last_heartbeat: datetime | None


def pool_workers(api_url: str, pool: str) -> dict[str, WorkerSeen]:
    """Each worker the server knows in `pool`, by name ({} if the server does not answer)."""
    try:
        reply = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json={}, timeout=5.0)
    except httpx.HTTPError:
        return {}
    if reply.status_code != 200:
        return {}
    return {
        str(w["name"]): WorkerSeen(
            str(w["status"]),
            datetime.fromisoformat(w["last_heartbeat_time"]) if w["last_heartbeat_time"] else None,
        )
        for w in reply.json()
    }


def worker_statuses(api_url: str, pool: str) -> dict[str, str]:
    """name -> ONLINE / OFFLINE."""
    return {name: seen.status for name, seen in pool_workers(api_url, pool).items()}

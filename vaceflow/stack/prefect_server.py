"""Prefect's own server, work pool and process workers, driven through the `prefect` CLI
and the server's REST API (the core never imports prefect).

Workers heartbeat every few seconds and the server checks for silent ones as often,
so a dead worker shows OFFLINE in the pool within about 20 s instead of 2 minutes.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from vaceflow.errors import StackError
from vaceflow.heartbeat import WATCHED_ENV, WATCHED_TAG
from vaceflow.stack.processes import http

__all__ = [
    "HEARTBEAT_SECONDS",
    "POOL",
    "RetryBusy",
    "WorkerSeen",
    "api_answers",
    "ensure_pool",
    "ensure_zombie_watch",
    "pool_workers",
    "server_command",
    "server_env",
    "without_prefect",
    "worker_command",
    "worker_env",
    "zombie_watch",
]

POOL = "vaceflow"
HEARTBEAT_SECONDS = 5
SILENT_SECONDS = 75
"""A flow run silent this long (two beats and a half) is marked CRASHED."""
ZOMBIE_WATCH = "vaceflow: crash flow runs whose heartbeat stopped"
RUNS_PER_WORKER = 3
"""Flow runs one worker of the team stack runs at once. Each is a process that spends
seconds of CPU starting Prefect: on a laptop more would only queue for the cores, and a
bound per worker leaves the next runs to whichever worker has room."""


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
        # a run refused an in-flight slot asks again within 2 s, not up to 30 s: a slot
        # freed by a task that ended is taken at once (real tasks end minutes apart)
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
    }
    if database_url is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    if port is not None:
        env["PREFECT_SERVER_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    return env


def api_answers(api_url: str) -> bool:
    try:
        return http().get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_pool(api_url: str, pool: str, env: Mapping[str, str]) -> None:
    """Create the process work pool unless it exists (its job template left as it is).

    Its runs start with this environment's `python -m prefect.engine`: one process per
    flow run. Left blank, Prefect 3.9's process worker starts three (a supervisor, a
    workspace resolver, then the run), each importing Prefect: about twice the CPU per
    job, which on a laptop's cores is most of a small job's cost. The default template
    comes from this environment's Prefect (its CLI); the pool is made through the API.
    """
    try:
        if http().get(f"{api_url}/work_pools/{pool}").status_code == 200:
            return
        out = subprocess.run(
            [*_prefect(), "work-pool", "get-default-base-job-template", "--type", "process"],
            env=dict(env) | {"PREFECT_API_URL": api_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        template = json.loads(out.stdout)
        template["variables"]["properties"]["command"]["default"] = shlex.join(
            [sys.executable, "-m", "prefect.engine"]
        )
        made = http().post(
            f"{api_url}/work_pools/",
            json={"name": pool, "type": "process", "base_job_template": template},
        )
        made.raise_for_status()
    except (httpx.HTTPError, subprocess.SubprocessError, ValueError) as exc:
        detail = str(getattr(exc, "stderr", None) or exc)[-1500:]
        raise StackError(
            f"could not create the work pool {pool!r} at {api_url}: {detail}"
        ) from None


def zombie_watch(silent_seconds: float = SILENT_SECONDS) -> dict[str, object]:
    """The automation Prefect's guide on zombie flows describes, narrowed to the runs of
    vaceflow's deployments.

    A worker that dies (a killed process, a lost machine) takes its flow runs with it,
    and the server would show them RUNNING for ever. A watched run says it is alive
    every 30 s (`vaceflow.heartbeat`); one silent for `silent_seconds` after it went PENDING,
    RUNNING or beat is set CRASHED, so whoever waits on it (`flows.pool.run_on_pool`)
    hands its job to the pool again: a process killed while it was still starting
    included. Only runs tagged `WATCHED_TAG` are followed: every other flow run on the
    server (a `vaceflow run` from a laptop, a pipeline's own flows) beats every 180 s
    by Prefect's default, and the guide's watch over every run would crash it mid-run.
    """
    return {
        "name": ZOMBIE_WATCH,
        "description": "A vaceflow deployment's run that stopped sending heartbeats lost "
        "its process.",
        "enabled": True,
        "trigger": {
            "type": "event",
            "match": {"prefect.resource.id": "prefect.flow-run.*"},
            "match_related": {
                "prefect.resource.role": "tag",
                "prefect.resource.id": f"prefect.tag.{WATCHED_TAG}",
            },
            "after": [f"prefect.flow-run.{s}" for s in ("heartbeat", "Pending", "Running")],
            "expect": [
                *(f"prefect.flow-run.{s}" for s in ("heartbeat", "Running", "Scheduled")),
                *(f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled", "Crashed")),
            ],
            "for_each": ["prefect.resource.id"],
            "posture": "Proactive",
            "threshold": 1,
            "within": silent_seconds,
        },
        "actions": [
            {
                "type": "change-flow-run-state",
                "state": "CRASHED",
                "message": f"No heartbeat for {silent_seconds:g} s: its process is gone.",
            }
        ],
    }


class RetryBusy(httpx.BaseTransport):
    """Sends a request again while the server says it is busy: a Prefect server on
    SQLite answers 503 when another write holds the database, as every Prefect client
    knows (it tries again)."""

    def __init__(self, inner: httpx.BaseTransport, tries: int = 20) -> None:
        self._inner = inner
        self._tries = tries

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(1, self._tries):
            response = self._inner.handle_request(request)
            if response.status_code != 503:
                return response
            response.close()
            time.sleep(0.1 * attempt)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def ensure_zombie_watch(api_url: str, silent_seconds: float = SILENT_SECONDS) -> None:
    """Make the zombie watch on the server, or bring one an older vaceflow made up to
    date (it followed every flow run)."""
    automation = zombie_watch(silent_seconds)
    api = httpx.Client(timeout=10.0, transport=RetryBusy(httpx.HTTPTransport()))
    try:
        found = api.post(
            f"{api_url}/automations/filter",
            json={"automations": {"name": {"any_": [ZOMBIE_WATCH]}}},
        )
        found.raise_for_status()
        made = found.json()
        if not made:
            api.post(f"{api_url}/automations/", json=automation).raise_for_status()
        elif any(_differs(old, automation) for old in made):
            for old in made[1:]:
                api.delete(f"{api_url}/automations/{old['id']}").raise_for_status()
            api.put(f"{api_url}/automations/{made[0]['id']}", json=automation).raise_for_status()
    except httpx.HTTPError as exc:
        raise StackError(f"could not make the zombie-run automation at {api_url}: {exc}") from None
    finally:
        api.close()


def _differs(made: dict[str, object], wanted: dict[str, object]) -> bool:
    trigger, want = made.get("trigger"), wanted["trigger"]
    if not isinstance(trigger, dict) or not isinstance(want, dict):
        return True
    return any(
        trigger.get(key) != value
        if not isinstance(value, list)
        else sorted(trigger.get(key) or []) != sorted(value)
        for key, value in want.items()
    )


def worker_command(pool: str, name: str) -> list[str]:
    return [
        *_prefect(),
        *("worker", "start", "--pool", pool, "--type", "process", "--name", name),
        *("--limit", str(RUNS_PER_WORKER)),
    ]


def worker_env(base: Mapping[str, str], api_url: str, home: Path) -> dict[str, str]:
    return (
        without_prefect(base)
        | {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home),
            "PREFECT_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        }
        | WATCHED_ENV
    )


@dataclass(frozen=True)
class WorkerSeen:
    """A worker as the server sees it."""

    status: str
    """ONLINE or OFFLINE"""
    last_heartbeat: datetime | None


def pool_workers(api_url: str, pool: str) -> dict[str, WorkerSeen]:
    """Each worker the server knows in `pool`, by name ({} if the server does not answer)."""
    try:
        reply = http().post(f"{api_url}/work_pools/{pool}/workers/filter", json={}, timeout=5.0)
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

"""The team stack's zombie watch, on a real Prefect server with its trigger services.

It sets CRASHED a run of vaceflow's deployments whose process is gone, even one killed
while it was starting (PENDING, no heartbeat yet), and never a flow run of anyone else:
a `vaceflow run` from a laptop or a pipeline's own flow beats every 180 s by Prefect's
default, and the watch an older vaceflow made (over every run) crashed them mid-run.
The window is 10 s here (the least Prefect allows) instead of 75 s; the server
evaluates it every few seconds.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from vaceflow.heartbeat import WATCHED_TAG
from vaceflow.stack.prefect_server import (
    ZOMBIE_WATCH,
    RetryBusy,
    ensure_zombie_watch,
    zombie_watch,
)

SILENT = 10.0  # the least a proactive trigger allows


def test_the_watch_crashes_a_silent_vaceflow_run_and_leaves_every_other_run_be(
    prefect_api: str,
) -> None:
    api = httpx.Client(
        base_url=prefect_api.rstrip("/") + "/",
        timeout=30,
        transport=RetryBusy(httpx.HTTPTransport()),  # 503s of a SQLite server under load
    )
    old = zombie_watch(SILENT)  # what an older vaceflow made: every flow run, after a beat
    trigger: dict[str, Any] = dict(old["trigger"])  # type: ignore[call-overload]
    trigger.pop("match_related", None)
    trigger["after"] = ["prefect.flow-run.heartbeat"]
    api.post("automations/", json=old | {"trigger": trigger}).raise_for_status()
    try:
        ensure_zombie_watch(prefect_api, silent_seconds=SILENT)  # brought up to date
        made = api.post(
            "automations/filter", json={"automations": {"name": {"any_": [ZOMBIE_WATCH]}}}
        ).json()
        assert len(made) == 1

        flow = api.post("flows/", json={"name": "zombie-watch-probe"}).json()["id"]
        starting = _run(api, flow, [WATCHED_TAG], "PENDING")  # its process died starting
        laptop = _run(api, flow, [], "RUNNING")  # a healthy run beating every 180 s
        _beat(api, laptop)

        deadline = time.monotonic() + 120
        while _state(api, starting) != "CRASHED":
            assert time.monotonic() < deadline, "the silent vaceflow run was never crashed"
            time.sleep(1)
        # Had the watch followed it, the other run (its one beat a moment younger than
        # the crashed run's PENDING) would be crashed within the server's next look or
        # two (every few seconds): give it one whole window more.
        time.sleep(SILENT)
        assert _state(api, laptop) == "RUNNING"
    finally:
        for automation in api.post(
            "automations/filter", json={"automations": {"name": {"any_": [ZOMBIE_WATCH]}}}
        ).json():
            api.delete(f"automations/{automation['id']}")
        api.close()


def _run(api: httpx.Client, flow: str, tags: list[str], state: str) -> str:
    made = api.post(
        "flow_runs/", json={"flow_id": flow, "tags": tags, "state": {"type": "SCHEDULED"}}
    )
    made.raise_for_status()
    run: str = made.json()["id"]
    for step in ("PENDING", "RUNNING")[: ("PENDING", "RUNNING").index(state) + 1]:
        api.post(
            f"flow_runs/{run}/set_state", json={"state": {"type": step}, "force": True}
        ).raise_for_status()
    return run


def _beat(api: httpx.Client, run: str) -> None:
    event = {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": "prefect.flow-run.heartbeat",
        "resource": {"prefect.resource.id": f"prefect.flow-run.{run}"},
        "related": [],
    }
    api.post("events", json=[event]).raise_for_status()


def _state(api: httpx.Client, run: str) -> str:
    answer = api.get(f"flow_runs/{run}")
    answer.raise_for_status()
    return str(answer.json()["state"]["type"])

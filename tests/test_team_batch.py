"""A batch through the team stack's work pool: two process workers, one Prefect server on
PostgreSQL, the catalog on PostgreSQL, one account's in-flight limit shared by all.

Each job is one flow run of a `vace_job` deployment (from the project's source) that
whichever worker polls first takes. What a team would check is asserted: the service
saw each job once, never more than the limit at once, the catalog has every job
succeeded, and the work really spread over both workers, even when one dies mid-batch.
"""

from __future__ import annotations

import contextvars
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from flows.pool import PoolOutcome, run_on_pool
from tests.fixtures_emulator import StartEmulator, emulator_state, set_latency
from tests.fixtures_team import TeamStack
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobRecord, JobStatus
from vaceflow.emulator import EmulatorServer
from vaceflow.jobs import Job, parse_job
from vaceflow.limits import ACCOUNT
from vaceflow.stack.prefect_server import RUNS_PER_WORKER

pytestmark = pytest.mark.team  # `-m "not team"` skips the slowest part of the suite

PROJECT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "vace_job/team-batch"
IN_FLIGHT = 3
JOBS = int(os.environ.get("VACEFLOW_TEAM_BATCH_JOBS", "8"))
"""Each job is a flow-run process on a worker (seconds of CPU to start Prefect and the
flow). Both workers take jobs whatever the timing: the pool is handed twice IN_FLIGHT
runs at once, more than one worker runs (`RUNS_PER_WORKER`)."""


@pytest.fixture(scope="module")
def pool_api(team_stack: TeamStack) -> Iterator[str]:
    """This process talks to the team's Prefect server; `vace_job` is deployed on its pool."""
    from prefect import Flow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.runtime import apply_account_limits

    with temporary_settings(updates={PREFECT_API_URL: team_stack.prefect_api_url}):
        flow: Any = Flow.from_source(source=str(PROJECT), entrypoint="flows/job.py:vace_job")
        flow.deploy(name="team-batch", work_pool_name=team_stack.pool, print_next_steps=False)
        # as its owner sets the account's limits (VACEFLOW_ACCOUNT__IN_FLIGHT, `deploy`)
        apply_account_limits(replace(ACCOUNT, in_flight=IN_FLIGHT))
        yield team_stack.prefect_api_url


@pytest.fixture
def service(start_emulator: StartEmulator, team_stack: TeamStack) -> EmulatorServer:
    """An emulator of our own (answers in ~1.5 s, room for more than the limit at once)
    with the stack's key: the runs are pointed at it by URL alone, no secret passed."""
    key = team_stack.state.api_key.get_secret_value()
    return start_emulator(api_key=key, latency=1.5, concurrency=10, submit_qps=0)


def _jobs(clip: Path, count: int) -> tuple[str, list[Job]]:
    tag = f"pool-{secrets.token_hex(3)}"
    jobs = [
        parse_job(
            {
                "input": {
                    "function": "video_outpainting",
                    "prompt": f"{tag} job {i}",
                    "video_url": str(clip),
                }
            }
        )
        for i in range(count)
    ]
    return tag, jobs


def _rows(team_stack: TeamStack, tag: str) -> list[JobRecord]:
    with Catalog(team_stack.catalog_url) as catalog:
        return [r for r in catalog.list_jobs(limit=None) if r.prompt.startswith(f"{tag} ")]


def _taken(api_url: str) -> dict[str, set[UUID]]:
    """worker name -> every flow run it took, from the `prefect.worker.submitted-flow-run`
    events the workers emit."""
    taken: dict[str, set[UUID]] = {}
    body: dict[str, Any] | None = {
        "filter": {"event": {"name": ["prefect.worker.submitted-flow-run"]}},
        "limit": 50,
    }
    url: str | None = f"{api_url}/events/filter"
    while url is not None:
        page = httpx.post(url, json=body, timeout=30) if body else httpx.get(url, timeout=30)
        page.raise_for_status()
        data = page.json()
        for event in data["events"]:
            runs = taken.setdefault(event["resource"]["prefect.resource.name"], set())
            for related in event["related"]:
                rid = related["prefect.resource.id"]
                if rid.startswith("prefect.flow-run."):
                    runs.add(UUID(rid.removeprefix("prefect.flow-run.")))
        url, body = data.get("next_page"), None
    return taken


def _workers_of(api_url: str, flow_run_ids: set[UUID]) -> dict[str, set[UUID]]:
    """worker name -> which of these runs it took (the server stores events a moment
    after they happen: wait until every run is accounted for)."""
    deadline = time.monotonic() + 60
    while True:
        taken = {name: runs & flow_run_ids for name, runs in _taken(api_url).items()}
        if set().union(*taken.values(), set()) >= flow_run_ids or time.monotonic() > deadline:
            return taken
        time.sleep(1.0)


def _start_times(api_url: str, flow_run_ids: set[UUID]) -> list[float]:
    """When each flow run started running (epoch seconds), from the server."""
    times = []
    for run_id in flow_run_ids:
        run = httpx.get(f"{api_url}/flow_runs/{run_id}", timeout=30).raise_for_status().json()
        times.append(datetime.fromisoformat(run["start_time"]).timestamp())
    return times


def _peak_in_flight(tasks: list[dict[str, Any]]) -> int:
    """Most tasks submitted and not yet ended at one moment, from the emulator's times."""
    edges = sorted([(t["submit_time"], 1) for t in tasks] + [(t["end_time"], -1) for t in tasks])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


@pytest.mark.timeout(900)
def test_batch_spreads_over_both_workers_within_the_limit(
    team_stack: TeamStack, pool_api: str, service: EmulatorServer, media: MediaFactory
) -> None:
    assert 2 * IN_FLIGHT > RUNS_PER_WORKER, "one worker could take every run handed out"
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="pool")
    tag, jobs = _jobs(clip, JOBS)
    started = time.monotonic()
    outcomes = run_on_pool(
        DEPLOYMENT,
        jobs,
        job_variables={"env": {"DASHSCOPE_HTTP_BASE_URL": service.base_url}},
        timeout_seconds=840,
    )
    print(f"{JOBS} jobs through the pool in {time.monotonic() - started:.0f} s")
    assert [o.ok for o in outcomes] == [True] * JOBS
    state = emulator_state(service)
    assert state["counters"]["submissions"] == JOBS
    assert _peak_in_flight(state["tasks"]) <= IN_FLIGHT
    runs = {run for o in outcomes for run in o.flow_run_ids}
    taken = _workers_of(pool_api, runs)
    print({name: len(r) for name, r in taken.items()})
    assert {name for name, runs in taken.items() if runs} == set(team_stack.workers)
    assert set().union(*taken.values()) == runs
    rows = _rows(team_stack, tag)
    assert len(rows) == JOBS
    assert {r.status for r in rows} == {JobStatus.SUCCEEDED}


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_batch_costs_no_second_submission(
    team_stack: TeamStack, pool_api: str, start_emulator: StartEmulator, media: MediaFactory
) -> None:
    """worker-1 dies (SIGKILL, with the runs it started) while its runs wait on the
    service: the server's zombie-run automation sets them CRASHED when their heartbeats
    stop, their jobs go to the pool again, worker-2 takes them, and the new runs resume
    the recorded tasks instead of paying."""
    key = team_stack.state.api_key.get_secret_value()
    # Tasks stay RUNNING until the test lets them end: worker-1's runs are still waiting
    # on the service when it dies, however slow the machine.
    service = start_emulator(api_key=key, latency=3600, concurrency=10, submit_qps=0)
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="pool")
    count = 6
    tag, jobs = _jobs(clip, count)
    outcomes: list[PoolOutcome] = []
    failure: list[BaseException] = []

    def batch() -> None:
        try:
            outcomes.extend(
                run_on_pool(
                    DEPLOYMENT,
                    jobs,
                    job_variables={"env": {"DASHSCOPE_HTTP_BASE_URL": service.base_url}},
                    timeout_seconds=840,
                )
            )
        except BaseException as exc:
            failure.append(exc)

    assert team_stack.kill_worker("worker-2")  # so the first runs all go to worker-1
    # The thread talks to the same Prefect server (the settings live in a contextvar).
    runner = threading.Thread(target=contextvars.copy_context().run, args=(batch,))
    runner.start()
    try:
        # Every run worker-1 took waits on the service: each has been beating for seconds.
        # (A run killed while its process still starts never beats, and the zombie watch,
        # which starts at a run's first heartbeat, would never set it CRASHED.)
        deadline = time.monotonic() + 300
        while emulator_state(service)["running"] < RUNS_PER_WORKER:
            assert runner.is_alive(), failure
            assert time.monotonic() < deadline, "worker-1's runs did not all reach the service"
            time.sleep(0.2)
        team_stack.revive()  # worker-2 is back
        paid = {r.id: r.task_id for r in _rows(team_stack, tag) if r.task_id}
        assert team_stack.kill_worker("worker-1", hard=True)
        killed_at = time.time()
        set_latency(service, 2.0)  # from now on every task ends, the held ones too
    finally:
        runner.join(timeout=900)
        team_stack.revive()  # worker-1 too, for whatever runs next
    assert not failure, failure
    assert [o.ok for o in outcomes] == [True] * count
    assert emulator_state(service)["counters"]["submissions"] == count
    rerun = {o.index for o in outcomes if len(o.flow_run_ids) > 1}
    assert rerun, "no run crashed with worker-1"
    rows = _rows(team_stack, tag)
    assert len(rows) == count
    assert {r.status for r in rows} == {JobStatus.SUCCEEDED}
    assert all(r.attempts == 1 for r in rows)
    assert {r.id: r.task_id for r in rows if r.id in paid} == paid  # resumed, not paid again
    reruns = {o.flow_run_ids[-1] for o in outcomes if o.index in rerun}
    assert {name for name, runs in _workers_of(pool_api, reruns).items() if runs} == {"worker-2"}
    started = _start_times(pool_api, reruns)
    print(
        f"worker-1 killed: its {len(reruns)} job(s) running again on worker-2 after "
        f"{min(started) - killed_at:.0f}-{max(started) - killed_at:.0f} s"
    )

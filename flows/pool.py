"""Run many jobs on a work pool: each job one flow run of a `vace_job` deployment.

Runs are created (as `run_deployment(..., timeout=0)` does) a few at a time, a window,
so the workers start a few subprocesses at once rather than one per job, and whichever
worker polls next takes the next run. However many run at once, the jobs in flight stay
within the account's bound on the server, which every worker shares (`tasks.runtime`).
Prefect does not run a crashed flow run again by itself: a run that ends CRASHED has its
job handed to the pool once more. That is safe because the catalog row decides: the new
run resumes the task the crashed one recorded, or collects its video, instead of paying
again. A run whose worker died outright is set CRASHED by the server's zombie-run
automation once its heartbeats stop, or never start (`vaceflow.heartbeat`,
`vaceflow.stack.prefect_server.zombie_watch`, made by `vaceflow dev up`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType

from tasks.runtime import RUNNING_LIMIT, ensure_account_limits
from vaceflow.errors import VaceflowError
from vaceflow.heartbeat import WATCHED_ENV, WATCHED_TAG
from vaceflow.jobs import Job
from vaceflow.settings import Settings

__all__ = ["PoolOutcome", "run_on_pool"]


@dataclass(frozen=True)
class PoolOutcome:
    """One job's flow runs on the pool (more than one when a run crashed) and how the
    last one ended."""

    index: int
    flow_run_ids: tuple[UUID, ...]
    state: StateType

    @property
    def ok(self) -> bool:
        return self.state is StateType.COMPLETED


def run_on_pool(
    deployment: str,
    jobs: Sequence[Job],
    *,
    window: int | None = None,
    reruns: int = 1,
    job_variables: Mapping[str, Any] | None = None,
    poll_seconds: float = 1.0,
    timeout_seconds: float | None = None,
) -> list[PoolOutcome]:
    """Run every job as a flow run of `deployment` ("flow/name"); one outcome per job.

    Args:
        window: Flow runs handed to the pool and not yet ended (default: twice the
            account's in-flight bound on the server, so the next runs are ready while
            others wait).
        reruns: How often a job whose run crashed is handed to the pool again.
        job_variables: The pool's job variables for every run (e.g. `env`); no secrets:
            the Prefect UI shows them. Each run's `env` also gets the heartbeat the
            zombie watch expects, and each run its tag (`vaceflow.heartbeat`), whatever
            the deployment carries.
        timeout_seconds: Give up (VaceflowError) when the runs take longer in all.
    """
    ensure_account_limits(Settings.load().account)  # on a server nobody has set up yet
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    # Each run is followed by the zombie watch (its tag), so it beats as the watch expects.
    variables = dict(job_variables or {})
    variables["env"] = dict(variables.get("env") or {}) | WATCHED_ENV
    todo = deque(range(len(jobs)))
    runs: dict[int, list[UUID]] = {i: [] for i in range(len(jobs))}
    live: dict[UUID, int] = {}
    ended: dict[int, StateType] = {}
    with get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(deployment)
        width = window or 2 * client.read_global_concurrency_limit_by_name(RUNNING_LIMIT).limit
        while todo or live:
            while todo and len(live) < width:
                i = todo.popleft()
                run = client.create_flow_run_from_deployment(
                    target.id,
                    parameters={"job": jobs[i].to_body()},
                    job_variables=variables,
                    tags=[WATCHED_TAG],
                )
                runs[i].append(run.id)
                live[run.id] = i
            time.sleep(poll_seconds)
            if deadline is not None and time.monotonic() > deadline:
                raise VaceflowError(
                    f"{len(live) + len(todo)} of {len(jobs)} jobs not done within "
                    f"{timeout_seconds:.0f} s on {deployment}"
                )
            seen = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(live)))
            )
            for flow_run in seen:
                state = flow_run.state
                if state is None or not state.is_final():
                    continue
                i = live.pop(flow_run.id)
                if state.is_crashed() and len(runs[i]) <= reruns:
                    todo.appendleft(i)
                else:
                    ended[i] = state.type
    return [PoolOutcome(i, tuple(runs[i]), ended[i]) for i in range(len(jobs))]

"""`vace_batch`: many jobs at once, within the account's limits, each reported alone.

Every job runs as its own `vace_job` subflow (so each has its run, artifacts and
event), all in the batch's runtime (`tasks.runtime`): at most the account's bound are
submitted and not yet ended at any moment (with a Prefect server, across every worker),
and at most `max_in_flight` of this batch when it asks for fewer. One job's failure
never stops the others.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from prefect import State, flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from flows.job import vace_job
from tasks.runtime import flow_runtime
from tasks.trust import policy_scope, run_policy
from vaceflow.jobs import Job
from vaceflow.options import WAIT_TIMEOUT_MINUTES
from vaceflow.shutdown import install as hold_stops_while_submitting

__all__ = ["JobOutcome", "vace_batch"]


class JobOutcome(BaseModel):
    """One job's result in a batch."""

    index: int
    function: str
    ok: bool
    job_id: str | None = None
    status: str
    output: str | None = None
    error: str | None = None


ORCHESTRATION_RETRIES = (5.0, 20.0)
"""Pauses before running a job again whose run the Prefect API broke off (a busy SQLite
server answers 503 even after the client's own retries). Safe: the catalog row decides,
so the new run resumes the recorded task or collects its video; it never pays again."""


def _orchestration_error(exc: BaseException) -> bool:
    """An error of the Prefect API itself (5xx, no connection), not of the job."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.HTTPStatusError) and seen.response.status_code >= 500:
            return str(seen.request.url).startswith(_api_url())
        if isinstance(seen, httpx.TransportError) and seen.request is not None:
            return str(seen.request.url).startswith(_api_url())
        seen = seen.__cause__ or seen.__context__
    return False


def _api_url() -> str:
    from prefect.settings import get_current_settings

    return str(get_current_settings().api.url or "\0")


def _worth_running_again(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Prefect's `retry_condition_fn`: only a run the Prefect API broke off is run again."""
    try:
        state.result()
    except Exception as exc:
        return _orchestration_error(exc)
    return False


@task(
    name="batch-job",
    task_run_name="job {index}",
    cache_policy=NO_CACHE,
    retries=len(ORCHESTRATION_RETRIES),
    retry_delay_seconds=list(ORCHESTRATION_RETRIES),
    retry_condition_fn=_worth_running_again,
)
def _run_one(index: int, job: Job, fresh: bool, timeout_minutes: float) -> JobOutcome:
    """The job as a `vace_job` subflow: the one layer that runs it again (Prefect's task
    retries, on an orchestration error only); the job's own retries are its steps'."""
    record = vace_job(job, fresh=fresh, timeout_minutes=timeout_minutes)
    out = record.output
    return JobOutcome(
        index=index,
        function=job.function.value,
        ok=record.status.value == "succeeded",
        job_id=record.id,
        status=record.status.value,
        output=(out.s3_uri or out.path) if out else None,
    )


def _outcome(index: int, job: Job, future: PrefectFuture[JobOutcome]) -> JobOutcome:
    """The job's outcome; a job that failed is reported as such and the batch goes on."""
    try:
        return future.result()
    except Exception as exc:
        function = job.function.value
        return JobOutcome(
            index=index, function=function, ok=False, status="failed", error=str(exc)[:500]
        )


@flow(
    name="vace_batch",
    description="Run many VACE jobs at once within the account's limits; one failure "
    "never stops the others.",
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    log_prints=True,
)
def vace_batch(
    jobs: list[Job],
    max_in_flight: Annotated[int | None, Field(ge=1, le=100)] = None,
    fresh: bool = False,
    timeout_minutes: float = WAIT_TIMEOUT_MINUTES,
) -> list[JobOutcome]:
    """Run every job; returns one outcome per job, in order.

    Args:
        jobs: Request bodies in the API's own shape (paths and s3:// URIs allowed).
        max_in_flight: Jobs of this batch submitted and not yet ended at once, within
            the account's bound (VACEFLOW_ACCOUNT__IN_FLIGHT, 4 by default: the 2
            running slots with one queued behind each, so a task that ends is followed
            at once). Fewer leaves room for other runs; more is the account's bound.
        fresh: Pay for new videos even for jobs the catalog has.
        timeout_minutes: Per job: stop waiting after this long (the task is kept).
    """
    hold_stops_while_submitting()  # the jobs' threads submit; signals land in this one
    with (
        flow_runtime(max_in_flight) as runtime,  # the jobs' subflows run in it
        policy_scope(run_policy(runtime.services.settings)),  # and read under this policy
    ):
        futures = [_run_one.submit(i, job, fresh, timeout_minutes) for i, job in enumerate(jobs)]
        outcomes = [
            _outcome(i, job, f) for i, (job, f) in enumerate(zip(jobs, futures, strict=True))
        ]
    rows: list[dict[str, Any]] = [o.model_dump() for o in outcomes]
    ok = sum(o.ok for o in outcomes)
    create_table_artifact(
        rows, key="vaceflow-batch", description=f"{ok} of {len(outcomes)} jobs succeeded"
    )
    print(f"{ok} of {len(outcomes)} jobs succeeded")
    return outcomes

"""`vace_batch`: many jobs at once, within the account's limits, each reported alone.

Every job runs as its own `vace_job` subflow (so each has its run, artifacts and
event); at most `max_in_flight` are submitted and not yet ended at any moment (a Prefect
global concurrency limit shared by every worker when a server is configured, an
in-process semaphore otherwise). One job's failure never stops the others.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from flows.job import vace_job
from tasks.runtime import ensure_limits, server_configured
from vaceflow.jobs import Job
from vaceflow.limits import ACCOUNT

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


@task(name="batch-job", task_run_name="job {index}", cache_policy=NO_CACHE, tags=["vaceflow"])
def _run_one(
    index: int, job: Job, fresh: bool, timeout_minutes: float, max_in_flight: int
) -> JobOutcome:
    function = job.function.value
    try:
        record = vace_job(
            job, fresh=fresh, timeout_minutes=timeout_minutes, max_in_flight=max_in_flight
        )
    except Exception as exc:  # reported per job; the batch goes on
        return JobOutcome(
            index=index, function=function, ok=False, status="failed", error=str(exc)[:500]
        )
    out = record.output
    return JobOutcome(
        index=index,
        function=function,
        ok=record.status.value == "succeeded",
        job_id=record.id,
        status=record.status.value,
        output=(out.s3_uri or out.path) if out else None,
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
    max_in_flight: Annotated[int, Field(ge=1, le=100)] = ACCOUNT.concurrent_tasks,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
) -> list[JobOutcome]:
    """Run every job; returns one outcome per job, in order.

    Args:
        jobs: Request bodies in the API's own shape (paths and s3:// URIs allowed).
        max_in_flight: Jobs submitted and not yet ended at once; the account runs 2
            at a time, more only queue at the service (and age towards its 24 h limit).
        fresh: Pay for new videos even for jobs the catalog has.
        timeout_minutes: Per job: stop waiting after this long (the task is kept).
    """
    if server_configured():
        ensure_limits(in_flight=max_in_flight)
    futures = [
        _run_one.submit(i, job, fresh, timeout_minutes, max_in_flight) for i, job in enumerate(jobs)
    ]
    outcomes = [f.result() for f in futures]
    rows: list[dict[str, Any]] = [o.model_dump() for o in outcomes]
    ok = sum(o.ok for o in outcomes)
    create_table_artifact(
        rows, key="vaceflow-batch", description=f"{ok} of {len(outcomes)} jobs succeeded"
    )
    print(f"{ok} of {len(outcomes)} jobs succeeded")
    return outcomes

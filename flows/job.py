"""`vace_job`: one typed job through prepare, stage, submit, wait, collect, record.

The catalog row decides at every step: a succeeded job returns its cataloged result
without a paid call (unless `fresh`), a job with a recorded task resumes waiting on
it, and only a job with no task is staged and submitted.
"""

from __future__ import annotations

from typing import Any

from prefect import Flow, State, flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run

from tasks.claim import claim
from tasks.collect import collect
from tasks.prepare import prepare_inputs
from tasks.record import mark_resubmit, record, record_failure
from tasks.runtime import in_flight_slot, services
from tasks.stage import stage
from tasks.submit import submit
from tasks.trust import run_policy
from tasks.wait import wait
from vaceflow.catalog import JobRecord
from vaceflow.errors import (
    DashScopeError,
    ResultExpired,
    TaskFailed,
    VaceflowError,
    WaitTimeout,
)
from vaceflow.jobs import Job
from vaceflow.limits import ACCOUNT
from vaceflow.media.spec import JobSpec
from vaceflow.pipeline import JobUncertain, Next, StagedJob, resubmit_reason
from vaceflow.responses import TaskResponse
from vaceflow.shutdown import install as hold_stops_while_submitting

__all__ = ["run_job", "vace_job"]


def run_job(
    spec: JobSpec,
    *,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
    resubmit_on_algo_error: bool = False,
    max_in_flight: int = ACCOUNT.concurrent_tasks,
    parent_id: str | None = None,
) -> JobRecord:
    """The pipeline, as every flow runs it. Called inside a flow; its inputs are read
    under the run's trust policy (`tasks.trust`)."""
    hold_stops_while_submitting()
    logger = get_run_logger()
    prepared = prepare_inputs(spec, run_policy(services().settings))
    for warning in prepared.warnings:
        logger.warning(warning)
    claimed = claim(prepared, fresh=fresh, parent_id=parent_id)
    job = claimed.record
    if claimed.next is Next.DONE:
        logger.info("job %s already succeeded: no new submission", job.id)
        return job
    staged: StagedJob | None = None
    step = claimed.next
    resubmitted = False
    try:
        while True:
            try:
                with in_flight_slot(max_in_flight):
                    if step is Next.SUBMIT:
                        staged = stage(job, prepared)
                        job = submit(job, staged)
                    result: TaskResponse = wait(job, timeout_seconds=timeout_minutes * 60)
                break
            except TaskFailed as exc:
                if isinstance(exc, WaitTimeout) or resubmitted:
                    raise
                reason = resubmit_reason(exc, allow_algo_error=resubmit_on_algo_error)
                if reason is None:
                    raise
                logger.warning("job %s: %s; submitting it once more", job.id, reason)
                job = mark_resubmit(job.id, reason)
                step, resubmitted = Next.SUBMIT, True
        return record(collect(job, result, staged))
    except (WaitTimeout, JobUncertain):
        raise  # the task is kept (or may exist): nothing to mark failed
    except TaskFailed as exc:
        record_failure(job.id, exc.code, str(exc))
        raise
    except ResultExpired as exc:  # the link outlives the task id: the video is lost
        record_failure(job.id, None, str(exc), result_lost=True)
        raise
    except VaceflowError as exc:
        refused_for_now = isinstance(exc, DashScopeError) and exc.retryable
        record_failure(job.id, getattr(exc, "code", None), str(exc), final=not refused_for_now)
        raise


def _job_run_name() -> str:
    params: dict[str, Any] = flow_run.parameters
    job = params.get("job")
    function = getattr(getattr(job, "input", None), "function", None) or (
        job.get("input", {}).get("function") if isinstance(job, dict) else "job"
    )
    prompt = getattr(getattr(job, "input", None), "prompt", None) or ""
    return f"{getattr(function, 'value', function)}: {prompt[:40]}"


def cancel_pending_task(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Cancelling the flow cancels its task while the service has not started it.
    (Prefect calls hooks with keywords: the parameters keep its names.)"""
    from vaceflow.pipeline import cancel_if_pending

    cancel_if_pending(services(), str(flow_run.id))


@flow(
    name="vace_job",
    flow_run_name=_job_run_name,
    description="Run one VACE job (the API's body; local paths and s3:// URIs may stand "
    "where URLs do): check, stage, submit once, wait, collect, catalog.",
    on_cancellation=[cancel_pending_task],
    log_prints=True,
)
def vace_job(
    job: Job,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
    resubmit_on_algo_error: bool = False,
    parent_id: str | None = None,
    max_in_flight: int = ACCOUNT.concurrent_tasks,
) -> JobRecord:
    """Run one job and return its catalog record.

    Args:
        job: The request body in the API's own shape (`model`, `input`, `parameters`).
        fresh: Pay for a new video even when the catalog has this job's result.
        timeout_minutes: Stop waiting after this long; the task is kept for a re-run.
        resubmit_on_algo_error: Submit once more when the model fails with
            InternalError.Algo (failed tasks are not billed).
        parent_id: The catalog id of the job this one continues (lineage).
        max_in_flight: Jobs of this process (or, with a Prefect server, of every
            worker) submitted and not yet ended at once.
    """
    return run_job(
        JobSpec.from_job(job),
        fresh=fresh,
        timeout_minutes=timeout_minutes,
        resubmit_on_algo_error=resubmit_on_algo_error,
        parent_id=parent_id,
        max_in_flight=max_in_flight,
    )

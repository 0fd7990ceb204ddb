"""`vace_job`: one typed job through prepare, stage, submit, wait, collect, record.

The catalog row decides at every step: a succeeded job returns its cataloged result
without a paid call (unless `fresh`), a job with a recorded task resumes waiting on
it, and only a job with no task is staged and submitted. The steps' order and those
rules are `vaceflow.steps.run_steps`, which a run with no Prefect server shares.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from prefect import Flow, State, flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run

from tasks.claim import claim
from tasks.collect import collect
from tasks.prepare import prepare_inputs
from tasks.record import mark_resubmit, record, record_failure
from tasks.runtime import Runtime, flow_runtime, open_runtime
from tasks.stage import stage
from tasks.submit import submit
from tasks.trust import run_policy
from tasks.wait import wait
from vaceflow.catalog import JobRecord
from vaceflow.jobs import Job
from vaceflow.media.prepare import PreparedJob
from vaceflow.options import WAIT_TIMEOUT_MINUTES
from vaceflow.pipeline import Claim, Collected, Staged
from vaceflow.responses import TaskResponse
from vaceflow.steps import run_steps

__all__ = ["run_job", "vace_job"]


def run_job(
    runtime: Runtime,
    job: Job,
    *,
    timeout_minutes: float,
    fresh: bool = False,
    resubmit_on_algo_error: bool = False,
    parent_id: str | None = None,
) -> JobRecord:
    """The pipeline (`vaceflow.steps.run_steps`), each step a task run on `runtime`'s
    services, from the preparation its caller made when there is one. Called inside a
    flow; its inputs are read under the run's trust policy (`tasks.trust`)."""
    return run_steps(
        _TaskSteps(runtime),
        runtime.prepared_for(job) or job,
        fresh=fresh,
        timeout_minutes=timeout_minutes,
        resubmit_on_algo_error=resubmit_on_algo_error,
        parent_id=parent_id,
    )


class _TaskSteps:
    """The steps as this flow run's Prefect tasks, each handed the runtime's services."""

    def __init__(self, runtime: Runtime) -> None:
        self.log = get_run_logger()
        self._runtime = runtime
        self._svc = runtime.services

    def prepare(self, job: Job) -> PreparedJob:
        return prepare_inputs(job, run_policy(self._svc.settings))

    def claim(self, prepared: PreparedJob, *, fresh: bool, parent_id: str | None) -> Claim:
        claimed = claim(self._svc, prepared, fresh=fresh, parent_id=parent_id)
        if claimed.record.id in self._runtime.handed:
            self.log.info(
                "job %s: task %s was submitted by the command that started this run",
                claimed.record.id,
                claimed.record.task_id,
            )
        return claimed

    def stage(self, record: JobRecord, prepared: PreparedJob) -> Staged:
        return stage(self._svc, record, prepared)

    def submit(self, record: JobRecord, prepared: PreparedJob, staged: Staged) -> JobRecord:
        return submit(self._svc, record, prepared, staged)

    def wait(self, record: JobRecord, timeout_seconds: float) -> TaskResponse:
        return wait(self._svc, record, timeout_seconds, self._runtime.listener)

    def collect(self, record: JobRecord, task: TaskResponse, staged: Staged | None) -> Collected:
        return collect(self._svc, record, task, staged or self._runtime.staged_for(record.id))

    def record(self, collected: Collected) -> JobRecord:
        return record(self._svc, collected)

    def record_failure(
        self, job_id: str, code: str | None, message: str, *, final: bool, result_lost: bool
    ) -> JobRecord:
        return record_failure(
            self._svc, job_id, code, message, final=final, result_lost=result_lost
        )

    def mark_resubmit(self, job_id: str, reason: str) -> JobRecord:
        return mark_resubmit(self._svc, job_id, reason)

    def in_flight_slot(self, job_id: str) -> AbstractContextManager[None]:
        return self._runtime.slot_for(job_id)


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

    with open_runtime() as runtime:
        cancel_if_pending(runtime.services, str(flow_run.id))
    _end_cancelled(flow_run)


def _end_cancelled(run: FlowRun) -> None:
    """A cancel a person asked for ends Cancelled. Prefect's runner gives the run's process
    1 s to acknowledge a cancel before it kills it; on a busy machine the process's engine
    then records Crashed, and the runner's own Cancelled is refused over that final state.
    This hook runs only on an asked cancel, after the process is gone."""
    from prefect import get_client
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
        if state is not None and state.is_crashed():
            client.set_flow_run_state(
                run.id, Cancelled(message="Flow run was cancelled."), force=True
            )


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
    timeout_minutes: float = WAIT_TIMEOUT_MINUTES,
    resubmit_on_algo_error: bool = False,
    parent_id: str | None = None,
) -> JobRecord:
    """Run one job and return its catalog record.

    Args:
        job: The request body in the API's own shape (`model`, `input`, `parameters`).
        fresh: Pay for a new video even when the catalog has this job's result.
        timeout_minutes: Stop waiting after this long; the task is kept for a re-run.
        resubmit_on_algo_error: Submit once more when the model fails with
            InternalError.Algo (failed tasks are not billed).
        parent_id: The catalog id of the job this one continues (lineage).
    """
    with flow_runtime() as runtime:
        return run_job(
            runtime,
            job,
            fresh=fresh,
            timeout_minutes=timeout_minutes,
            resubmit_on_algo_error=resubmit_on_algo_error,
            parent_id=parent_id,
        )

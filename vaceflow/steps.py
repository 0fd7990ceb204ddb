"""One job to its record: the steps in order, written once (`run_steps`).

    prepare -> claim -> [stage -> submit] -> wait -> collect -> record

The job is prepared once per run: a caller that prepared it already (the CLI, to show
the plan and the estimate) hands over the prepared job, and the steps begin at claim.

with the rules between them: a job the catalog has done returns without a paid call,
a recorded task is resumed, a task that failed may be submitted once more (UNKNOWN, or
InternalError.Algo when allowed), and each way of ending without a video is recorded
as it should be (a wait that stopped, or a submit that may have landed, marks nothing).

The steps themselves are passed in (`JobSteps`). The flows pass Prefect tasks, so each
step is a task run in the UI (`flows/job.py`); a run with no Prefect server passes
`LocalSteps`, the same core functions called directly: no server to start, the same
catalog rows, so it resumes after a crash exactly as a flow does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from vaceflow.catalog import Catalog, JobRecord, JobStatus
from vaceflow.errors import (
    DashScopeError,
    ResultExpired,
    TaskFailed,
    VaceflowError,
    WaitCancelled,
    WaitTimeout,
)
from vaceflow.jobs import Job
from vaceflow.media.prepare import PreparedJob, prepare
from vaceflow.pipeline import (
    Claim,
    Collected,
    JobUncertain,
    Next,
    Staged,
    await_result,
    claim_job,
    collect_result,
    resubmit_reason,
    stage_inputs,
    submit_job,
)
from vaceflow.responses import TaskResponse, TaskStatus
from vaceflow.services import Services
from vaceflow.shutdown import install as hold_stops_while_submitting

__all__ = ["JobListener", "JobSteps", "LocalSteps", "record_failure", "run_steps", "submit_then"]

JobListener = Callable[[str, TaskStatus, float, int], None]
"""(job id, status, seconds, looks) after every look at the job's task."""


class JobSteps(Protocol):
    """What `run_steps` needs done; each step is one function of `vaceflow.pipeline`."""

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]: ...

    def prepare(self, job: Job) -> PreparedJob: ...

    def claim(self, prepared: PreparedJob, *, fresh: bool, parent_id: str | None) -> Claim: ...

    def stage(self, record: JobRecord, prepared: PreparedJob) -> Staged: ...

    def submit(self, record: JobRecord, prepared: PreparedJob, staged: Staged) -> JobRecord: ...

    def wait(self, record: JobRecord, timeout_seconds: float) -> TaskResponse: ...

    def collect(
        self, record: JobRecord, task: TaskResponse, staged: Staged | None
    ) -> Collected: ...

    def record(self, collected: Collected) -> JobRecord: ...

    def record_failure(
        self, job_id: str, code: str | None, message: str, *, final: bool, result_lost: bool
    ) -> JobRecord: ...

    def mark_resubmit(self, job_id: str, reason: str) -> JobRecord: ...

    def in_flight_slot(self, job_id: str) -> AbstractContextManager[None]:
        """The job's slot of the jobs in flight this run may have (`vaceflow.inflight`)."""
        ...


def run_steps(
    steps: JobSteps,
    job: Job | PreparedJob,
    *,
    timeout_minutes: float,
    fresh: bool = False,
    resubmit_on_algo_error: bool = False,
    parent_id: str | None = None,
) -> JobRecord:
    """The job's pipeline (from claim on when `job` is prepared already); returns its
    catalog record (raises as the step that failed)."""
    log = steps.log
    prepared, claimed = _claimed(steps, job, fresh=fresh, parent_id=parent_id)
    record = claimed.record
    if claimed.next is Next.DONE:
        return record
    staged: Staged | None = None
    step = claimed.next
    resubmitted = False
    with _failures_recorded(steps, record.id):
        while True:
            try:
                with steps.in_flight_slot(record.id):
                    if step is Next.SUBMIT:
                        staged = steps.stage(record, prepared)
                        record = steps.submit(record, prepared, staged)
                    result = steps.wait(record, timeout_minutes * 60)
                break
            except TaskFailed as exc:
                reason = resubmit_reason(exc, allow_algo_error=resubmit_on_algo_error)
                if resubmitted or reason is None:
                    raise
                log.warning("job %s: %s; submitting it once more", record.id, reason)
                record = steps.mark_resubmit(record.id, reason)
                step, resubmitted = Next.SUBMIT, True
        return steps.record(steps.collect(record, result, staged))


def submit_then(
    steps: JobSteps,
    job: Job | PreparedJob,
    then: Callable[[JobRecord, Staged | None], JobRecord],
    *,
    fresh: bool = False,
    parent_id: str | None = None,
) -> JobRecord:
    """The pipeline up to the submit here, the rest by `then(record, staged)`, called
    with the job's in-flight slot held (a job with a task recorded goes to `then` as
    it is; a job done returns its record). The CLI with a Prefect server named submits
    this way before Prefect is imported, and `then` runs the flow, which resumes the
    job without taking a second slot for it (`tasks.runtime.Runtime.handed_over`)."""
    prepared, claimed = _claimed(steps, job, fresh=fresh, parent_id=parent_id)
    record = claimed.record
    if claimed.next is Next.DONE:
        return record
    staged: Staged | None = None
    with steps.in_flight_slot(record.id):
        if claimed.next is Next.SUBMIT:
            with _failures_recorded(steps, record.id):
                staged = steps.stage(record, prepared)
                record = steps.submit(record, prepared, staged)
        return then(record, staged)


def _claimed(
    steps: JobSteps, job: Job | PreparedJob, *, fresh: bool, parent_id: str | None
) -> tuple[PreparedJob, Claim]:
    """The job prepared (unless it is already) and claimed: its catalog row, its next step."""
    hold_stops_while_submitting()  # a stop waits for a submit on the wire (main thread)
    prepared = job if isinstance(job, PreparedJob) else steps.prepare(job)
    for warning in prepared.warnings:
        steps.log.warning(warning)
    claimed = steps.claim(prepared, fresh=fresh, parent_id=parent_id)
    if claimed.next is Next.DONE:
        steps.log.info("job %s already succeeded: no new submission", claimed.record.id)
    return prepared, claimed


@contextmanager
def _failures_recorded(steps: JobSteps, job_id: str) -> Iterator[None]:
    """Each way of ending without a video, recorded as it should be."""
    try:
        yield
    except (WaitTimeout, WaitCancelled, JobUncertain):
        raise  # the task is kept (or may exist): nothing to mark failed
    except TaskFailed as exc:
        steps.record_failure(job_id, exc.code, str(exc), final=True, result_lost=False)
        raise
    except ResultExpired as exc:  # the link outlives the task id: the video is lost
        steps.record_failure(job_id, None, str(exc), final=True, result_lost=True)
        raise
    except VaceflowError as exc:
        refused_for_now = isinstance(exc, DashScopeError) and exc.retryable
        code = getattr(exc, "code", None)
        steps.record_failure(job_id, code, str(exc), final=not refused_for_now, result_lost=False)
        raise


def record_failure(
    catalog: Catalog,
    job_id: str,
    code: str | None,
    message: str,
    *,
    final: bool = True,
    result_lost: bool = False,
) -> JobRecord:
    """The job ended without a video for a reason of ours (the service's own failures
    are already in the catalog).

    `final=False`: the submit was refused for now (5xx, 429, no connection), nothing was
    created, and the row stays submittable with the error the submit wrote.
    `result_lost`: the task succeeded but its video can no longer be fetched.
    """
    job = catalog.get(job_id)
    lost = result_lost and job.status is JobStatus.SUCCEEDED and job.output is None
    if final and (not job.status.is_final or lost):
        job = catalog.record_failure(job_id, code, message)
    return job


class LocalSteps:
    """The steps as plain calls on `svc`, for a run with no Prefect server: nothing is
    retried by an orchestrator (a re-run resumes from the catalog), `on_status` hears
    every look at the task."""

    def __init__(self, svc: Services, *, on_status: JobListener | None = None) -> None:
        self._svc = svc
        self._on_status = on_status

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger("vaceflow.steps")

    def prepare(self, job: Job) -> PreparedJob:
        return prepare(job)

    def claim(self, prepared: PreparedJob, *, fresh: bool, parent_id: str | None) -> Claim:
        return claim_job(self._svc, prepared, fresh=fresh, parent_id=parent_id)

    def stage(self, record: JobRecord, prepared: PreparedJob) -> Staged:
        return stage_inputs(self._svc, record, prepared)

    def submit(self, record: JobRecord, prepared: PreparedJob, staged: Staged) -> JobRecord:
        return submit_job(self._svc, record, prepared, staged)

    def wait(self, record: JobRecord, timeout_seconds: float) -> TaskResponse:
        listener = self._on_status

        def on_status(status: TaskStatus, seconds: float, looks: int) -> None:
            if listener is not None:
                listener(record.id, status, seconds, looks)

        return await_result(self._svc, record, timeout=timeout_seconds, on_status=on_status)

    def collect(self, record: JobRecord, task: TaskResponse, staged: Staged | None) -> Collected:
        return collect_result(self._svc, record, task, staged=staged)

    def record(self, collected: Collected) -> JobRecord:
        return self._svc.catalog.get(collected.record.id)

    def record_failure(
        self, job_id: str, code: str | None, message: str, *, final: bool, result_lost: bool
    ) -> JobRecord:
        return record_failure(
            self._svc.catalog, job_id, code, message, final=final, result_lost=result_lost
        )

    def mark_resubmit(self, job_id: str, reason: str) -> JobRecord:
        return self._svc.catalog.mark_resubmit(job_id, reason)

    def in_flight_slot(self, job_id: str) -> AbstractContextManager[None]:
        return self._svc.in_flight.slot()

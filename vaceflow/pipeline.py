"""The steps of one job after preparation: claim, stage, submit, wait, collect.

Each step is a plain function over `Services`; the Prefect tasks in `tasks/` wrap one
each and the flows in `flows/` compose them. The catalog row is the ledger at every
step, so any step can be re-run after a crash and pick up where the row says:

    claim_job      the row, and what to do next (done / submit / resume / collect);
                   a submit left unanswered is settled first (`settle_submit`)
    stage_inputs   conformed files -> URLs the service can fetch (content-addressed)
    submit_job     THE money path: the only call of `Client.submit` in vaceflow; the
                   job's inputs become those URLs here and nowhere else
    await_result   follow the task to its end through the shared watcher
    collect_result download, verify, thumbnail, publish, record
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from vaceflow.catalog import InputRecord, JobRecord, JobStatus, OutputRecord
from vaceflow.collect import download_video
from vaceflow.errors import (
    CatalogConflict,
    DashScopeError,
    DashScopeTransportError,
    JobUncertain,
    TaskFailed,
    VaceflowError,
)
from vaceflow.failpoints import failpoint
from vaceflow.identity import job_identity
from vaceflow.jobs import Job
from vaceflow.limits import Role
from vaceflow.media.prepare import PreparedJob
from vaceflow.reconcile import Verdict, reconcile
from vaceflow.responses import TaskResponse, TaskStatus
from vaceflow.services import Services
from vaceflow.shutdown import Stopping, sending
from vaceflow.storage.guard import check_fetchable
from vaceflow.storage.outputs import discard_inputs, publish_outputs
from vaceflow.storage.s3 import PRESIGN_MAX_SECONDS
from vaceflow.storage.staged import StagedInput, needs_oss_resolve
from vaceflow.thumbnail import make_thumbnail

__all__ = [
    "SUBMIT_LEASE_SECONDS",
    "Claim",
    "Collected",
    "JobUncertain",
    "Next",
    "Staged",
    "await_result",
    "cancel_if_pending",
    "claim_job",
    "collect_result",
    "expected_seconds",
    "input_hashes",
    "resubmit_reason",
    "settle_submit",
    "stage_inputs",
    "submit_job",
]

log = logging.getLogger("vaceflow.pipeline")

SUBMIT_LEASE_SECONDS = 60.0
"""How long runs that lost a job's row to another wait for it before taking the row over
(a run arriving at the submit takes over at once: the holder has sent nothing)."""
POLL_SECONDS = 0.5
"""How often a run following another's submit reads the row."""


class Next(StrEnum):
    """What a claimed job needs."""

    DONE = "done"
    """Succeeded and collected: nothing to pay for."""
    SUBMIT = "submit"
    RESUME = "resume"
    """A task is recorded and not final: wait for it."""
    COLLECT = "collect"
    """The service finished; the video is not ours yet."""


@dataclass(frozen=True)
class Claim:
    record: JobRecord
    next: Next


Staged = dict[Role, list[StagedInput]]
"""Every conformed input where the service can fetch it, by role, in request order."""


def input_hashes(prepared: PreparedJob) -> dict[Role, list[str]]:
    """The conformed inputs' sha256 by role, in request order: the identity's inputs."""
    hashes: dict[Role, list[str]] = {}
    for report in prepared.reports:
        hashes.setdefault(report.role, []).append(report.sha256)
    return hashes


def _input_records(prepared: PreparedJob) -> dict[Role, list[InputRecord]]:
    records: dict[Role, list[InputRecord]] = {}
    for report in prepared.reports:
        records.setdefault(report.role, []).append(
            InputRecord(
                source=report.source,
                sha256=report.sha256,
                report=report.model_dump(mode="json"),
            )
        )
    return records


def claim_job(
    svc: Services,
    prepared: PreparedJob,
    *,
    fresh: bool = False,
    parent_id: str | None = None,
    flow_run_id: str | None = None,
) -> Claim:
    """The job's catalog row (made before anything is staged) and its next step."""
    job = svc.client.job_for(prepared.job)  # the region's model name: identity and price
    identity = job_identity(job, input_hashes(prepared))
    catalog = svc.catalog
    record = catalog.claim(
        identity,
        job,
        inputs=_input_records(prepared),
        parent_id=parent_id,
        flow_run_id=flow_run_id,
    )
    if flow_run_id:
        catalog.record_flow_run(record.id, flow_run_id)
    status = record.status
    if status is JobStatus.SUCCEEDED and record.output is not None:
        if not fresh and _output_present(record):
            log.info("job %s already succeeded: returning the cataloged result", record.id)
            return Claim(record, Next.DONE)
        reason = "--fresh" if fresh else "the collected output is gone"
        return Claim(catalog.mark_resubmit(record.id, reason, fresh=True), Next.SUBMIT)
    if status in (JobStatus.SENDING, JobStatus.UNCERTAIN):
        record = settle_submit(svc, record.id)
        status = record.status
    if record.task_id and (status is JobStatus.SUCCEEDED):
        return Claim(record, Next.COLLECT)
    if record.task_id and not status.is_final:
        log.info("job %s: resuming the wait for task %s", record.id, record.task_id)
        return Claim(record, Next.RESUME)
    if status.is_final:
        log.warning(
            "job %s ended %s before (%s); submitting it again",
            record.id,
            status.value,
            record.error_code or record.error_message or "no detail",
        )
        return Claim(catalog.mark_resubmit(record.id, f"re-run after {status.value}"), Next.SUBMIT)
    return Claim(record, Next.SUBMIT)


def _output_present(record: JobRecord) -> bool:
    out = record.output
    if out is None:
        return False
    return bool(out.s3_uri) or (out.path is not None and Path(out.path).is_file())


def settle_submit(svc: Services, job_id: str) -> JobRecord:
    """Wait out a submit that is on the wire, then settle it if its answer never came.

    Returns the row with its task id (the answer came, or the task list showed it) or
    submittable again (the list showed none: the service never accepted it). Raises
    JobUncertain when the list cannot tell, or automatic reconciling is off."""
    said = False
    while True:
        record = svc.catalog.get(job_id)
        if record.task_id is not None or record.status not in (
            JobStatus.SENDING,
            JobStatus.UNCERTAIN,
        ):
            return record
        if record.status is JobStatus.SENDING:  # an answer may still come
            if not said:
                log.info("job %s: its submit is on the wire; waiting for the answer", job_id)
                said = True
            time.sleep(POLL_SECONDS)
            continue
        if svc.settings.reconcile == "off":
            raise JobUncertain(record)
        found = reconcile(svc.catalog, svc.client, job_id, margin=svc.settings.reconcile_margin)
        if found.verdict is Verdict.EARLY:
            if not said:
                log.info("job %s: no answer to its submit; %s", job_id, found.summary)
                said = True
            time.sleep(POLL_SECONDS)
            continue
        if found.verdict.needs_a_person:
            raise JobUncertain(svc.catalog.get(job_id), found)
        if found.verdict is not Verdict.SETTLED:
            log.warning("job %s reconciled: %s", job_id, found.summary)


def _follow(svc: Services, job_id: str) -> JobRecord:
    """Another run holds the job's submit: wait until the row has a task id, is
    submittable again, or its holder's lease ran out (the caller may take it over)."""
    log.info("job %s is being submitted by another run; following it", job_id)
    while True:
        current = svc.catalog.get(job_id)
        status = current.status
        if current.task_id is not None or status in (JobStatus.NEW, JobStatus.STAGING):
            return current
        if status in (JobStatus.SENDING, JobStatus.UNCERTAIN):
            return settle_submit(svc, job_id)
        if status is JobStatus.SUBMITTING:
            lease = current.submit_lease_until
            if lease is None or lease <= datetime.now(UTC):
                return current
        elif status.is_final:
            raise VaceflowError(
                f"job {job_id} ended {status.value} in another run "
                f"({current.error_message or 'no detail'}); run it again"
            )
        time.sleep(POLL_SECONDS)


def stage_inputs(svc: Services, record: JobRecord, prepared: PreparedJob) -> Staged:
    """Put every conformed input where the service can fetch it; refuse URLs it cannot."""
    staged_by_role: Staged = {
        role: [svc.stager.stage(path) for path in paths] for role, paths in prepared.files.items()
    }
    every = [s for group in staged_by_role.values() for s in group]
    check_fetchable(svc.client.endpoint, [s.url for s in every])
    expiries = [s.expires_at for s in every if s.expires_at is not None]
    inputs = _input_records(prepared)
    for role, staged in staged_by_role.items():
        inputs[role] = [
            rec.model_copy(update={"staged_url": s.redacted})
            for rec, s in zip(inputs.get(role, []), staged, strict=False)
        ]
    try:
        svc.catalog.record_staging(record.id, inputs=inputs, expires_at=min(expiries, default=None))
    except CatalogConflict:
        # Another run of the same job has sent its submit: submit_job follows it.
        current = svc.catalog.get(record.id)
        sent = (JobStatus.SENDING, JobStatus.UNCERTAIN)
        if current.task_id is None and current.status not in sent:
            raise
        log.info("job %s: another run submitted it; following that run", record.id)
    for s in every:
        log.info("staged %s (%s bytes) at %s", s.key, s.size, s.redacted)
    return staged_by_role


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _RowLost(Exception):
    """The row was taken over before our request left: nothing was sent."""


def submit_job(
    svc: Services, record: JobRecord, prepared: PreparedJob, staged: Staged
) -> JobRecord:
    """Submit the job once, its inputs the `staged` URLs; the one place vaceflow calls
    `Client.submit`.

    The ledger's protocol (`vaceflow.catalog.ledger`): take the row (a run that sent
    nothing is taken over at once), let the client take a submit slot of the rate
    budget, mark the row `sending` just before the request leaves, and write the task
    id the moment it comes back. An answer with an error created nothing: the row is
    given back and the error raised. An answer that never came is settled from the
    provider's task list once the request's window has closed (`settle_submit`): the
    task found is resumed, and a submit the service never accepted is sent again, once.
    A run that finds the row held follows the holder's task instead of submitting.

    Failpoints (`vaceflow.failpoints`), in order: submit.before_lease, submit.before_slot,
    submit.before_send, submit.sending (marked, not yet sent), submit.before_record,
    submit.after_record.
    """
    catalog = svc.catalog
    owner = _owner()
    job = prepared.job.with_media({role: [s.url for s in got] for role, got in staged.items()})
    oss_resolve = needs_oss_resolve([s for got in staged.values() for s in got])
    failpoint("submit.before_lease")
    take_over, unaccepted = True, 0
    while True:
        if catalog.begin_submit(record.id, owner, SUBMIT_LEASE_SECONDS, take_over=take_over):
            done = _send(svc, record.id, owner, job, oss_resolve)
            if done.task_id is None and done.status is JobStatus.NEW:  # settled: not accepted
                unaccepted += 1
                if unaccepted > 1:
                    raise VaceflowError(
                        f"job {record.id}: the service accepted neither of two submits whose "
                        "answers were lost (its task list shows no task for either); nothing "
                        "was created: run it again"
                    )
        else:
            done = _follow(svc, record.id)
        if done.task_id is not None:
            return done
        take_over = False


def _send(svc: Services, job_id: str, owner: str, job: Job, oss_resolve: bool) -> JobRecord:
    """One submit from a held row: the task's row, or the row as it stands when the
    request created nothing (lost to another run, or refused before any answer)."""
    catalog = svc.catalog
    window = svc.client.submit_window
    marked = answered = False
    on_wire = contextlib.ExitStack()

    def before_send() -> None:
        """The client holds its submit slot: from here a stop waits for the answer."""
        nonlocal marked
        if not marked:
            on_wire.enter_context(sending())
        failpoint("submit.before_send")
        if not catalog.mark_sending(job_id, owner, window):
            raise _RowLost
        marked = True
        failpoint("submit.sending")

    try:
        failpoint("submit.before_slot")
        with on_wire:
            try:
                answer = svc.client.submit(
                    job, oss_resolve=oss_resolve or None, before_send=before_send
                )
            except DashScopeTransportError as exc:
                if not exc.sent:
                    raise
                log.error(
                    "job %s: no answer to the submit (%s); the service may have it: settling "
                    "it from the task list once the request's window has closed",
                    job_id,
                    exc,
                )
            else:
                answered = True
                failpoint("submit.before_record")
                done = catalog.record_submitted(job_id, answer.output.task_id, answer.request_id)
                failpoint("submit.after_record")
                log.info(
                    "job %s submitted: task %s (request %s)",
                    job_id,
                    answer.output.task_id,
                    answer.request_id,
                )
                return done
    except _RowLost:
        log.info("job %s: another run took the submit over before ours left", job_id)
        return catalog.get(job_id)
    except (Stopping, VaceflowError) as exc:
        if not answered:  # not sent, or answered with an error: nothing was created
            catalog.abandon_submit(job_id, owner, exc)
        raise
    except BaseException as exc:  # an interrupt: only a request not yet sent is given back
        if not marked:
            catalog.abandon_submit(job_id, owner, f"stopped before sending: {exc!r}")
        raise
    return settle_submit(svc, job_id)


OnStatus = Callable[[TaskStatus, float, int], None]


def await_result(
    svc: Services,
    record: JobRecord,
    *,
    timeout: float | None = None,
    on_status: OnStatus | None = None,
) -> TaskResponse:
    """Follow the job's task to its end through the process's one watcher; the catalog
    records every change of status. `on_status(status, seconds, looks)` runs in this
    thread after every look at the task.

    Returns the SUCCEEDED answer. Raises TaskFailed (FAILED, CANCELED, UNKNOWN: the
    catalog says which) and WaitTimeout (the task id stays recorded: run again to resume).
    """
    if record.task_id is None:
        raise VaceflowError(f"job {record.id} has no task to wait for")
    task_id = record.task_id
    _open_store_early(svc)
    seen: list[TaskStatus] = []

    def progress(status: TaskStatus, seconds: float, looks: int) -> None:
        if status.is_waiting and (not seen or seen[-1] is not status):
            seen.append(status)
            svc.catalog.record_status(record.id, TaskResponse.seen(task_id, status))
        if on_status is not None:
            on_status(status, seconds, looks)

    try:
        task = svc.watcher.wait(
            task_id,
            expected=expected_seconds(svc, record.function),
            timeout=timeout if timeout is not None else svc.settings.wait_timeout,
            on_poll=progress,
        )
    except TaskFailed as exc:
        svc.catalog.record_status(record.id, exc.task)
        raise
    svc.catalog.record_status(record.id, task)
    return task


def _open_store_early(svc: Services) -> None:
    """Collect publishes to the output store the moment the task ends: open it (a few
    hundred ms) while the task runs. A failure here is collect's to report."""
    with contextlib.suppress(VaceflowError):
        _ = svc.store


def expected_seconds(svc: Services, function: str) -> float | None:
    """How long a task of `function` runs, as the catalog has seen (None: never seen)."""
    return svc.catalog.median_run_seconds().get(function)


@dataclass(frozen=True)
class Collected:
    record: JobRecord
    video: Path
    thumbnail: Path
    link: str | None
    """A URL to open the video (the bucket's), when outputs are published."""
    thumbnail_link: str | None = None


def collect_result(
    svc: Services,
    record: JobRecord,
    task: TaskResponse,
    *,
    staged: Staged | None = None,
) -> Collected:
    """Download and verify the video, draw its contact sheet, publish and record them."""
    url = task.output.video_url
    if not url:
        raise VaceflowError(f"task {task.output.task_id} succeeded without a video_url")
    folder = svc.outputs_dir / record.id
    video = download_video(url, folder, name="video.mp4")
    thumbnail = make_thumbnail(video.path, folder / "thumbnail.png").path
    output = OutputRecord(
        path=str(video.path),
        sha256=video.sha256,
        probe=video.info.model_dump(mode="json", exclude={"path"}),
        thumbnail_path=str(thumbnail),
    )
    link = thumbnail_link = None
    store = svc.store
    if store is not None:
        record_json = svc.catalog.record_output(record.id, output).model_dump(mode="json")
        published = publish_outputs(
            store, record.id, video=video.path, record=record_json, thumbnail=thumbnail
        )
        link = published.link
        if published.thumbnail_key:
            thumbnail_link = store.url_for(published.thumbnail_key, PRESIGN_MAX_SECONDS)[0]
        output = output.model_copy(update={"s3_uri": f"s3://{store.bucket}/{published.video_key}"})
    done = svc.catalog.record_output(record.id, output)
    if staged and not svc.settings.keep_inputs:
        in_use = svc.catalog.inputs_in_use(exclude=record.id)
        sent = [s for got in staged.values() for s in got if s.sha256 not in in_use]
        discard_inputs(svc.stager, sent, keep=False)
    log.info("job %s collected: %s (sha256 %s)", record.id, video.path, video.sha256[:12])
    return Collected(
        record=done, video=video.path, thumbnail=thumbnail, link=link, thumbnail_link=thumbnail_link
    )


def resubmit_reason(exc: TaskFailed, *, allow_algo_error: bool) -> str | None:
    """Why a failed task may be submitted once more, or None when it may not.

    UNKNOWN: the service forgot the task (past 24 h): the only way to a video is a new
    submission. InternalError.Algo: the model failed (not billed) and the user allows
    one more try. Every other end is final: the same body would fail the same way.
    """
    if exc.status is TaskStatus.UNKNOWN:
        return f"the service no longer knows task {exc.task_id} (older than 24 h?)"
    if allow_algo_error and exc.code == "InternalError.Algo":
        return f"task {exc.task_id} failed with InternalError.Algo (not billed)"
    return None


def cancel_if_pending(svc: Services, flow_run_id: str) -> bool:
    """Cancel the task of the job a cancelled flow run was driving, if not started yet."""
    record = svc.catalog.find(flow_run_id=flow_run_id)
    if record is None or record.task_id is None or record.status.is_final:
        return False
    try:
        svc.client.cancel(record.task_id)
    except DashScopeError as exc:
        log.warning("task %s not cancelled: %s", record.task_id, exc)
        return False
    svc.catalog.record_status(record.id, svc.client.get(record.task_id))
    log.info("job %s: task %s cancelled", record.id, record.task_id)
    return True

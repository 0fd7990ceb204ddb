"""The steps of one job after preparation: claim, stage, submit, wait, collect.

Each step is a plain function over `Services`; the Prefect tasks in `tasks/` wrap one
each and the flows in `flows/` compose them. The catalog row is the ledger at every
step, so any step can be re-run after a crash and pick up where the row says:

    claim_job      the row, and what to do next (done / submit / resume / collect)
    stage_inputs   conformed files -> URLs the service can fetch (content-addressed)
    submit_job     THE money path: the only call of `Client.submit` in vaceflow
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
from enum import StrEnum
from pathlib import Path

from vaceflow.catalog import CatalogConflict, InputRecord, JobRecord, JobStatus, OutputRecord
from vaceflow.collect import download_video
from vaceflow.errors import (
    DashScopeError,
    DashScopeTransportError,
    TaskFailed,
    VaceflowError,
)
from vaceflow.identity import job_identity
from vaceflow.jobs import Job, parse_job
from vaceflow.limits import Role
from vaceflow.media.prepare import PreparedJob
from vaceflow.responses import TaskResponse, TaskStatus
from vaceflow.services import Services
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
    "StagedJob",
    "await_result",
    "cancel_if_pending",
    "claim_job",
    "collect_result",
    "expected_seconds",
    "input_hashes",
    "resubmit_reason",
    "stage_inputs",
    "submit_job",
]

log = logging.getLogger("vaceflow.pipeline")

SUBMIT_LEASE_SECONDS = 120.0
"""How long a submit may take before its row reads `uncertain` (the client's own
timeouts and 429 retries fit well inside)."""


class JobUncertain(VaceflowError):
    """A submit may have reached the service but its task id was never recorded."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        super().__init__(
            f"job {record.id} may have been submitted (a run stopped between the service "
            "accepting it and the task id being written). vaceflow will not pay twice on a "
            "guess: check the provider's task list, then `vaceflow catalog resolve "
            f"{record.id} --task-id ID` or `--resubmit`"
        )


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


@dataclass(frozen=True)
class StagedJob:
    """The job as the service will see it: every input a fetchable URL."""

    job: Job
    staged: list[StagedInput]

    @property
    def oss_resolve(self) -> bool:
        return needs_oss_resolve(self.staged)


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
    if status is JobStatus.UNCERTAIN:
        raise JobUncertain(record)
    if record.task_id and (status is JobStatus.SUCCEEDED):
        return Claim(record, Next.COLLECT)
    if record.task_id and not status.is_final:
        log.info("job %s: resuming the wait for task %s", record.id, record.task_id)
        return Claim(record, Next.RESUME)
    if status is JobStatus.SUBMITTING:
        return Claim(_follow_submitter(svc, record), Next.RESUME)
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


def _follow_submitter(svc: Services, record: JobRecord, poll: float = 0.5) -> JobRecord:
    """Another run holds the submit lease: wait for it to write the task id."""
    log.info("job %s is being submitted by another run; following it", record.id)
    while True:
        time.sleep(poll)
        current = svc.catalog.get(record.id)
        if current.task_id:
            return current
        if current.status is JobStatus.UNCERTAIN:
            raise JobUncertain(current)
        if current.status is not JobStatus.SUBMITTING:
            raise VaceflowError(
                f"job {record.id}: the other run gave up submitting "
                f"({current.error_message or current.status.value}); run it again"
            )


def stage_inputs(svc: Services, record: JobRecord, prepared: PreparedJob) -> StagedJob:
    """Put every conformed input where the service can fetch it; refuse URLs it cannot."""
    staged_by_role: dict[Role, list[StagedInput]] = {}
    for role, paths in prepared.files.items():
        staged_by_role[role] = [svc.stager.stage(Path(p)) for p in paths]
    body = prepared.job.to_body()
    for role, staged in staged_by_role.items():
        urls = [s.url for s in staged]
        body["input"][role.api_field] = urls if role is Role.REF_IMAGE else urls[0]
    job = parse_job(body)
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
        # Another run of the same job reached the submit first: submit_job follows it.
        current = svc.catalog.get(record.id)
        if current.status is not JobStatus.SUBMITTING and current.task_id is None:
            raise
        log.info("job %s: another run submitted it; following that run", record.id)
    for s in every:
        log.info("staged %s (%s bytes) at %s", s.key, s.size, s.redacted)
    return StagedJob(job=job, staged=every)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def submit_job(svc: Services, record: JobRecord, staged: StagedJob) -> JobRecord:
    """Submit the job once; the one place vaceflow calls `Client.submit`.

    Takes the row's submit lease (a compare-and-set: one winner among every run of the
    same job), submits, and writes the task id in its own transaction at once. When the
    service answered with an error, nothing was created: the lease is given back and
    the error raised. When no answer came (timeout, dropped connection) the service may
    have accepted it: the row is left to read `uncertain` and JobUncertain is raised.
    A loser of the lease follows the winner's task instead of submitting.
    """
    catalog = svc.catalog
    owner = _owner()
    if not catalog.begin_submit(record.id, owner, SUBMIT_LEASE_SECONDS):
        return _follow_submitter(svc, catalog.get(record.id))
    try:
        svc.budget.acquire("submit")
    except BaseException as exc:  # nothing was sent yet
        catalog.abandon_submit(record.id, owner, f"submit not sent: {exc!r}")
        raise
    try:
        answer = svc.client.submit(staged.job, oss_resolve=staged.oss_resolve or None)
    except DashScopeTransportError as exc:
        if not exc.sent:
            catalog.abandon_submit(record.id, owner, exc)
            raise
        log.error("job %s: no answer to the submit (%s); it may have been accepted", record.id, exc)
        raise JobUncertain(catalog.get(record.id)) from exc
    except VaceflowError as exc:  # an answer with an error, or refused before sending
        catalog.abandon_submit(record.id, owner, exc)
        raise
    # Anything else (an interrupt, a termination signal) may have come after the request
    # left: the row keeps its lease and reads `uncertain` when it runs out.
    task_id = answer.output.task_id
    done = catalog.record_submitted(record.id, task_id, answer.request_id)
    log.info("job %s submitted: task %s (request %s)", record.id, task_id, answer.request_id)
    return done


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
            svc.catalog.record_status(record.id, _progress(task_id, status))
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


def _progress(task_id: str, status: TaskStatus) -> TaskResponse:
    """A waiting status for the catalog's history (a list row carries no response)."""
    return TaskResponse.model_validate(
        {"request_id": "", "output": {"task_id": task_id, "task_status": status.value}}
    )


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
    staged: list[StagedInput] | None = None,
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
        discard_inputs(svc.stager, [s for s in staged if s.sha256 not in in_use], keep=False)
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
        svc.budget.acquire("cancel")
        svc.client.cancel(record.task_id)
    except DashScopeError as exc:
        log.warning("task %s not cancelled: %s", record.task_id, exc)
        return False
    svc.catalog.record_status(record.id, svc.client.get(record.task_id))
    log.info("job %s: task %s cancelled", record.id, record.task_id)
    return True

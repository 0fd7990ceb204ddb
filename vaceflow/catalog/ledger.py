"""The job ledger: what makes "submit exactly once" true.

The protocol, in the order a run calls it:

1. `claim(identity, job)` creates the job's row, or returns the existing one: two runs
   of the same job get the same row (the identity column is unique; a race on insert
   resolves to one row).
2. `begin_submit(job_id, owner, lease_seconds)` is a compare-and-set on that row: one
   `UPDATE ... WHERE` that one caller wins. It takes a row that is `new` or `staging`,
   and also a row another run left `submitting`: that run has sent nothing, so taking
   it over is safe at any moment (the holder finds out at step 3). Runs that lost the
   row to a new one wait for its task id and take the row over only once its lease
   has run out. No lock of our own, no lock service: the database's row update is the
   lock, on SQLite and PostgreSQL.
3. `mark_sending(job_id, owner, window)` is the last compare-and-set before the request
   leaves, just before the HTTP send: `submitting` -> `sending`, with `sending_at` and
   `send_until` (by when an answer must have come). A holder that lost the row fails
   here and sends nothing. From here on the service may have the request.
4. The sender writes `record_submitted(job_id, task_id, request_id)` at once (its own
   committed transaction), or, when the service answered with an error (nothing was
   created), `abandon_submit(job_id, owner, error)`, which makes the row submittable.
5. `record_status` for each change the service reports, then `record_output` or
   `record_failure`.

The window no ledger can close is now the request itself: a crash, or a lost answer,
between step 3 and step 4. Such a row reads `uncertain` once `send_until` has passed
(`JobStatus.UNCERTAIN`, `Catalog.uncertain()`). It is never submitted again on a guess:
`vaceflow.reconcile` reads the provider's task list over the row's window and records
the one task found (`record_submitted`), or, when the list shows that no task was made,
`release_unsent` makes the row submittable again. What the list cannot settle waits for
a person (`vaceflow catalog resolve`). `mark_resubmit` is how a task the service forgot
(UNKNOWN after 24 h), one that failed with a retryable code (InternalError.Algo), or an
uncertain one a person decided to pay for again gets another go: it clears the task id
and keeps the history.

`attempts` counts submit requests that may have reached the service: `mark_sending`
adds one; `abandon_submit` and `release_unsent` take it back. Secrets never enter:
every URL is stored without its query string (`vaceflow.redact`), and no API key
is ever passed in.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vaceflow.catalog.database import CatalogStore
from vaceflow.catalog.records import InputRecord, JobEvent, JobRecord, OutputRecord
from vaceflow.catalog.schema import (
    SUBMITTABLE_STATUSES,
    EventRow,
    JobRow,
    JobStatus,
    uncertain_clause,
)
from vaceflow.errors import CatalogConflict, JobNotFound
from vaceflow.jobs import Job
from vaceflow.limits import ACCOUNT, Role
from vaceflow.redact import redact_json, redact_text, redact_url
from vaceflow.responses import TaskResponse, TaskStatus, parse_service_time

__all__ = ["Ledger", "new_job_id"]

_RESUBMITTABLE = (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.UNKNOWN, JobStatus.EXPIRED)
_WAITING = (JobStatus.SUBMITTED, JobStatus.RUNNING)


def new_job_id() -> str:
    """`vf_` and 12 lowercase base32 characters (60 random bits)."""
    return "vf_" + base64.b32encode(secrets.token_bytes(8)).decode("ascii").lower()[:12]


def _service_time(value: str | None) -> datetime | None:
    parsed = parse_service_time(value)
    return parsed.astimezone(UTC) if parsed else None


def _status_of(service: TaskStatus, submitted_at: datetime | None, now: datetime) -> JobStatus:
    if service is TaskStatus.UNKNOWN:
        ttl = timedelta(seconds=ACCOUNT.task_ttl_seconds)
        old = submitted_at is not None and now - submitted_at >= ttl
        return JobStatus.EXPIRED if old else JobStatus.UNKNOWN
    return {
        TaskStatus.PENDING: JobStatus.SUBMITTED,
        TaskStatus.RUNNING: JobStatus.RUNNING,
        TaskStatus.SUSPENDED: JobStatus.RUNNING,
        TaskStatus.SUCCEEDED: JobStatus.SUCCEEDED,
        TaskStatus.FAILED: JobStatus.FAILED,
        TaskStatus.CANCELED: JobStatus.CANCELED,
    }[service]


def _inputs_json(
    inputs: Mapping[Role, Sequence[InputRecord]] | Mapping[str, Sequence[InputRecord]],
) -> dict[str, Any]:
    """The inputs as stored: every URL without its query string, whatever path wrote them."""
    return {
        str(role): [
            {
                "source": redact_url(item.source),
                "sha256": item.sha256,
                "staged_url": redact_url(item.staged_url) if item.staged_url else None,
                "report": redact_json(item.report) if item.report is not None else None,
            }
            for item in items
        ]
        for role, items in inputs.items()
    }


class Ledger(CatalogStore):
    """The protocol above, over one database, and the reads it needs."""

    def _row(self, session: Session, job_id: str) -> JobRow:
        row = session.scalars(
            select(JobRow).where(JobRow.id == job_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise JobNotFound(job_id)
        return row

    def _record(self, row: JobRow) -> JobRecord:
        return JobRecord.from_row(row, now=self._clock())

    def _event(
        self, session: Session, row: JobRow, now: datetime, note: str | None = None, **extra: Any
    ) -> None:
        session.add(
            EventRow(
                job_id=row.id,
                at=now,
                status=row.status,
                service_status=row.service_status,
                task_id=row.task_id,
                note=redact_text(note) if note else None,
                **extra,
            )
        )

    @staticmethod
    def _last_note(session: Session, job_id: str) -> str | None:
        return session.scalars(
            select(EventRow.note)
            .where(EventRow.job_id == job_id)
            .order_by(EventRow.id.desc())
            .limit(1)
        ).first()

    @staticmethod
    def _changed(session: Session, statement: Any) -> bool:
        result = cast(CursorResult[Any], session.execute(statement))
        return result.rowcount == 1

    def _insert_once(self, row: JobRow, note: str) -> JobRecord:
        """Insert a new job's row. When another insert of the same identity came first
        (after our read found none), the unique constraint decided: its row is the job's."""
        try:
            with self._transaction() as session:
                session.add(row)
                session.flush()
                self._event(session, row, row.created_at, note)
                return self._record(row)
        except IntegrityError:
            winner = self.find(identity=row.identity)
            if winner is None:
                raise
            return winner

    # --- writes -----------------------------------------------------------------------

    def claim(
        self,
        identity: str,
        job: Job,
        *,
        inputs: Mapping[Role, Sequence[InputRecord]] | None = None,
        parent_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> JobRecord:
        """The job's row, created when absent; concurrent claims get the same row.

        `inputs` describes each input (source, conformed sha256, conform report); by
        default the job's own URLs, without their query strings.
        """
        existing = self.find(identity=identity)
        if existing is not None:
            return existing
        if inputs is None:
            inputs = {
                role: [InputRecord(source=u) for u in urls]
                for role, urls in job.input.media().items()
            }
        now = self._clock()
        row = JobRow(
            id=new_job_id(),
            identity=identity,
            function=job.function.value,
            model=job.model,
            prompt=job.input.prompt,
            parameters=job.parameters.model_dump(mode="json", exclude_none=True),
            request=redact_json(job.to_body()),
            inputs=_inputs_json(inputs),
            status=JobStatus.NEW.value,
            attempts=0,
            parent_id=parent_id,
            flow_run_id=flow_run_id,
            created_at=now,
            updated_at=now,
        )
        return self._insert_once(row, "claimed")

    def record_staging(
        self,
        job_id: str,
        *,
        inputs: Mapping[Role, Sequence[InputRecord]] | None = None,
        expires_at: datetime | None = None,
    ) -> JobRecord:
        """Inputs being staged (or staged: pass their URLs and when they expire). Too late
        (CatalogConflict) once a submit request may have left."""
        now = self._clock()
        with self._transaction() as session:
            row = self._row(session, job_id)
            status = JobStatus(row.status)
            if status not in SUBMITTABLE_STATUSES and status is not JobStatus.SUBMITTING:
                raise CatalogConflict(f"job {job_id} is {row.status}: too late to stage inputs")
            entered = status is JobStatus.NEW
            if entered:  # a `submitting` row stays its holder's until a run takes it over
                row.status = JobStatus.STAGING.value
            if inputs is not None:
                row.inputs = _inputs_json(inputs)
            if expires_at is not None:
                row.inputs_expire_at = expires_at
            row.updated_at = now
            if entered:
                self._event(session, row, now, "staging inputs")
            return self._record(row)

    def begin_submit(
        self, job_id: str, owner: str, lease_seconds: float, *, take_over: bool = True
    ) -> bool:
        """Take the right to submit; True for exactly one caller (module docstring, 2).

        `take_over=True` (a run arriving at the submit) also takes a row another run
        holds but has sent nothing for; `False` (a run that lost the row and waited)
        only once that holder's lease has run out."""
        now = self._clock()
        held = and_(JobRow.status == JobStatus.SUBMITTING.value, JobRow.task_id.is_(None))
        if not take_over:
            held = and_(
                held, or_(JobRow.submit_lease_until.is_(None), JobRow.submit_lease_until <= now)
            )
        with self._transaction() as session:
            before = self._row(session, job_id)
            previous = before.submit_owner if before.status == JobStatus.SUBMITTING else None
            won = self._changed(
                session,
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    or_(JobRow.status.in_([s.value for s in SUBMITTABLE_STATUSES]), held),
                )
                .values(
                    status=JobStatus.SUBMITTING.value,
                    submit_owner=owner,
                    submit_lease_until=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False),
            )
            if won:
                session.refresh(before)
                note = f"submit lease to {owner}"
                if previous and previous != owner:
                    note += f", taken over from {previous} (it had sent nothing)"
                self._event(session, before, now, note)
            return won

    def mark_sending(self, job_id: str, owner: str, window_seconds: float) -> bool:
        """The request is about to leave (module docstring, 3): False, and nothing may
        be sent, when `owner` no longer holds the row. Called again before a resend
        (after a 429), it moves the window to the new request."""
        now = self._clock()
        with self._transaction() as session:
            row = self._row(session, job_id)
            if row.submit_owner != owner or row.task_id is not None:
                return False
            first = row.status == JobStatus.SUBMITTING
            if not first and row.status != JobStatus.SENDING:
                return False
            row.status = JobStatus.SENDING.value
            row.sending_at = now
            row.send_until = now + timedelta(seconds=window_seconds)
            row.updated_at = now
            if first:
                row.attempts += 1
                self._event(
                    session,
                    row,
                    now,
                    f"sending the submit request (answer due within {window_seconds:g} s)",
                )
            return True

    def record_submitted(
        self, job_id: str, task_id: str, request_id: str | None, *, note: str | None = None
    ) -> JobRecord:
        """Write the task id the service returned; call it first, before anything else.

        Idempotent for the same task id; a different task id for a job that already has
        one, or a task id another job holds, raises CatalogConflict (after keeping the
        id in the job's history). `note` says how the id was learnt, when not from the
        submit's own answer (reconciled from the task list, or given by a person).
        """
        now = self._clock()
        try:
            with self._transaction() as session:
                row = self._row(session, job_id)
                if row.task_id == task_id:
                    return self._record(row)
                if row.task_id is None:
                    row.task_id = task_id
                    row.request_id = request_id
                    row.status = JobStatus.SUBMITTED.value
                    row.service_status = TaskStatus.PENDING.value
                    row.submitted_at = now
                    row.submit_lease_until = None
                    row.error_code = row.error_message = None  # an earlier refusal is history
                    row.updated_at = now
                    session.flush()  # the unique task id is checked here
                    self._event(session, row, now, note or f"submitted (request {request_id})")
                    return self._record(row)
                self._event(session, row, now, f"a second task {task_id} was recorded; kept here")
                held = row.task_id
        except IntegrityError:
            owner = self.find(task_id=task_id)
            raise CatalogConflict(
                f"task {task_id} belongs to job {owner.id if owner else '?'}, not {job_id}"
            ) from None
        raise CatalogConflict(f"job {job_id} already has task {held}, not {task_id}")

    def abandon_submit(self, job_id: str, owner: str, error: BaseException | str) -> bool:
        """Give the row back when the submit certainly created nothing (not sent, or
        answered with an error); it is submittable again. False when `owner` no longer
        holds it."""
        now = self._clock()
        code = getattr(error, "code", None)
        message = redact_text(str(error))
        with self._transaction() as session:
            row = self._row(session, job_id)
            if row.submit_owner != owner or row.task_id is not None:
                return False
            if row.status == JobStatus.SENDING:
                row.attempts -= 1
            elif row.status != JobStatus.SUBMITTING:
                return False
            self._reopen(row, now)
            row.error_code = code if isinstance(code, str) else None
            row.error_message = message
            self._event(session, row, now, f"submit abandoned: {message}")
            return True

    def release_unsent(self, job_id: str, sending_at: datetime, note: str) -> bool:
        """An uncertain submit the service's task list shows it never accepted: the row
        is submittable again (once per request: `sending_at` must still be the row's).
        False when the row moved on meanwhile."""
        now = self._clock()
        with self._transaction() as session:
            row = self._row(session, job_id)
            if (
                row.status != JobStatus.SENDING
                or row.task_id is not None
                or row.sending_at != sending_at
            ):
                return False
            row.attempts -= 1
            self._reopen(row, now)
            self._event(session, row, now, note)
            return True

    @staticmethod
    def _reopen(row: JobRow, now: datetime) -> None:
        row.status = JobStatus.NEW.value
        row.submit_owner = None
        row.submit_lease_until = None
        row.sending_at = None
        row.send_until = None
        row.updated_at = now

    def note(self, job_id: str, note: str) -> None:
        """A line in the job's history that changes nothing else; not repeated when it
        is the history's last line already."""
        now = self._clock()
        with self._transaction() as session:
            row = self._row(session, job_id)
            last = session.scalars(
                select(EventRow.note)
                .where(EventRow.job_id == job_id)
                .order_by(EventRow.id.desc())
                .limit(1)
            ).first()
            if last != redact_text(note):
                self._event(session, row, now, note)

    def record_status(self, job_id: str, task: TaskResponse) -> JobRecord:
        """Follow the service's answer for the job's task. One history event per change of
        service status, not per poll; a final status is never overwritten."""
        now = self._clock()
        out = task.output
        with self._transaction() as session:
            row = self._row(session, job_id)
            if row.task_id != out.task_id:
                raise CatalogConflict(f"job {job_id} follows task {row.task_id}, not {out.task_id}")
            changed = row.service_status != out.task_status.value
            row.service_status = out.task_status.value
            row.updated_at = now
            if not JobStatus(row.status).is_final:
                status = _status_of(out.task_status, row.submitted_at, now)
                row.status = status.value
                if status.is_final:
                    row.finished_at = now
                if status is JobStatus.FAILED:
                    row.error_code = out.code
                    row.error_message = redact_text(out.message or "")
            if task.usage is not None:
                row.usage = task.usage.model_dump(mode="json", exclude_none=True)
                if out.task_status is TaskStatus.SUCCEEDED and task.usage.video_duration:
                    count = task.usage.video_count or 1
                    price = self.pricing.for_model(row.model)
                    row.cost = price.of(task.usage.video_duration * count)
            if changed:
                note = f"{out.code}: {out.message}" if out.code else None
                self._event(
                    session,
                    row,
                    now,
                    note,
                    submit_time=_service_time(out.submit_time),
                    scheduled_time=_service_time(out.scheduled_time),
                    end_time=_service_time(out.end_time),
                )
            return self._record(row)

    def record_output(self, job_id: str, output: OutputRecord) -> JobRecord:
        """The video is ours: where it is, its hash and probe, its thumbnail."""
        now = self._clock()
        with self._transaction() as session:
            row = self._row(session, job_id)
            # Called again once the video is published: say that, not the output twice.
            uri = redact_url(output.s3_uri) if output.s3_uri else None
            again = row.output_path == output.path and self._last_note(session, job_id) == (
                f"output {output.path}"
            )
            note = (
                (f"published {uri}" if uri else None) if again else f"output {output.path or uri}"
            )
            row.output_path = output.path
            row.output_uri = uri
            row.output_sha256 = output.sha256
            row.output_probe = redact_json(output.probe) if output.probe is not None else None
            row.thumbnail_path = output.thumbnail_path
            row.status = JobStatus.SUCCEEDED.value
            row.finished_at = row.finished_at or now
            row.updated_at = now
            if note:
                self._event(session, row, now, note)
            return self._record(row)

    def record_failure(self, job_id: str, code: str | None, message: str) -> JobRecord:
        """The job ended without a video, for a reason of ours or the service's."""
        now = self._clock()
        with self._transaction() as session:
            row = self._row(session, job_id)
            row.status = JobStatus.FAILED.value
            row.error_code = code
            row.error_message = redact_text(message)
            row.submit_lease_until = None
            row.finished_at = row.finished_at or now
            row.updated_at = now
            self._event(session, row, now, f"{code}: {message}" if code else message)
            return self._record(row)

    def mark_resubmit(self, job_id: str, reason: str, *, fresh: bool = False) -> JobRecord:
        """Let the job be submitted again (a forgotten, failed or uncertain task): clears
        the task id, keeps the history. `fresh` also allows a succeeded job (the user
        asked to pay for a new video). Raises CatalogConflict for any other state."""
        now = self._clock()
        allowed_statuses = [*_RESUBMITTABLE, *((JobStatus.SUCCEEDED,) if fresh else ())]
        with self._transaction() as session:
            row = self._row(session, job_id)
            old_task = row.task_id
            allowed = self._changed(
                session,
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    or_(
                        JobRow.status.in_([s.value for s in allowed_statuses]),
                        uncertain_clause(now),
                    ),
                )
                .values(
                    status=JobStatus.NEW.value,
                    task_id=None,
                    request_id=None,
                    service_status=None,
                    submit_owner=None,
                    submit_lease_until=None,
                    sending_at=None,
                    send_until=None,
                    submitted_at=None,
                    finished_at=None,
                    usage=None,
                    cost=None,
                    error_code=None,
                    error_message=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False),
            )
            if not allowed:
                status = JobRecord.from_row(row, now=now).status
                raise CatalogConflict(f"job {job_id} is {status}: not resubmittable")
            session.refresh(row)
            self._event(session, row, now, f"resubmit ({reason}); previous task {old_task}")
            return self._record(row)

    def record_derived(
        self,
        identity: str,
        *,
        function: str,
        model: str,
        prompt: str,
        parent_id: str,
        inputs: Mapping[str, Sequence[InputRecord]],
        parameters: Mapping[str, Any],
        output: OutputRecord,
        flow_run_id: str | None = None,
    ) -> JobRecord:
        """A video made here from cataloged jobs (no task, no cost), e.g. `long_video`'s
        joined segments: one succeeded row with its output and lineage. Idempotent by
        identity: the existing row is returned unchanged."""
        existing = self.find(identity=identity)
        if existing is not None:
            return existing
        now = self._clock()
        request = {"function": function, "parameters": dict(parameters)}
        row = JobRow(
            id=new_job_id(),
            identity=identity,
            function=function,
            model=model,
            prompt=prompt,
            parameters=redact_json(dict(parameters)),
            request=redact_json(request),
            inputs=_inputs_json(inputs),
            status=JobStatus.SUCCEEDED.value,
            attempts=0,
            parent_id=parent_id,
            flow_run_id=flow_run_id,
            output_path=output.path,
            output_uri=redact_url(output.s3_uri) if output.s3_uri else None,
            output_sha256=output.sha256,
            output_probe=redact_json(output.probe) if output.probe is not None else None,
            thumbnail_path=output.thumbnail_path,
            created_at=now,
            updated_at=now,
            finished_at=now,
        )
        return self._insert_once(row, f"derived ({function}) from {parent_id}")

    def record_flow_run(self, job_id: str, flow_run_id: str) -> None:
        """The Prefect flow run now driving the job (a resumed run replaces the first)."""
        with self._transaction() as session:
            row = self._row(session, job_id)
            if row.flow_run_id != flow_run_id:
                row.flow_run_id = flow_run_id
                row.updated_at = self._clock()

    def get(self, job_id: str, *, history: bool = False) -> JobRecord:
        """The job, with its history when asked; raises JobNotFound."""
        with self._transaction() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise JobNotFound(job_id)
            events = self._history(session, job_id) if history else ()
            return JobRecord.from_row(row, now=self._clock(), history=events)

    def find(
        self,
        *,
        identity: str | None = None,
        task_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> JobRecord | None:
        """The job with this identity, task id or flow run (exactly one of them), if any."""
        keys = {
            JobRow.identity: identity,
            JobRow.task_id: task_id,
            JobRow.flow_run_id: flow_run_id,
        }
        given = [(column, value) for column, value in keys.items() if value is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of identity, task_id or flow_run_id")
        column, value = given[0]
        with self._transaction() as session:
            row = session.scalars(
                select(JobRow).where(column == value).order_by(JobRow.updated_at.desc())
            ).first()
            return self._record(row) if row is not None else None

    def history(self, job_id: str) -> tuple[JobEvent, ...]:
        with self._transaction() as session:
            return self._history(session, job_id)

    @staticmethod
    def _history(session: Session, job_id: str) -> tuple[JobEvent, ...]:
        rows = session.scalars(
            select(EventRow).where(EventRow.job_id == job_id).order_by(EventRow.id)
        )
        return tuple(JobEvent.from_row(r) for r in rows)

    def in_flight(self) -> list[JobRecord]:
        """Jobs to resume: a task id and no video yet (waiting, or succeeded and not
        collected), oldest first."""
        now = self._clock()
        no_output = and_(JobRow.output_path.is_(None), JobRow.output_uri.is_(None))
        query = (
            select(JobRow)
            .where(
                JobRow.task_id.is_not(None),
                or_(
                    JobRow.status.in_([s.value for s in _WAITING]),
                    and_(JobRow.status == JobStatus.SUCCEEDED.value, no_output),
                ),
            )
            .order_by(JobRow.created_at, JobRow.id)
        )
        with self._transaction() as session:
            return [JobRecord.from_row(r, now=now) for r in session.scalars(query)]

    def inputs_in_use(self, *, exclude: str | None = None) -> set[str]:
        """sha256 of every input a job not yet ended may still need fetched (its own
        row excluded): staged inputs are shared by content, so deleting one after a job
        succeeds must spare those."""
        active = [
            JobStatus.NEW,
            JobStatus.STAGING,
            JobStatus.SUBMITTING,
            JobStatus.SENDING,
            *_WAITING,
        ]
        query = select(JobRow.inputs).where(JobRow.status.in_([s.value for s in active]))
        if exclude is not None:
            query = query.where(JobRow.id != exclude)
        used: set[str] = set()
        with self._transaction() as session:
            for inputs in session.scalars(query):
                for records in (inputs or {}).values():
                    used.update(r["sha256"] for r in records if r.get("sha256"))
        return used

    def uncertain(self) -> list[JobRecord]:
        """Rows left `sending` past `send_until` with no task id (module docstring),
        newest first."""
        now = self._clock()
        query = (
            select(JobRow)
            .where(uncertain_clause(now))
            .order_by(JobRow.created_at.desc(), JobRow.id.desc())
        )
        with self._transaction() as session:
            return [JobRecord.from_row(r, now=now) for r in session.scalars(query)]

    def unanswered(self) -> list[JobRecord]:
        """Every row whose submit request may be out there without its task id written:
        `sending`, in progress or uncertain. Reconciling one must not take the task of
        another whose window overlaps."""
        query = select(JobRow).where(
            JobRow.status == JobStatus.SENDING.value, JobRow.task_id.is_(None)
        )
        now = self._clock()
        with self._transaction() as session:
            return [JobRecord.from_row(r, now=now) for r in session.scalars(query)]

    def known_task_ids(self, *, since: datetime) -> set[str]:
        """Every task id a job holds or held (a resubmitted job's earlier tasks live in
        its history) recorded since `since`: none of them is an unclaimed task."""
        with self._transaction() as session:
            held = session.scalars(
                select(JobRow.task_id).where(
                    JobRow.task_id.is_not(None), JobRow.updated_at >= since
                )
            )
            earlier = session.scalars(
                select(EventRow.task_id).where(EventRow.task_id.is_not(None), EventRow.at >= since)
            )
            return {t for t in [*held, *earlier] if t}

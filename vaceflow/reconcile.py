"""Settling an uncertain submit from the provider's own task list.

A submit whose answer never came (the run was killed with its request on the wire, the
connection dropped, the answer was lost) leaves its row `sending` with no task id; past
its window it reads `uncertain`. The service knows whether it made a task, and its task
list shows every task of the account with its creation time. For one such row:

    window   from `sending_at` less the clock margin to `send_until` plus the margin
    read     the model's tasks created in the window, every page, and only once the
             window has closed (a task created late is not missed)
    drop     every task id that a catalog row holds or held
    decide   none left              the service never accepted it: submit again
             exactly one, no rival  it is this job's task: record it, resume waiting
             otherwise              leave it uncertain and name the candidates

A rival is another row whose request may be out there unanswered too (`sending`, no task
id) with an overlapping window: its task and ours could not be told apart. A window
older than the list reaches (24 h), or a list that fails, also leaves the row uncertain,
for `vaceflow catalog resolve` to settle.

The one assumption: no other client submits on the same account's model within the same
seconds. Where one might, `VACEFLOW_RECONCILE=off` keeps the automatic part off (a run
then stops with exit 5) and `vaceflow catalog reconcile --dry-run` shows what it would do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from vaceflow.catalog import Catalog, CatalogConflict, JobRecord, JobStatus
from vaceflow.errors import DashScopeError
from vaceflow.limits import ACCOUNT
from vaceflow.responses import TaskListItem, TaskListResponse

__all__ = ["Reconciliation", "TaskLister", "Verdict", "Window", "decide", "reconcile"]

PAGE_SIZE = 100


class TaskLister(Protocol):
    def list(
        self,
        *,
        start: datetime,
        end: datetime,
        model_name: str | None,
        page_no: int,
        page_size: int,
    ) -> TaskListResponse: ...


@dataclass(frozen=True)
class Window:
    """When a submit's task, if the service made one, was created (aware UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, record: JobRecord, margin: float) -> Window:
        if record.sending_at is None or record.send_until is None:
            raise ValueError(f"job {record.id} has no submit on record")
        pad = timedelta(seconds=margin)
        return cls(record.sending_at - pad, record.send_until + pad)

    def holds(self, item: TaskListItem) -> bool:
        created = _created(item)
        return created is not None and self.start <= created <= self.end

    def overlaps(self, other: Window) -> bool:
        return self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M:%S} to {self.end:%H:%M:%S} UTC"


class Verdict(StrEnum):
    FOUND = "found"
    """One unclaimed task in the window: recorded, the job resumes waiting on it."""
    NONE = "none"
    """No unclaimed task: the service never accepted it; the job may be submitted again."""
    AMBIGUOUS = "ambiguous"
    """Several candidates, or a rival row could own the one found."""
    EARLY = "early"
    """The window has not closed yet: read the list at `Reconciliation.read_at`."""
    TOO_OLD = "too_old"
    """The window is older than the task list reaches (24 h)."""
    LIST_FAILED = "list_failed"
    """The task list could not be read."""
    SETTLED = "settled"
    """The row is not uncertain (any more): nothing to do."""

    @property
    def needs_a_person(self) -> bool:
        return self in (Verdict.AMBIGUOUS, Verdict.TOO_OLD, Verdict.LIST_FAILED)


@dataclass(frozen=True)
class Reconciliation:
    """What reconciling one job found (and, unless a dry run, did)."""

    job_id: str
    verdict: Verdict
    window: Window | None = None
    candidates: tuple[TaskListItem, ...] = ()
    rivals: tuple[str, ...] = ()
    detail: str = ""
    read_at: datetime | None = None

    @property
    def summary(self) -> str:
        """One line for a person: what was found and what it means."""
        where = f" between {self.window}" if self.window else ""
        ids = ", ".join(_describe(c) for c in self.candidates)
        match self.verdict:
            case Verdict.FOUND:
                return f"task {ids} is the one unclaimed task of the provider's list{where}"
            case Verdict.NONE:
                return f"the provider's list shows no unclaimed task{where}: never accepted"
            case Verdict.AMBIGUOUS:
                also = (
                    f"; other unanswered submits: {', '.join(self.rivals)}" if self.rivals else ""
                )
                return f"candidates{where}: {ids or 'none'}{also}"
            case Verdict.EARLY:
                return f"the submit's window closes at {self.read_at:%H:%M:%S} UTC"
            case _:
                return self.detail


def decide(
    window: Window,
    listed: Iterable[TaskListItem],
    known: set[str],
    rivals: Sequence[str] = (),
) -> tuple[Verdict, tuple[TaskListItem, ...]]:
    """The verdict over the list read for `window` (module docstring); pure."""
    candidates = tuple(i for i in listed if i.task_id not in known and window.holds(i))
    if not candidates:
        return Verdict.NONE, ()
    if len(candidates) == 1 and not rivals:
        return Verdict.FOUND, candidates
    return Verdict.AMBIGUOUS, candidates


def reconcile(
    catalog: Catalog,
    client: TaskLister,
    job_id: str,
    *,
    margin: float,
    apply: bool = True,
    now: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> Reconciliation:
    """Reconcile one job from the task list and, unless `apply=False`, record the
    outcome: the task found, the row made submittable again, or a history line naming
    the candidates."""
    record = catalog.get(job_id)
    now = now or datetime.now(UTC)
    if record.task_id is not None or record.status not in (JobStatus.SENDING, JobStatus.UNCERTAIN):
        return Reconciliation(job_id, Verdict.SETTLED, detail=f"job is {record.status.value}")
    window = Window.of(record, margin)
    if now < window.end:
        return Reconciliation(job_id, Verdict.EARLY, window, read_at=window.end)
    if window.start < now - timedelta(seconds=ACCOUNT.list_window_seconds):
        result = Reconciliation(
            job_id,
            Verdict.TOO_OLD,
            window,
            detail=f"the submit ({window}) is older than the provider's task list reaches (24 h)",
        )
        return _note(catalog, result, apply)
    try:
        listed = _read(client, window, model=record.model, page_size=page_size)
    except DashScopeError as exc:
        result = Reconciliation(
            job_id, Verdict.LIST_FAILED, window, detail=f"the task list could not be read: {exc}"
        )
        return _note(catalog, result, apply)
    # Read the catalog after the list: a task id written meanwhile is then known here.
    known = catalog.known_task_ids(since=window.start - timedelta(days=1))
    rivals = tuple(
        r.id
        for r in catalog.unanswered()
        if r.id != job_id and r.sending_at and Window.of(r, margin).overlaps(window)
    )
    verdict, candidates = decide(window, listed, known, rivals)
    result = Reconciliation(job_id, verdict, window, candidates, rivals)
    if not apply:
        return result
    if verdict is Verdict.FOUND:
        found = candidates[0]
        try:
            catalog.record_submitted(
                job_id, found.task_id, found.request_id, note=f"reconciled: {result.summary}"
            )
        except CatalogConflict as exc:
            return _note(
                catalog,
                Reconciliation(job_id, Verdict.AMBIGUOUS, window, candidates, detail=str(exc)),
                apply,
            )
        return result
    if verdict is Verdict.NONE:
        assert record.sending_at is not None
        note = f"reconciled: {result.summary}; submitting it again"
        if not catalog.release_unsent(job_id, record.sending_at, note):
            return Reconciliation(job_id, Verdict.SETTLED, window, detail="settled meanwhile")
        return result
    return _note(catalog, result, apply)


def _read(client: TaskLister, window: Window, *, model: str, page_size: int) -> list[TaskListItem]:
    """Every task of `model` created in the window. The list's bounds are whole seconds
    of the service's clock: the end is rounded up, and `Window.holds` keeps the rest."""
    items: list[TaskListItem] = []
    page = 1
    while True:
        answer = client.list(
            start=window.start,
            end=window.end + timedelta(seconds=1),
            model_name=model,
            page_no=page,
            page_size=page_size,
        )
        items += answer.data
        if not answer.data or page >= answer.total_page:
            return items
        page += 1


def _note(catalog: Catalog, result: Reconciliation, apply: bool) -> Reconciliation:
    if apply:
        catalog.note(result.job_id, f"uncertain: {result.summary}")
    return result


def _created(item: TaskListItem) -> datetime | None:
    if item.gmt_create is None:
        return None
    return datetime.fromtimestamp(item.gmt_create / 1000, UTC)


def _describe(item: TaskListItem) -> str:
    created = _created(item)
    when = f" created {created:%H:%M:%S} UTC" if created else ""
    return f"{item.task_id} ({item.status.value}{when})"

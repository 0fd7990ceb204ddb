"""Follow tasks to their end with one thread and few calls: `TaskWatcher`, the one way
vaceflow waits (one job, a batch, a benchmark alike).

Each watched task has a moment it wants its next look, from the `PollSchedule` (how
long its kind runs, and when the service began running it). A tick comes when the
first of them is due, and makes one call: a `get` when one task is watched (it
answers with the status and, at the end, the result), else the batch status query
(`GET /tasks`, 100 tasks a page), which shows every watched task at once; then a
`get` only for each task it shows ended (the list carries no result). After a tick
every task it showed is scheduled again from what was seen, so the tick always
follows the task nearest its expected end, and many tasks cost one call a tick.
A task the list does not show (older than its window, or the list refused) is
fetched on its own. Every call spends the client's rate budget (`vaceflow.client`); a
call that failed (429, 5xx, no connection) is tried again with backoff, never turned
into a failed job.

Waiters block in `wait()` (progress callbacks run in the waiter's own thread), or
hold the future `watch()` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from queue import Empty, SimpleQueue
from types import TracebackType
from typing import NoReturn, Self

from vaceflow.errors import DashScopeError, TaskFailed, WaitCancelled, WaitTimeout
from vaceflow.limits import ACCOUNT
from vaceflow.responses import TaskListItem, TaskResponse, TaskStatus, parse_service_time
from vaceflow.retry import RetryPolicy
from vaceflow.waiting.schedule import PollSchedule
from vaceflow.waiting.source import OnPoll, TaskLister

__all__ = ["POLL_BACKOFF", "TaskWatcher"]

log = logging.getLogger("vaceflow.waiting")

PAGE_SIZE = 100
POLL_BACKOFF = RetryPolicy(attempts=1_000_000, base=1.0, cap=30.0)
"""Delays before looking again after calls that failed (the client retried each)."""
CANCEL_CHECK = 0.2
"""How often a waiter given a cancel event checks it (no call is made)."""

_Event = tuple[TaskStatus, float, int] | None
"""(status, seconds since first watched, looks) after each look; None: resolved."""


@dataclass
class _Watched:
    task_id: str
    future: Future[TaskResponse]
    expected: float | None
    since: float
    """Monotonic time it was first watched."""
    since_wall: float
    due: float
    """Monotonic time its next look is wanted."""
    status: TaskStatus | None = None
    started: float | None = None
    """Epoch seconds the service began running it (its `scheduled_time`)."""
    looks: int = 0
    failures: int = 0
    unlisted: float | None = None
    """Monotonic time since which the list has not shown it."""
    kept: bool = False
    """Followed to its end even with no waiter (a `watch()` caller holds the future)."""
    listeners: list[SimpleQueue[_Event]] = field(default_factory=list)


class TaskWatcher:
    """One thread following every watched task; `watch()`, `wait()` are thread-safe.

    `grace` is how long a task may go unseen by the list before it is fetched on its
    own; `window_margin` widens the list's time window around the watched tasks.
    """

    def __init__(
        self,
        client: TaskLister,
        *,
        schedule: PollSchedule = PollSchedule(),
        grace: float = 15.0,
        window_margin: float = 300.0,
        max_pages: int = 20,
        backoff: RetryPolicy = POLL_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.schedule = schedule
        self.grace = grace
        self._margin = window_margin
        self._max_pages = max_pages
        self._backoff = backoff
        self._clock = clock
        self._wall = wall
        self._watched: dict[str, _Watched] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._use_list = True
        self._list_failures = 0
        self._thread: threading.Thread | None = None
        self.list_calls = 0
        self.get_calls = 0

    # --- the waiters' side ---------------------------------------------------------------

    def watch(self, task_id: str, *, expected: float | None = None) -> Future[TaskResponse]:
        """Follow the task to its end (or `forget`); the future holds its SUCCEEDED
        response, or TaskFailed, or a DashScopeError no retry can change (a wrong key).

        `expected`: seconds a task of its kind runs (the catalog's median), if known.
        """
        with self._cond:
            item = self._follow(task_id, expected)
            item.kept = True
            return item.future

    def wait(
        self,
        task_id: str,
        *,
        expected: float | None = None,
        timeout: float | None = None,
        on_poll: OnPoll | None = None,
        cancel: threading.Event | None = None,
    ) -> TaskResponse:
        """Block until the task ends; returns its SUCCEEDED response.

        Raises TaskFailed when it ends FAILED, CANCELED or UNKNOWN, WaitTimeout after
        `timeout` seconds (the task is left running: wait again to resume),
        WaitCancelled when `cancel` is set (the task is cancelled first if it may still
        be PENDING), and DashScopeError only for answers no retry can change.
        `on_poll(status, seconds, looks)` runs in this thread after every look.
        """
        events: SimpleQueue[_Event] = SimpleQueue()
        start = self._clock()
        with self._cond:
            item = self._follow(task_id, expected)
            item.listeners.append(events)
        try:
            while True:
                left = None if timeout is None else timeout - (self._clock() - start)
                if left is not None and left <= 0:
                    raise WaitTimeout(task_id, item.status, waited=self._clock() - start)
                step = left if cancel is None else min(CANCEL_CHECK, left or CANCEL_CHECK)
                try:
                    event = events.get(timeout=step)
                except Empty:
                    if cancel is not None and cancel.is_set():
                        self._cancel(item)
                    continue
                if event is None:
                    return self._outcome(item)
                if on_poll is not None:
                    on_poll(*event)
        finally:
            with self._cond:
                item.listeners.remove(events)
                idle = not item.kept and not item.listeners
                if idle and self._watched.get(task_id) is item:
                    del self._watched[task_id]

    def status(self, task_id: str) -> TaskStatus | None:
        """The last status seen for a watched task (None: not seen yet or not watched)."""
        with self._cond:
            item = self._watched.get(task_id)
            return item.status if item else None

    def forget(self, task_id: str) -> None:
        """Stop following a task; its future is cancelled."""
        with self._cond:
            item = self._watched.pop(task_id, None)
        if item is not None:
            self._end(item)

    def close(self) -> None:
        """Stop the thread; futures still open are cancelled, waiters stop waiting."""
        with self._cond:
            self._closed = True
            left = list(self._watched.values())
            self._watched.clear()
            self._cond.notify_all()
        for item in left:
            self._end(item)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _follow(self, task_id: str, expected: float | None) -> _Watched:
        """The task's record, made (and its first look scheduled) if new. Under the lock."""
        if self._closed:
            raise RuntimeError("this TaskWatcher is closed")
        item = self._watched.get(task_id)
        if item is None:
            now = self._clock()
            item = _Watched(
                task_id,
                Future(),
                expected,
                since=now,
                since_wall=self._wall(),
                due=now + self.schedule.first,
            )
            self._watched[task_id] = item
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="vaceflow-watcher", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        elif expected is not None and item.expected is None:
            item.expected = expected
        return item

    def _outcome(self, item: _Watched) -> TaskResponse:
        try:
            return item.future.result()
        except CancelledError:  # forgotten, or the watcher closed
            raise WaitCancelled(item.task_id, item.status, task_canceled=False) from None

    def _cancel(self, item: _Watched) -> NoReturn:
        """Cancel the task if it may still be PENDING, then raise WaitCancelled."""
        status, canceled = item.status, False
        if status in (None, TaskStatus.PENDING):
            try:
                self._client.cancel(item.task_id)
                canceled = True
            except DashScopeError as exc:
                log.warning("task %s: not cancelled: %s", item.task_id, exc)
        try:
            status = self._client.get(item.task_id).status
            canceled = status is TaskStatus.CANCELED
        except DashScopeError:
            pass
        raise WaitCancelled(item.task_id, status, task_canceled=canceled)

    # --- the watcher thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if not self._watched:
                        self._cond.wait()
                        continue
                    left = min(w.due for w in self._watched.values()) - self._clock()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._closed:
                    return
            try:
                self._tick()
            except Exception:
                log.exception("task watcher: tick failed; carrying on in a second")
                with self._cond:  # never a hot loop: whatever failed is not retried at once
                    pause = self._clock() + 1.0
                    for item in self._watched.values():
                        item.due = max(item.due, pause)

    def _tick(self) -> None:
        with self._cond:
            watched = list(self._watched.values())
        now = self._clock()
        if len(watched) == 1 or not self._use_list:
            for item in watched:
                if item.due <= now:
                    self._get(item)
            return
        rows = self._list(watched)
        now = self._clock()
        for item in watched:
            if self._closed:
                return
            row = rows.get(item.task_id) if rows is not None else None
            if row is not None:
                item.unlisted = None
                if row.status.is_final:
                    self._get(item)  # the result, or the failure's code
                else:
                    self._seen(item, row.status, row.start_time / 1000 if row.start_time else None)
                    self._schedule(item, now)
                continue
            if rows is None:  # the list failed: every task waits the backoff
                item.due = now + self._backoff.delay(self._list_failures)
                continue
            item.unlisted = item.unlisted if item.unlisted is not None else now
            if now - item.unlisted >= self.grace and item.due <= now:
                self._get(item)
            elif item.due <= now:
                self._schedule(item, now)

    def _schedule(self, item: _Watched, now: float) -> None:
        ran = None
        if item.status is not None and item.status is not TaskStatus.PENDING:
            started = item.started if item.started is not None else self._wall()
            item.started = started
            ran = max(0.0, self._wall() - started)
        item.due = now + self.schedule.next_delay(now - item.since, ran, item.expected)

    def _seen(self, item: _Watched, status: TaskStatus, started: float | None) -> None:
        with self._cond:
            item.status = status
            item.looks += 1
            item.failures = 0
            if started is not None:
                item.started = started
            event = (status, self._clock() - item.since, item.looks)
            for listener in item.listeners:
                listener.put(event)

    def _list(self, watched: list[_Watched]) -> dict[str, TaskListItem] | None:
        """Rows of the watched tasks in the list window; None when the list failed."""
        wanted = {w.task_id for w in watched}
        now = self._wall()
        oldest = now - ACCOUNT.list_window_seconds + self._margin
        start = max(min(w.since_wall for w in watched) - self._margin, oldest)
        end = now + self._margin
        found: dict[str, TaskListItem] = {}
        page = 1
        try:
            while page <= self._max_pages:
                self.list_calls += 1
                answer = self._client.list(
                    start=datetime.fromtimestamp(start, UTC),
                    end=datetime.fromtimestamp(end, UTC),
                    page_no=page,
                    page_size=PAGE_SIZE,
                )
                found.update((row.task_id, row) for row in answer.data if row.task_id in wanted)
                if len(found) == len(wanted) or not answer.data or page >= answer.total_page:
                    break
                page += 1
        except DashScopeError as exc:
            if not exc.retryable:
                log.warning("task list refused (%s): following each task on its own", exc)
                self._use_list = False
                return {}
            self._list_failures += 1
            log.warning("task list failed (%s); trying again after a pause", exc)
            return None
        self._list_failures = 0
        return found

    def _get(self, item: _Watched) -> None:
        try:
            self.get_calls += 1
            task = self._client.get(item.task_id)
        except DashScopeError as exc:
            if not exc.retryable:
                self._resolve(item, error=exc)
                return
            item.failures += 1
            delay = self._backoff.delay(item.failures, exc.retry_after)
            item.due = self._clock() + delay
            log.warning("task %s: look failed (%s); again in %.1f s", item.task_id, exc, delay)
            return
        self._seen(item, task.status, _epoch(task.output.scheduled_time))
        if task.status is TaskStatus.SUCCEEDED:
            self._resolve(item, result=task)
        elif task.status.is_final:
            self._resolve(item, error=TaskFailed(task))
        else:
            self._schedule(item, self._clock())

    def _resolve(
        self, item: _Watched, *, result: TaskResponse | None = None, error: Exception | None = None
    ) -> None:
        with self._cond:
            if self._watched.get(item.task_id) is item:
                del self._watched[item.task_id]
        try:
            if result is not None:
                item.future.set_result(result)
            else:
                item.future.set_exception(error)
        except InvalidStateError:  # forgotten meanwhile
            pass
        self._end(item)

    def _end(self, item: _Watched) -> None:
        """Wake the task's waiters for the last time (its future is settled or cancelled)."""
        item.future.cancel()  # no-op when settled
        with self._cond:
            listeners = list(item.listeners)
        for listener in listeners:
            listener.put(None)


def _epoch(service_time: str | None) -> float | None:
    """A service timestamp as epoch seconds."""
    parsed = parse_service_time(service_time)
    return parsed.timestamp() if parsed else None

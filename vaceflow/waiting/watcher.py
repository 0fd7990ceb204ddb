"""Follow many tasks at once with one thread and few queries: `TaskWatcher`.

Polling each of hundreds of tasks on its own would exhaust the account's 20 status
queries a second. The watcher instead asks the batch status query (`GET /tasks`, 100
tasks a page) once a tick which watched tasks ended, and fetches only those: about
one `get` per task over its whole life. A task the list does not show (older than
the window, or the list itself failing) falls back to individual gets on the sparse
schedule. Waiters block on one future per task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType
from typing import Self

from vaceflow.errors import DashScopeError, TaskFailed, WaitTimeout
from vaceflow.limits import ACCOUNT
from vaceflow.ratebudget import RateBudget
from vaceflow.responses import TaskListItem, TaskResponse, TaskStatus
from vaceflow.waiting.schedule import PollSchedule
from vaceflow.waiting.source import TaskLister, unseen

__all__ = ["TaskWatcher"]

log = logging.getLogger("vaceflow.waiting")

SERVICE_TZ = timezone(timedelta(hours=8))
"""The list window is read in the service's time zone (China Standard Time)."""
PAGE_SIZE = 100


@dataclass
class _Watched:
    task_id: str
    future: Future[TaskResponse]
    since: float
    """Monotonic time it was first watched."""
    since_wall: float
    expected: float | None
    status: TaskStatus | None = None
    listed_at: float | None = None
    """Monotonic time of the last list page that showed it."""
    polls: int = 0
    ticks: int = 0
    """Ticks (list calls) since it was first watched."""
    next_get: float = 0.0
    """When an individual get is due, for a task the list does not show."""
    last: TaskResponse | None = field(default=None, repr=False)


class TaskWatcher:
    """One thread following every watched task; `watch()` and `wait()` are thread-safe.

    `interval` is the longest tick, which bounds how late an end is noticed (ticks
    come sooner while a task is young or near its expected end); `grace` is how long a
    task may go unseen by the list before it is polled on its own.
    """

    def __init__(
        self,
        client: TaskLister,
        *,
        budget: RateBudget,
        interval: float = 5.0,
        grace: float | None = None,
        window_margin: float = 300.0,
        max_pages: int = 20,
        schedule: PollSchedule = PollSchedule(),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._budget = budget
        self.interval = interval
        self.grace = grace if grace is not None else 3 * interval
        self._margin = window_margin
        self._max_pages = max_pages
        self._schedule = schedule
        self._clock = clock
        self._wall = wall
        self._watched: dict[str, _Watched] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._use_list = True
        self._thread: threading.Thread | None = None
        self.list_calls = 0
        self.get_calls = 0

    # --- the waiters' side ---------------------------------------------------------------

    def watch(self, task_id: str, *, expected: float | None = None) -> Future[TaskResponse]:
        """A future for the task's SUCCEEDED response (or its TaskFailed)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("this TaskWatcher is closed")
            watched = self._watched.get(task_id)
            if watched is None:
                now = self._clock()
                watched = _Watched(
                    task_id,
                    Future(),
                    since=now,
                    since_wall=self._wall(),
                    expected=expected,
                    next_get=now + self.grace,
                )
                self._watched[task_id] = watched
                self._start()
                self._cond.notify_all()
            return watched.future

    def wait(self, task_id: str, timeout: float | None = None) -> TaskResponse:
        """Block until the task ends: as `wait_for_task`, but sharing the watcher's queries.

        On timeout the task stays watched: call `wait` again to resume.
        """
        future = self.watch(task_id)
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise WaitTimeout(self._snapshot(task_id), waited=timeout or 0.0) from None

    def status(self, task_id: str) -> TaskStatus | None:
        """The last status seen for a watched task (None: not seen yet or not watched)."""
        with self._cond:
            watched = self._watched.get(task_id)
            return watched.status if watched else None

    def forget(self, task_id: str) -> None:
        """Stop following a task; its future is cancelled."""
        with self._cond:
            watched = self._watched.pop(task_id, None)
        if watched is not None:
            watched.future.cancel()

    def close(self) -> None:
        """Stop the thread; futures still open are cancelled."""
        with self._cond:
            self._closed = True
            left = list(self._watched.values())
            self._watched.clear()
            self._cond.notify_all()
        for watched in left:
            watched.future.cancel()
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

    def _snapshot(self, task_id: str) -> TaskResponse:
        with self._cond:
            watched = self._watched.get(task_id)
            if watched is None:
                return unseen(task_id)
            return watched.last or unseen(task_id, watched.status or TaskStatus.UNKNOWN)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vaceflow-watcher", daemon=True)
            self._thread.start()

    # --- the watcher thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._watched and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                self._tick()
            except Exception:
                log.exception("task watcher: tick failed; carrying on")
            ended = self._clock()
            with self._cond:  # new watches wait for the tick: they do not each cause one,
                # but a young one brings it forward (`_tick_interval` is asked again)
                while (
                    not self._closed and (left := ended + self._tick_interval() - self._clock()) > 0
                ):
                    self._cond.wait(left)
                if self._closed:
                    return

    def _tick_interval(self) -> float:
        """Seconds to the next tick: what the most eager watched task's poll schedule
        asks (the SDK's pace while it is young, so a refused input fails in a second or
        two; dense around its expected end), never longer than `interval`."""
        now = self._clock()
        with self._cond:
            wanted = [
                self._schedule.next_delay(now - w.since, w.ticks, w.expected)
                for w in self._watched.values()
            ]
        return min([self.interval, *wanted])

    def _tick(self) -> None:
        with self._cond:
            watched = list(self._watched.values())
        if not watched:
            return
        listed = self._list(watched)
        now = self._clock()
        due: list[_Watched] = []
        for item in watched:
            item.ticks += 1
            row = listed.get(item.task_id)
            if row is not None:
                item.listed_at = now
                item.status = row.status
                if row.status.is_final:
                    due.append(item)
            elif now - (item.listed_at or item.since) > self.grace and now >= item.next_get:
                due.append(item)
        for item in due:
            if self._closed:
                return
            self._fetch(item, now)

    def _list(self, watched: list[_Watched]) -> dict[str, TaskListItem]:
        """Rows of the watched tasks in the list window; {} when the list cannot help."""
        if not self._use_list:
            return {}
        wanted = {w.task_id for w in watched}
        now = self._wall()
        oldest = now - ACCOUNT.list_window_seconds + self._margin
        start = max(min(w.since_wall for w in watched) - self._margin, oldest)
        end = now + self._margin
        found: dict[str, TaskListItem] = {}
        page = 1
        try:
            while page <= self._max_pages:
                self._budget.acquire("list")
                self.list_calls += 1
                answer = self._client.list(
                    start=_service_time(start),
                    end=_service_time(end),
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
            else:
                log.warning("task list failed (%s); trying again next tick", exc)
            return {}
        return found

    def _fetch(self, item: _Watched, now: float) -> None:
        try:
            self._budget.acquire("query")
            self.get_calls += 1
            task = self._client.get(item.task_id)
        except DashScopeError as exc:
            if exc.retryable:
                log.warning("task %s: get failed (%s); next tick", item.task_id, exc)
                return
            self._resolve(item, error=exc)
            return
        item.polls += 1
        item.last = task
        item.status = task.status
        if task.status is TaskStatus.SUCCEEDED:
            self._resolve(item, result=task)
        elif task.status.is_final:
            self._resolve(item, error=TaskFailed(task))
        else:
            polls = max(item.polls, self._schedule.ramp_polls)
            delay = self._schedule.next_delay(now - item.since, polls, item.expected)
            item.next_get = now + delay

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
        except InvalidStateError:  # a waiter cancelled it meanwhile
            pass


def _service_time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).astimezone(SERVICE_TZ)

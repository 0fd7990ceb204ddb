"""Follow one task to its end: `wait_for_task`.

The wait outlives the service's hiccups: a 429, a 5xx or a dropped connection is
retried with backoff and jitter until the wait's own deadline, never turned into a
failed job. Only what the task itself did (FAILED, CANCELED, UNKNOWN) or our deadline
ends the wait without a result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from vaceflow.errors import DashScopeError, TaskFailed, WaitCancelled, WaitTimeout
from vaceflow.ratebudget import RateBudget
from vaceflow.responses import TaskResponse, TaskStatus
from vaceflow.retry import RetryPolicy
from vaceflow.waiting.schedule import PollSchedule
from vaceflow.waiting.source import OnPoll, TaskReader, unseen

__all__ = ["DEFAULT_TIMEOUT", "POLL_BACKOFF", "wait_for_task"]

log = logging.getLogger("vaceflow.waiting")

DEFAULT_TIMEOUT = 30 * 60.0
POLL_BACKOFF = RetryPolicy(attempts=1_000_000, base=1.0, cap=30.0)
"""Delays between polls that failed (the client already retried each a few times)."""


def wait_for_task(
    client: TaskReader,
    task_id: str,
    *,
    budget: RateBudget,
    timeout: float = DEFAULT_TIMEOUT,
    expected: float | None = None,
    on_poll: OnPoll | None = None,
    cancel_event: threading.Event | None = None,
    schedule: PollSchedule = PollSchedule(),
    backoff: RetryPolicy = POLL_BACKOFF,
    clock: Callable[[], float] = time.monotonic,
) -> TaskResponse:
    """The task's SUCCEEDED response.

    Raises TaskFailed when it ends FAILED, CANCELED or UNKNOWN (see `.status`, `.code`),
    WaitTimeout after `timeout` seconds, WaitCancelled when `cancel_event` is set (the
    task is cancelled first if still PENDING), and DashScopeError only for answers no
    retry can change (a wrong key). `expected` is the typical run time in seconds.
    """
    stop = cancel_event or threading.Event()
    start = clock()
    deadline = start + timeout
    polls = failures = 0
    started = 0.0
    last: TaskResponse | None = None
    delay = schedule.next_delay(0.0, 0, expected)
    while True:
        if stop.wait(max(0.0, min(delay, deadline - clock()))):
            _cancel(client, task_id, budget, last)
        elapsed = clock() - start
        try:
            budget.acquire("query")
            task = client.get(task_id)
        except DashScopeError as exc:
            if not exc.retryable:
                raise
            failures += 1
            delay = backoff.delay(failures, exc.retry_after)
            log.warning("task %s: poll failed (%s); next try in %.1f s", task_id, exc, delay)
            if clock() >= deadline:
                raise WaitTimeout(last or unseen(task_id), waited=clock() - start) from exc
            continue
        failures = 0
        polls += 1
        last = task
        log.debug("task %s: %s after %.1f s (%d polls)", task_id, task.status, elapsed, polls)
        if on_poll is not None:
            on_poll(task.status, elapsed, polls)
        if task.status is TaskStatus.SUCCEEDED:
            return task
        if task.status.is_final:
            raise TaskFailed(task)
        if clock() >= deadline:
            raise WaitTimeout(task, waited=clock() - start)
        if task.status is not TaskStatus.RUNNING:
            started = elapsed
        delay = schedule.next_delay(elapsed, polls, expected, started)


def _cancel(
    client: TaskReader, task_id: str, budget: RateBudget, last: TaskResponse | None
) -> NoReturn:
    """Cancel the task if it may still be PENDING, then raise WaitCancelled."""
    canceled = False
    if last is None or last.status is TaskStatus.PENDING:
        try:
            budget.acquire("cancel")
            client.cancel(task_id)
            canceled = True
        except DashScopeError as exc:
            log.warning("task %s: not cancelled: %s", task_id, exc)
    try:
        budget.acquire("query")
        task = client.get(task_id)
        canceled = task.status is TaskStatus.CANCELED
    except DashScopeError:
        task = last or unseen(task_id)
    raise WaitCancelled(task, task_canceled=canceled)

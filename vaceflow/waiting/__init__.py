"""Waiting for tasks: when to poll (`PollSchedule`), one task (`wait_for_task`), many
tasks in one process (`TaskWatcher`). Every query goes through a `RateBudget`."""

from __future__ import annotations

from vaceflow.waiting.schedule import PollSchedule, sdk_interval
from vaceflow.waiting.source import OnPoll, TaskLister, TaskReader
from vaceflow.waiting.wait import DEFAULT_TIMEOUT, wait_for_task
from vaceflow.waiting.watcher import TaskWatcher

__all__ = [
    "DEFAULT_TIMEOUT",
    "OnPoll",
    "PollSchedule",
    "TaskLister",
    "TaskReader",
    "TaskWatcher",
    "sdk_interval",
    "wait_for_task",
]

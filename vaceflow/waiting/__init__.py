"""Waiting for tasks: when to look (`PollSchedule`) and the one watcher that follows one
task or hundreds (`TaskWatcher`). Every call spends the client's `RateBudget`."""

from __future__ import annotations

from vaceflow.waiting.schedule import PollSchedule, sdk_interval
from vaceflow.waiting.source import OnPoll, TaskLister, TaskReader
from vaceflow.waiting.watcher import TaskWatcher

__all__ = [
    "OnPoll",
    "PollSchedule",
    "TaskLister",
    "TaskReader",
    "TaskWatcher",
    "sdk_interval",
]

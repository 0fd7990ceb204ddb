"""Task records and the in-memory store every endpoint reads."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vaceflow.jobs import Job
from vaceflow.responses import TaskStatus

__all__ = ["Task", "TaskFailure", "TaskStore", "key_id"]


class TaskFailure(Exception):
    """Why a task ends FAILED: `code` and `message` as `output.code`/`output.message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Task:
    """One accepted submission, from PENDING to its end."""

    task_id: str
    request_id: str
    model: str
    body: Any
    """The body exactly as received (before the service's leniencies)."""
    job: Job
    notes: list[str]
    submit_time: float
    """Epoch seconds on the emulator's clock; likewise the other times."""
    status: TaskStatus = TaskStatus.PENDING
    scheduled_time: float | None = None
    end_time: float | None = None
    code: str | None = None
    message: str | None = None
    queries: int = 0
    queried_at: list[float] = field(default_factory=list)
    """When each query of this task came (the emulator's clock): a waiter's lag."""
    response_dropped: bool = False
    actual_prompt: str | None = None
    video_duration: int | None = None
    video_ratio: str | None = None

    def finish(
        self, status: TaskStatus, now: float, code: str | None = None, message: str | None = None
    ) -> None:
        self.status = status
        self.end_time = now
        self.code = code
        self.message = message


@dataclass
class TaskStore:
    """Every task by id, and the counters `/_emulator/tasks` reports."""

    tasks: dict[str, Task] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    running: int = 0
    peak_running: int = 0

    def add(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self.counters["submissions"] += 1

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def started(self) -> None:
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)

    def stopped(self) -> None:
        self.running -= 1


def key_id(api_key: str) -> str:
    """A stable, non-reversible id for a key (the list's `api_key_id`)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]

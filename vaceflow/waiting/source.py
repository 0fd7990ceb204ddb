"""What waiting needs of a DashScope client: `vaceflow.client.Client` has it all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from vaceflow.responses import TaskListResponse, TaskResponse, TaskStatus

__all__ = ["OnPoll", "TaskLister", "TaskReader"]

OnPoll = Callable[[TaskStatus, float, int], None]
"""Progress callback: (status, seconds since the task was first watched, looks so far),
after every call that showed the task."""


class TaskReader(Protocol):
    def get(self, task_id: str) -> TaskResponse: ...

    def cancel(self, task_id: str) -> None: ...


class TaskLister(TaskReader, Protocol):
    def list(
        self, *, start: datetime, end: datetime, page_no: int, page_size: int
    ) -> TaskListResponse: ...

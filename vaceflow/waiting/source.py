"""What waiting needs of a DashScope client: `vaceflow.client.Client` has it all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from vaceflow.responses import TaskListResponse, TaskOutput, TaskResponse, TaskStatus

__all__ = ["OnPoll", "TaskLister", "TaskReader", "unseen"]

OnPoll = Callable[[TaskStatus, float, int], None]
"""Progress callback: (status, seconds waited, polls so far), after every answered poll."""


class TaskReader(Protocol):
    def get(self, task_id: str) -> TaskResponse: ...

    def cancel(self, task_id: str) -> None: ...


class TaskLister(TaskReader, Protocol):
    def list(
        self, *, start: datetime, end: datetime, page_no: int, page_size: int
    ) -> TaskListResponse: ...


def unseen(task_id: str, status: TaskStatus = TaskStatus.UNKNOWN) -> TaskResponse:
    """A stand-in response for a task no answered query has shown us yet."""
    return TaskResponse(request_id="", output=TaskOutput(task_id=task_id, task_status=status))

"""What DashScope answers: task status, task results, the task list and errors.

Responses are parsed leniently (`extra="allow"`): the service adds fields over time
and a client must not break on them. Statuses are an Enum that knows which are final.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "LIST_TIME_FORMAT",
    "SERVICE_TIME_FORMAT",
    "SERVICE_TZ",
    "ErrorBody",
    "SubmitResponse",
    "TaskListItem",
    "TaskListResponse",
    "TaskOutput",
    "TaskResponse",
    "TaskStatus",
    "Usage",
    "parse_service_time",
]


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"
    """The id is unknown to the service or older than 24 h."""

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_waiting(self) -> bool:
        return self in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SUSPENDED)


_FINAL = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.UNKNOWN}
)


def _known_or_unknown(value: Any) -> Any:
    return value if value in TaskStatus.__members__ else TaskStatus.UNKNOWN


_ServiceStatus = Annotated[TaskStatus, BeforeValidator(_known_or_unknown)]
"""A status as the service sends it: one this client does not know reads as UNKNOWN."""

SERVICE_TZ = timezone(timedelta(hours=8), "CST")
"""The service's clock: its timestamps and the task list's windows are China Standard
Time, written without a zone."""
SERVICE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
"""The service's timestamps, e.g. `2025-05-23 17:07:30.497` (China Standard Time)."""
LIST_TIME_FORMAT = "%Y%m%d%H%M%S"
"""The task list's `start_time` / `end_time` (China Standard Time)."""


def parse_service_time(value: str | None) -> datetime | None:
    """A service timestamp as an aware datetime (in `SERVICE_TZ`); None when absent or
    unreadable."""
    if not value:
        return None
    for fmt in (SERVICE_TIME_FORMAT, "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=SERVICE_TZ)
        except ValueError:
            continue
    return None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(_Lenient):
    """Any 4xx/5xx answer: `{"code", "message", "request_id"}`."""

    code: str = ""
    message: str = ""
    request_id: str | None = None


class Usage(_Lenient):
    """Billing facts of a finished task; `video_duration` seconds are what is paid for."""

    video_duration: float | None = None
    video_ratio: str | None = None
    video_count: int | None = None


class TaskOutput(_Lenient):
    task_id: str
    task_status: _ServiceStatus
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    """Present when prompt rewriting (prompt_extend) ran."""
    video_url: str | None = None
    code: str | None = None
    """Set when the task FAILED."""
    message: str | None = None


class SubmitResponse(_Lenient):
    request_id: str
    output: TaskOutput


class TaskResponse(_Lenient):
    """`GET /tasks/{task_id}`."""

    request_id: str
    output: TaskOutput
    usage: Usage | None = None

    @property
    def status(self) -> TaskStatus:
        return self.output.task_status

    @classmethod
    def seen(cls, task_id: str, status: TaskStatus) -> TaskResponse:
        """A status seen without the task's own answer (a task-list row carries none):
        no request id, times, usage or result, only what the list said."""
        return cls(request_id="", output=TaskOutput(task_id=task_id, task_status=status))


class TaskListItem(_Lenient):
    """One row of `GET /tasks`: status only, never the result (fetch the task for that)."""

    task_id: str
    status: _ServiceStatus
    model_name: str | None = None
    request_id: str | None = None
    gmt_create: int | None = None
    start_time: int | None = None
    end_time: int | None = None
    """Epoch milliseconds; absent while the task runs."""


class TaskListResponse(_Lenient):
    request_id: str
    data: list[TaskListItem] = Field(default_factory=list)
    total: int = 0
    total_page: int = 0
    page_no: int = 1
    page_size: int = 10

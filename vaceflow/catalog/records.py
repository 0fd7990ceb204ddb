"""What the catalog hands out: plain frozen records, detached from any session.

Callers never touch ORM rows; a record is a snapshot that serialises to JSON as is
(`record.model_dump(mode="json")`), which is what `vaceflow catalog show --json` and
the export print.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vaceflow.catalog.schema import EventRow, JobRow, JobStatus
from vaceflow.limits import Role

__all__ = ["InputRecord", "JobEvent", "JobRecord", "OutputRecord"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputRecord(_Record):
    """One input file as the job used it."""

    source: str
    """Where it came from (local path or URL, without query string)."""
    sha256: str | None = None
    """Of the conformed file: what the identity is made of."""
    staged_url: str | None = None
    """Where the service fetched it from (without query string)."""
    report: dict[str, Any] | None = None
    """What conforming did to it (media preparation's report)."""


class OutputRecord(_Record):
    path: str | None = None
    s3_uri: str | None = None
    sha256: str | None = None
    probe: dict[str, Any] | None = None
    thumbnail_path: str | None = None


class JobEvent(_Record):
    """One line of a job's history."""

    at: datetime
    status: JobStatus
    service_status: str | None = None
    task_id: str | None = None
    submit_time: datetime | None = None
    scheduled_time: datetime | None = None
    end_time: datetime | None = None
    """The service's own times, converted to UTC."""
    note: str | None = None

    @classmethod
    def from_row(cls, row: EventRow) -> JobEvent:
        return cls(
            at=row.at,
            status=JobStatus(row.status),
            service_status=row.service_status,
            task_id=row.task_id,
            submit_time=row.submit_time,
            scheduled_time=row.scheduled_time,
            end_time=row.end_time,
            note=row.note,
        )


class JobRecord(_Record):
    """One job as the catalog knows it. `status` is UNCERTAIN for a row left
    `sending` past `send_until` without a task id (computed when read, never stored)."""

    id: str
    identity: str
    function: str
    model: str
    prompt: str
    parameters: dict[str, Any]
    request: dict[str, Any]
    inputs: dict[str, list[InputRecord]]
    status: JobStatus
    service_status: str | None = None
    task_id: str | None = None
    request_id: str | None = None
    submit_owner: str | None = None
    submit_lease_until: datetime | None = None
    sending_at: datetime | None = None
    send_until: datetime | None = None
    attempts: int = 0
    usage: dict[str, Any] | None = None
    cost: float | None = None
    output: OutputRecord | None = None
    error_code: str | None = None
    error_message: str | None = None
    flow_run_id: str | None = None
    parent_id: str | None = None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    inputs_expire_at: datetime | None = None
    history: tuple[JobEvent, ...] = Field(default=())
    """Filled by `Catalog.get(..., history=True)`; empty in lists."""

    @property
    def duration_seconds(self) -> float | None:
        """Time at the service: from our learning the task id to our first seeing it final."""
        if self.submitted_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.submitted_at).total_seconds()

    @property
    def video_seconds(self) -> float | None:
        """Seconds of video made (what the cost is billed on): the service's usage, else
        the downloaded file's probe."""
        usage = self.usage or {}
        if usage.get("video_duration"):
            return float(usage["video_duration"]) * int(usage.get("video_count") or 1)
        probe = (self.output.probe or {}) if self.output else {}
        duration = probe.get("duration")
        return float(duration) if duration else None

    def sent_request(self) -> dict[str, Any]:
        """The request body as the service received it: each input's staged URL (without
        its signature) where the stored body has the conformed file's local file:// URI.
        Inputs never staged keep their local URI: nothing was sent."""
        body = copy.deepcopy(self.request)
        given = body.get("input")
        if not isinstance(given, dict):
            return body
        for role, items in self.inputs.items():
            field = Role(role).api_field
            urls = [item.staged_url for item in items]
            if field not in given or not all(urls):
                continue
            given[field] = urls if isinstance(given[field], list) else urls[0]
        return body

    @classmethod
    def from_row(
        cls, row: JobRow, *, now: datetime, history: tuple[JobEvent, ...] = ()
    ) -> JobRecord:
        status = JobStatus(row.status)
        if status is JobStatus.SENDING and row.task_id is None and _past(row.send_until, now):
            status = JobStatus.UNCERTAIN
        has_output = row.output_path or row.output_uri
        return cls(
            id=row.id,
            identity=row.identity,
            function=row.function,
            model=row.model,
            prompt=row.prompt,
            parameters=row.parameters,
            request=row.request,
            inputs={
                role: [InputRecord.model_validate(item) for item in items]
                for role, items in row.inputs.items()
            },
            status=status,
            service_status=row.service_status,
            task_id=row.task_id,
            request_id=row.request_id,
            submit_owner=row.submit_owner,
            submit_lease_until=row.submit_lease_until,
            sending_at=row.sending_at,
            send_until=row.send_until,
            attempts=row.attempts,
            usage=row.usage,
            cost=row.cost,
            output=OutputRecord(
                path=row.output_path,
                s3_uri=row.output_uri,
                sha256=row.output_sha256,
                probe=row.output_probe,
                thumbnail_path=row.thumbnail_path,
            )
            if has_output
            else None,
            error_code=row.error_code,
            error_message=row.error_message,
            flow_run_id=row.flow_run_id,
            parent_id=row.parent_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            submitted_at=row.submitted_at,
            finished_at=row.finished_at,
            inputs_expire_at=row.inputs_expire_at,
            history=history,
        )


def _past(moment: datetime | None, now: datetime) -> bool:
    return moment is None or moment <= now

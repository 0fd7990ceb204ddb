"""The catalog's tables: one row per job, one child row per status event.

Portable on purpose (SQLite today, PostgreSQL with issue 8): JSON columns are
`sqlalchemy.JSON`, timestamps are timezone-aware UTC through `UTCDateTime` (SQLite has
no time zones, so the type attaches UTC on the way out), no dialect-only features.
Changing a table means a new migration in `migrations/versions/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    and_,
    or_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "FINAL_STATUSES",
    "SUBMITTABLE_STATUSES",
    "Base",
    "EventRow",
    "JobRow",
    "JobStatus",
    "UTCDateTime",
    "uncertain_clause",
]


class JobStatus(StrEnum):
    """Our lifecycle of a job (the service's own status is kept beside it)."""

    NEW = "new"
    """Claimed, not submitted (yet, or again after an abandoned submit or a resubmit)."""
    STAGING = "staging"
    """Inputs are being or have been staged; not submitted."""
    SUBMITTING = "submitting"
    """A run holds the submit lease and has sent nothing yet: any new run may take it
    over at once (nothing can have reached the service)."""
    SENDING = "sending"
    """The submit request may be on the wire: `sending_at` says when it left,
    `send_until` by when its answer must have come."""
    UNCERTAIN = "uncertain"
    """Never stored: a row left `sending` past `send_until` with no task id. The
    service may or may not have accepted it: reconciled from its task list
    (`vaceflow.reconcile`), or settled by a person."""
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    """The service no longer knows the task: UNKNOWN after its 24 h lifetime."""
    UNKNOWN = "unknown"
    """The service answered UNKNOWN for a task younger than 24 h."""

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELED,
        JobStatus.EXPIRED,
        JobStatus.UNKNOWN,
    }
)
SUBMITTABLE_STATUSES = frozenset({JobStatus.NEW, JobStatus.STAGING})


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the catalog stores aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so later migrations can drop them (SQLite's batch mode needs it)."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(none_as_null=True)}


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    function: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]]
    request: Mapped[dict[str, Any]]
    """The request body, every URL without its query string."""
    inputs: Mapped[dict[str, Any]]
    """Per role, a list of {source, sha256, staged_url, report}."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    service_status: Mapped[str | None] = mapped_column(String(16))
    task_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    submit_owner: Mapped[str | None] = mapped_column(String(128))
    submit_lease_until: Mapped[datetime | None]
    """How long other runs leave a `submitting` row to its holder before taking it over."""
    sending_at: Mapped[datetime | None]
    """When the (last) submit request was about to leave."""
    send_until: Mapped[datetime | None]
    """When that request's answer was due at the latest (its timeouts)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    usage: Mapped[dict[str, Any] | None]
    cost: Mapped[float | None] = mapped_column(Float)
    output_path: Mapped[str | None] = mapped_column(Text)
    output_uri: Mapped[str | None] = mapped_column(Text)
    output_sha256: Mapped[str | None] = mapped_column(String(64))
    output_probe: Mapped[dict[str, Any] | None]
    thumbnail_path: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    """When our worker learnt the task id."""
    finished_at: Mapped[datetime | None]
    """When we first saw the task final."""
    inputs_expire_at: Mapped[datetime | None]
    """When the staged inputs stop being readable (e.g. the provider's 48 h storage)."""


class EventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    service_status: Mapped[str | None] = mapped_column(String(16))
    task_id: Mapped[str | None] = mapped_column(String(64))
    submit_time: Mapped[datetime | None]
    scheduled_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)


def uncertain_clause(now: datetime) -> ColumnElement[bool]:
    """`JobStatus.UNCERTAIN` in SQL: a row left `sending` past `send_until` with no task id
    (`JobRecord.from_row` says the same of a row already read)."""
    return and_(
        JobRow.status == JobStatus.SENDING.value,
        JobRow.task_id.is_(None),
        or_(JobRow.send_until.is_(None), JobRow.send_until <= now),
    )

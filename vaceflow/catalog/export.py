"""The catalog as files: JSON (everything, history included) or CSV (the main columns).

Pure functions over records, so the CLI, a flow or a notebook export the same way.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from vaceflow.catalog.records import JobRecord

__all__ = ["CSV_COLUMNS", "csv_row", "to_csv", "to_json"]

CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "function",
    "model",
    "status",
    "service_status",
    "task_id",
    "request_id",
    "attempts",
    "created_at",
    "submitted_at",
    "finished_at",
    "duration_seconds",
    "cost",
    "output_path",
    "output_uri",
    "output_sha256",
    "thumbnail_path",
    "error_code",
    "error_message",
    "parent_id",
    "flow_run_id",
    "identity",
    "prompt",
)


def to_json(records: Sequence[JobRecord]) -> str:
    """A JSON array of full records (ISO 8601 UTC times)."""
    return json.dumps([r.model_dump(mode="json") for r in records], indent=2, ensure_ascii=False)


def csv_row(record: JobRecord) -> dict[str, Any]:
    """One flat row: times in ISO 8601 UTC, absent values empty."""
    output = record.output
    flat: dict[str, Any] = {
        "id": record.id,
        "function": record.function,
        "model": record.model,
        "status": record.status.value,
        "service_status": record.service_status,
        "task_id": record.task_id,
        "request_id": record.request_id,
        "attempts": record.attempts,
        "created_at": record.created_at.isoformat(),
        "submitted_at": record.submitted_at.isoformat() if record.submitted_at else None,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "duration_seconds": record.duration_seconds,
        "cost": record.cost,
        "output_path": output.path if output else None,
        "output_uri": output.s3_uri if output else None,
        "output_sha256": output.sha256 if output else None,
        "thumbnail_path": output.thumbnail_path if output else None,
        "error_code": record.error_code,
        "error_message": record.error_message,
        "parent_id": record.parent_id,
        "flow_run_id": record.flow_run_id,
        "identity": record.identity,
        "prompt": record.prompt,
    }
    return {k: "" if v is None else v for k, v in flat.items()}


def to_csv(records: Iterable[JobRecord]) -> str:
    """CSV with a header row of `CSV_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(csv_row(record))
    return buffer.getvalue()

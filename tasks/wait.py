"""`wait`: follow the task to its end, with a progress artifact in the Prefect UI."""

from __future__ import annotations

import time
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from tasks.runtime import progress_listener, services
from vaceflow.catalog import JobRecord
from vaceflow.pipeline import await_result
from vaceflow.responses import TaskResponse, TaskStatus

__all__ = ["wait"]

TYPICAL_SECONDS = 300.0
"""Until the catalog has seen a job of this function, assume the provider's minutes."""


@task(
    name="wait",
    task_run_name="wait {record.task_id}",
    retries=0,
    cache_policy=NO_CACHE,
)
def wait(record: JobRecord, timeout_seconds: float | None = None) -> TaskResponse:
    """Polls through the process's shared watcher and rate budget; the core retries
    429/5xx/network errors itself, so Prefect does not retry the wait."""
    svc = services()
    expected = svc.catalog.median_durations().get(record.function) or TYPICAL_SECONDS
    artifact = create_progress_artifact(
        progress=0.0, description=f"{record.function} {record.id}: task {record.task_id}"
    )
    assert isinstance(artifact, UUID)  # the sync API, called from a sync task
    shown = {"progress": 0.0, "at": 0.0}
    listener = progress_listener()

    def on_status(status: TaskStatus, elapsed: float, polls: int) -> None:
        if listener is not None:
            listener(record.id, status, elapsed, polls)
        progress = 100.0 if status.is_final else min(99.0, 100.0 * elapsed / expected)
        now = time.monotonic()
        if progress - shown["progress"] >= 1.0 and (status.is_final or now - shown["at"] >= 5):
            update_progress_artifact(artifact, progress)
            shown.update(progress=progress, at=now)

    result = await_result(svc, record, timeout=timeout_seconds, on_status=on_status)
    update_progress_artifact(artifact, 100.0)
    return result

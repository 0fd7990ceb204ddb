"""`wait`: follow the task to its end, with a progress artifact in the Prefect UI."""

from __future__ import annotations

import time
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from vaceflow.catalog import JobRecord
from vaceflow.limits import ACCOUNT
from vaceflow.pipeline import await_result, expected_seconds
from vaceflow.responses import TaskResponse, TaskStatus
from vaceflow.services import Services
from vaceflow.steps import JobListener

__all__ = ["wait"]


@task(name="wait", task_run_name="wait {record.task_id}", retries=0, cache_policy=NO_CACHE)
def wait(
    svc: Services,
    record: JobRecord,
    timeout_seconds: float | None = None,
    listener: JobListener | None = None,
) -> TaskResponse:
    """Follows the task through the run's one watcher and rate budget; the core retries
    429/5xx/network errors itself, so Prefect does not retry the wait. The progress
    shown is the run time against the typical one; `listener` hears every look."""
    expected = expected_seconds(svc, record.function) or ACCOUNT.typical_task_seconds
    artifact = create_progress_artifact(
        progress=0.0, description=f"{record.function} {record.id}: task {record.task_id}"
    )
    assert isinstance(artifact, UUID)  # the sync API, called from a sync task
    shown = {"progress": 0.0, "at": 0.0}

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

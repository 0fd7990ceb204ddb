"""`collect`: download, verify, thumbnail, publish. Idempotent, so it may retry."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.runtime import services
from vaceflow.catalog import JobRecord
from vaceflow.pipeline import Collected, StagedJob, collect_result
from vaceflow.responses import TaskResponse

__all__ = ["collect"]


@task(
    name="collect",
    task_run_name="collect {record.id}",
    tags=["vaceflow"],
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NO_CACHE,
)
def collect(record: JobRecord, task: TaskResponse, staged: StagedJob | None = None) -> Collected:
    return collect_result(services(), record, task, staged=staged.staged if staged else None)

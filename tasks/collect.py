"""`collect`: download, verify, thumbnail, publish.

Retries: the download's own (`vaceflow.collect.DOWNLOAD_RETRY`) and boto3's for the
publishing, and nothing here: a retry of the whole task would repeat those tries. A run
started again collects what this one could not (the catalog shows the task succeeded)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.runtime import services
from vaceflow.catalog import JobRecord
from vaceflow.pipeline import Collected, StagedJob, collect_result
from vaceflow.responses import TaskResponse

__all__ = ["collect"]


@task(name="collect", task_run_name="collect {record.id}", retries=0, cache_policy=NO_CACHE)
def collect(record: JobRecord, task: TaskResponse, staged: StagedJob | None = None) -> Collected:
    return collect_result(services(), record, task, staged=staged.staged if staged else None)

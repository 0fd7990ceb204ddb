"""`collect`: download, verify, thumbnail, publish.

Retries: the download's own (`vaceflow.collect.DOWNLOAD_RETRY`) and boto3's for the
publishing, and nothing here: a retry of the whole task would repeat those tries. A run
started again collects what this one could not (the catalog shows the task succeeded)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from vaceflow.catalog import JobRecord
from vaceflow.pipeline import Collected, Staged, collect_result
from vaceflow.responses import TaskResponse
from vaceflow.services import Services

__all__ = ["collect"]


@task(name="collect", task_run_name="collect {record.id}", retries=0, cache_policy=NO_CACHE)
def collect(
    svc: Services, record: JobRecord, task: TaskResponse, staged: Staged | None = None
) -> Collected:
    return collect_result(svc, record, task, staged=staged)

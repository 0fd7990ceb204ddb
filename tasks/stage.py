"""`stage`: conformed inputs -> URLs the service can fetch. Content-addressed, so a
retry re-uploads nothing that is already there."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from vaceflow.catalog import JobRecord
from vaceflow.media.prepare import PreparedJob
from vaceflow.pipeline import Staged, stage_inputs
from vaceflow.services import Services

__all__ = ["stage"]


@task(
    name="stage",
    task_run_name="stage {record.id}",
    retries=2,
    retry_delay_seconds=[2, 10],
    cache_policy=NO_CACHE,
)
def stage(svc: Services, record: JobRecord, prepared: PreparedJob) -> Staged:
    return stage_inputs(svc, record, prepared)

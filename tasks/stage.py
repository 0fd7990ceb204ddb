"""`stage`: conformed inputs -> URLs the service can fetch (content-addressed).

Retries: each call to the store retries by itself (boto3's standard mode on S3, the form
POST's `UPLOAD_RETRY` on the provider's temporary storage), and nothing here: a retry
of the task would repeat all of those tries."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from vaceflow.catalog import JobRecord
from vaceflow.media.prepare import PreparedJob
from vaceflow.pipeline import Staged, stage_inputs
from vaceflow.services import Services

__all__ = ["stage"]


@task(name="stage", task_run_name="stage {record.id}", retries=0, cache_policy=NO_CACHE)
def stage(svc: Services, record: JobRecord, prepared: PreparedJob) -> Staged:
    return stage_inputs(svc, record, prepared)

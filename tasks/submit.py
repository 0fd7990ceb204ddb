"""`submit`: the paid call. Never retried by Prefect: the core decides what is safe."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from vaceflow.catalog import JobRecord
from vaceflow.media.prepare import PreparedJob
from vaceflow.pipeline import Staged, submit_job
from vaceflow.services import Services

__all__ = ["submit"]


@task(name="submit", task_run_name="submit {record.id}", retries=0, cache_policy=NO_CACHE)
def submit(svc: Services, record: JobRecord, prepared: PreparedJob, staged: Staged) -> JobRecord:
    """One submission per job, ever: `vaceflow.pipeline.submit_job` holds the rules."""
    return submit_job(svc, record, prepared, staged)

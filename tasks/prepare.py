"""`prepare`: conform and check every input before anything is uploaded or paid.

Retries: fetching a remote input retries by itself (`vaceflow.media.sources.FETCH_RETRY`),
and nothing here: conforming fails the same way twice."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from vaceflow.jobs import Job
from vaceflow.media.prepare import PreparedJob, prepare
from vaceflow.trust import TrustPolicy

__all__ = ["prepare_inputs"]


@task(name="prepare", task_run_name="prepare {job.function}", retries=0, cache_policy=NO_CACHE)
def prepare_inputs(job: Job, policy: TrustPolicy) -> PreparedJob:
    """`policy`: what this run may read (`tasks.trust.run_policy`)."""
    return prepare(job, policy=policy)

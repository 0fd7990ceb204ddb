"""`claim`: the job's catalog row, made before anything is staged, and its next step."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from vaceflow.media.prepare import PreparedJob
from vaceflow.pipeline import Claim, claim_job
from vaceflow.services import Services

__all__ = ["claim"]


@task(name="claim", cache_policy=NO_CACHE)
def claim(
    svc: Services, prepared: PreparedJob, fresh: bool = False, parent_id: str | None = None
) -> Claim:
    run_id = flow_run.get_id()
    return claim_job(svc, prepared, fresh=fresh, parent_id=parent_id, flow_run_id=str(run_id or ""))

"""`collect`: download, verify, thumbnail, publish. Idempotent, so it may retry."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from vaceflow.catalog import JobRecord
from vaceflow.errors import ResultExpired
from vaceflow.pipeline import Collected, Staged, collect_result
from vaceflow.responses import TaskResponse
from vaceflow.services import Services

__all__ = ["collect"]


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """An expired result link stays expired: only other failures are tried again."""
    try:
        state.result()
    except ResultExpired:
        return False
    except Exception:
        return True
    return False


@task(
    name="collect",
    task_run_name="collect {record.id}",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def collect(
    svc: Services, record: JobRecord, task: TaskResponse, staged: Staged | None = None
) -> Collected:
    return collect_result(svc, record, task, staged=staged)

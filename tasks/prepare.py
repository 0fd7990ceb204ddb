"""`prepare`: conform and check every input before anything is uploaded or paid."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from vaceflow.errors import InputRefused, JobInvalid, MediaError
from vaceflow.jobs import Job
from vaceflow.media.prepare import PreparedJob, prepare
from vaceflow.trust import TrustPolicy

__all__ = ["prepare_inputs"]


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Fetching a remote input may fail for a moment; a refused input fails forever."""
    try:
        state.result()
    except (InputRefused, JobInvalid):
        return False
    except MediaError:
        return True
    except Exception:
        return False
    return False


@task(
    name="prepare",
    task_run_name="prepare {job.function}",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def prepare_inputs(job: Job, policy: TrustPolicy) -> PreparedJob:
    """Conformed files are cached by content in the data folder, so a retry is cheap.
    `policy`: what this run may read (`tasks.trust.run_policy`)."""
    return prepare(job, policy=policy)

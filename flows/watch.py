"""`watch`: run every job file dropped in a folder or an S3 prefix, once.

Meant for a schedule (the `watch` deployment runs every `WATCH_INTERVAL_SECONDS` on
`inbox/` in the data folder unless its `source` is set): each run lists
the job files waiting, claims each (a file another watcher claimed is skipped), runs
its bodies as `vace_job` subflows and files it under done/ or failed/ with a
`<name>.result.json` sidecar. Scanning twice, or two watchers at once, pays once: the
catalog's job identity decides, not the file (`vaceflow.intake` explains the moves).
A claim left in processing/ by a watcher that died is taken over once it is older
than `reclaim_after_minutes`.

The files are someone else's: their inputs may come only from the intake itself and
what the owner's settings allow (`vaceflow.trust`), however the watch was started. A
file that breaks that policy, or is too big, goes to failed/ with the refusal (which
input, which rule, how to allow it) and nothing of it is fetched or run. A run that a
deployment started may watch only the inbox or a folder (or S3 prefix) the settings
allow.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from flows.job import vace_job
from tasks.runtime import flow_runtime
from tasks.trust import policy_scope, run_policy
from vaceflow.errors import VaceflowError
from vaceflow.intake import FileResult, Intake, JobResult, Refusal, open_intake, safe_error
from vaceflow.jobfile import parse_job_file
from vaceflow.options import WAIT_TIMEOUT_MINUTES
from vaceflow.settings import Settings
from vaceflow.trust import TrustPolicy

__all__ = ["WATCH_INTERVAL_SECONDS", "WATCH_PARAMETER", "watch"]

WATCH_INTERVAL_SECONDS = 60
"""The watch deployment's schedule: a dropped file waits at most this long to start."""
WATCH_PARAMETER = "source"
"""The parameter a deployment sets: a local folder or s3://bucket/prefix/."""


@task(name="intake-file", task_run_name="{name}", cache_policy=NO_CACHE)
def intake_file(
    intake: Intake,
    name: str,
    policy: TrustPolicy,
    timeout_minutes: float,
    stale: bool = False,
) -> FileResult | None:
    """Claim (or take over a `stale` claim), check, run and file one job file; None
    when another watcher has it. Its jobs read their inputs under `policy`."""
    logger = get_run_logger()
    data = intake.reclaim(name) if stale else intake.claim(name)
    if data is None:
        logger.info("%s: claimed by another watcher", name)
        return None
    if stale:
        logger.warning("%s: taking over a claim its watcher left unfinished", name)
    try:
        jobs = parse_job_file(name, data, intake.base, policy)
    except VaceflowError as exc:
        result = FileResult.of(name, [], error=exc)
    else:
        with policy_scope(policy):
            outcomes = [_run(i, job, timeout_minutes) for i, job in enumerate(jobs)]
        result = FileResult.of(name, outcomes)
    moved = intake.finish(name, result)
    logger.info("%s: %s -> %s", name, result.status, moved)
    return result.model_copy(update={"moved_to": moved})


def _run(index: int, job: Any, timeout_minutes: float) -> JobResult:
    try:
        record = vace_job(job, timeout_minutes=timeout_minutes)
    except Exception as exc:  # reported in the sidecar; the other bodies go on
        return JobResult(
            index=index, status="failed", error=safe_error(str(exc)), refusal=Refusal.of(exc)
        )
    out = record.output
    return JobResult(
        index=index,
        id=record.id,
        status=record.status.value,
        output=(out.s3_uri or out.path) if out else None,
        error=None if record.output else record.error_message,
    )


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"watch {flow_run.parameters.get('source') or 'inbox'}"


def _check_source(source: str, policy: TrustPolicy) -> None:
    if source.startswith("s3://"):
        policy.check_s3(source.rstrip("/") + "/", name="source")
    else:
        policy.check_path(source, name="source")


def default_inbox(settings: Settings) -> Path:
    """`inbox/` in the data folder: where the watch deployment looks by default."""
    inbox = settings.data_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    return inbox


@flow(
    name="watch",
    flow_run_name=_run_name,
    description="Run each job file (YAML or JSON request bodies) dropped in a folder or "
    "an S3 prefix once; file it under done/ or failed/ with a .result.json sidecar.",
    task_runner=ThreadPoolTaskRunner(max_workers=8),  # type: ignore[arg-type]
    log_prints=True,
)
def watch(
    source: str | None = None,
    max_files: Annotated[int, Field(ge=1)] = 50,
    timeout_minutes: float = WAIT_TIMEOUT_MINUTES,
    max_in_flight: Annotated[int | None, Field(ge=1, le=100)] = None,
    reclaim_after_minutes: Annotated[float | None, Field(gt=0)] = None,
) -> list[FileResult]:
    """Process the job files waiting now; returns what became of each this run claimed.

    Args:
        source: A local folder or s3://bucket/prefix/ where job files arrive
            (default: `inbox/` in the vaceflow data folder). A deployment's run may
            watch only a folder in VACEFLOW_ALLOWED_ROOTS or a prefix in
            VACEFLOW_ALLOWED_S3; the files' inputs may come from the source itself
            and what those settings (and VACEFLOW_ALLOWED_HOSTS) allow.
        max_files: Files taken per run; the rest wait for the next.
        timeout_minutes: Per job: stop waiting after this long (the file goes to
            failed/; dropping it again resumes the same task without paying).
        max_in_flight: Jobs of this run submitted and not yet ended at once (default
            and at most: the account's bound, VACEFLOW_ACCOUNT__IN_FLIGHT).
        reclaim_after_minutes: A file claimed longer ago than this (default: twice
            `timeout_minutes`) is taken to be its watcher's last and run again; that
            resumes its tasks, never pays twice. Raise it for files of many bodies.
    """
    with flow_runtime(max_in_flight) as runtime:  # the files' jobs run in it
        settings = runtime.services.settings
        return _watch(source, max_files, timeout_minutes, reclaim_after_minutes, settings)


def _watch(
    source: str | None,
    max_files: int,
    timeout_minutes: float,
    reclaim_after_minutes: float | None,
    settings: Settings,
) -> list[FileResult]:
    if source is None:
        source = str(default_inbox(settings))
    else:  # typed in a form, maybe: the folder itself must be one its user may read
        _check_source(source, run_policy(settings))
    intake = open_intake(source, settings)
    policy = TrustPolicy.from_settings(settings).allowing(intake.base)
    names = intake.pending()[:max_files]
    left_over = intake.stale(timedelta(minutes=reclaim_after_minutes or 2 * timeout_minutes))
    stale = [n for n in left_over if n not in names][: max(0, max_files - len(names))]
    futures = [intake_file.submit(intake, n, policy, timeout_minutes) for n in names]
    futures += [intake_file.submit(intake, n, policy, timeout_minutes, stale=True) for n in stale]
    results = [r for f in futures if (r := f.result()) is not None]
    if results:
        rows: list[dict[str, Any]] = [
            {"file": r.file, "status": r.status, "jobs": len(r.jobs), "error": r.error}
            for r in results
        ]
        done = sum(r.status == "done" for r in results)
        create_table_artifact(
            rows, key="vaceflow-watch", description=f"{done} of {len(results)} files done"
        )
    print(
        f"{source}: {len(names)} waiting, {len(stale)} left by a dead watcher, "
        f"{len(results)} processed here"
    )
    return results

"""`record`: what a person sees in the Prefect UI, and the event downstream flows
trigger on. The catalog itself was written at every step; this reads it back."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from vaceflow import steps
from vaceflow.catalog import JobRecord
from vaceflow.pipeline import Collected
from vaceflow.services import Services

__all__ = ["JOB_FAILED", "JOB_SUCCEEDED", "emit_job_event", "record"]

JOB_SUCCEEDED = "vaceflow.job.succeeded"
JOB_FAILED = "vaceflow.job.failed"


def artifact_key(job_id: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return f"{job_id}-{what}".lower().replace("_", "-")


@task(name="record", task_run_name="record {collected.record.id}", cache_policy=NO_CACHE)
def record(svc: Services, collected: Collected) -> JobRecord:
    job = svc.catalog.get(collected.record.id)
    out = job.output
    probe = (out.probe if out else None) or {}
    rows = [
        {"field": "job", "value": job.id},
        {"field": "function", "value": job.function},
        {"field": "status", "value": job.status.value},
        {"field": "task_id", "value": job.task_id or ""},
        {"field": "prompt", "value": job.prompt[:200]},
        {"field": "video", "value": (out.path if out else "") or ""},
        {"field": "s3", "value": (out.s3_uri if out else "") or ""},
        {"field": "sha256", "value": (out.sha256 if out else "") or ""},
        {"field": "resolution", "value": f"{probe.get('width')}x{probe.get('height')}"},
        {"field": "duration (s)", "value": str(probe.get("duration", ""))},
        {"field": "cost", "value": f"{job.cost:.2f}" if job.cost is not None else ""},
    ]
    create_table_artifact(
        rows, key=artifact_key(job.id, "result"), description=f"{job.function} job {job.id}"
    )
    if collected.link:
        create_link_artifact(
            collected.link, link_text=f"video of {job.id}", key=artifact_key(job.id, "video")
        )
    image = collected.thumbnail_link or _data_uri(collected.thumbnail)
    create_markdown_artifact(
        f"### {job.function} `{job.id}`\n\n![contact sheet of {job.id}]({image})\n\n"
        f"{job.prompt[:300]}",
        key=artifact_key(job.id, "thumbnail"),
        description="frames of the result",
    )
    emit_job_event(job)
    return job


def emit_job_event(job: JobRecord) -> None:
    """`vaceflow.job.succeeded` / `.failed` with the catalog id and the output's place."""
    succeeded = job.status.value == "succeeded"
    out = job.output
    emit_event(
        event=JOB_SUCCEEDED if succeeded else JOB_FAILED,
        resource={
            "prefect.resource.id": f"vaceflow.job.{job.id}",
            "prefect.resource.name": job.id,
            "vaceflow.function": job.function,
        },
        payload={
            "job_id": job.id,
            "function": job.function,
            "status": job.status.value,
            "task_id": job.task_id,
            "output_uri": (out.s3_uri or out.path) if out else None,
            "output_path": out.path if out else None,
            "error_code": job.error_code,
            "error_message": job.error_message,
            "parent_id": job.parent_id,
        },
    )


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


@task(name="record-failure", cache_policy=NO_CACHE)
def record_failure(
    svc: Services,
    job_id: str,
    code: str | None,
    message: str,
    final: bool = True,
    result_lost: bool = False,
) -> JobRecord:
    """`vaceflow.steps.record_failure`, then `vaceflow.job.failed`."""
    job = steps.record_failure(
        svc.catalog, job_id, code, message, final=final, result_lost=result_lost
    )
    emit_job_event(job)
    return job


@task(name="resubmit", cache_policy=NO_CACHE)
def mark_resubmit(svc: Services, job_id: str, reason: str) -> JobRecord:
    """Clear the job's task so it can be submitted again (the catalog keeps the history)."""
    return svc.catalog.mark_resubmit(job_id, reason)

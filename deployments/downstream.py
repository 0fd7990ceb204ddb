"""An example of chaining by event: a flow that runs whenever a vaceflow job succeeds.

`tasks/record.py` emits `vaceflow.job.succeeded` with the job id and the output's
place in its payload; the deployment's trigger maps those into this flow's
parameters, so a pipeline downstream needs no polling and no knowledge of vaceflow's
flows. Here it only writes a note beside the data and an artifact: replace the body
with the real next step (publish, review, transcode ...).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import DeploymentEventTrigger

from tasks.record import JOB_SUCCEEDED, artifact_key
from vaceflow.catalog import Catalog
from vaceflow.settings import data_dir

__all__ = ["note_path", "on_job_succeeded", "succeeded_trigger"]


def succeeded_trigger() -> DeploymentEventTrigger:
    """Run once per `vaceflow.job.succeeded` event, its payload as parameters."""
    return DeploymentEventTrigger(
        name="on vaceflow.job.succeeded",
        expect={JOB_SUCCEEDED},
        match={"prefect.resource.id": "vaceflow.job.*"},
        parameters={
            "job_id": "{{ event.payload.job_id }}",
            "output_uri": "{{ event.payload.output_uri }}",
        },
    )


def note_path(job_id: str) -> Path:
    """Where the example writes its note: `<data dir>/notes/<job id>.md`."""
    return data_dir() / "notes" / f"{job_id}.md"


@flow(name="on_job_succeeded", flow_run_name="after {job_id}", log_prints=True)
def on_job_succeeded(job_id: str, output_uri: str) -> str:
    """Note a finished job: its output, size and cost, read back from the catalog.

    Args:
        job_id: The catalog id of the job that succeeded.
        output_uri: Where its video is (s3:// URI, or a local path without staging).
    """
    logger = get_run_logger()
    job = Catalog.from_settings().get(job_id)
    out = job.output
    lines = [
        f"# {job.function} {job.id}",
        "",
        f"- output: {output_uri}",
        f"- local copy: {(out.path if out else None) or '-'}",
        f"- sha256: {(out.sha256 if out else None) or '-'}",
        f"- cost: {job.cost if job.cost is not None else '-'}",
        f"- prompt: {job.prompt[:200]}",
    ]
    note = "\n".join(lines) + "\n"
    path = note_path(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(note)
    create_markdown_artifact(note, key=artifact_key(job_id, "note"))
    logger.info("noted job %s (%s) in %s", job_id, output_uri, path)
    return str(path)

"""The one list of deployments: which flow, under what name, described how, started by
what (nothing, a schedule or an event).

Both `vaceflow serve` (this process runs them) and `vaceflow deploy --pool` (a work
pool's workers run them from this project's folder) build from it, so the two never
drift.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from prefect import Flow
from prefect.events import DeploymentEventTrigger

from deployments.downstream import succeeded_trigger
from flows.watch import WATCH_INTERVAL_SECONDS

__all__ = ["DEPLOYMENTS", "TRUST_NOTE", "DeploymentSpec", "deployments"]


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: `entrypoint` is "path/to/file.py:function", relative to the
    project folder (what a worker loads with `from_source`)."""

    entrypoint: str
    name: str
    description: str
    tags: tuple[str, ...] = ("vaceflow",)
    cron: str | None = None
    interval: float | None = None
    """Seconds between scheduled runs (a deployment's schedule can be changed in the UI)."""
    triggers: tuple[DeploymentEventTrigger, ...] = field(default=())
    reads_inputs: bool = True
    """Its runs read media: the description says what they may read."""

    @property
    def module(self) -> str:
        return self.entrypoint.partition(":")[0].removesuffix(".py").replace("/", ".")

    @property
    def flow_name(self) -> str:
        return self.entrypoint.partition(":")[2]

    def load(self) -> Flow[..., Any]:
        flow: Flow[..., Any] = getattr(importlib.import_module(self.module), self.flow_name)
        return flow

    def options(self) -> dict[str, Any]:
        """Keyword arguments shared by `Flow.to_deployment` and `Flow.deploy`."""
        return {
            "name": self.name,
            "description": f"{self.description} {TRUST_NOTE}"
            if self.reads_inputs
            else self.description,
            "tags": list(self.tags),
            "cron": self.cron,
            "interval": self.interval,
            "triggers": list(self.triggers) or None,
        }


_FUNCTIONS = "flows/functions.py"

TRUST_NOTE = (
    "Its runs read only what the worker's settings allow (vaceflow.trust): local files in "
    "VACEFLOW_ALLOWED_ROOTS, http(s) from public hosts or VACEFLOW_ALLOWED_HOSTS, s3:// "
    "from the staging inputs prefix or VACEFLOW_ALLOWED_S3; `vaceflow doctor` shows them."
)

DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        f"{_FUNCTIONS}:image_reference",
        "image-reference",
        "A video composed from 1-3 reference images.",
        ("vaceflow", "function"),
    ),
    DeploymentSpec(
        f"{_FUNCTIONS}:video_repainting",
        "video-repainting",
        "A new video keeping the input's pose, depth or line art.",
        ("vaceflow", "function"),
    ),
    DeploymentSpec(
        f"{_FUNCTIONS}:video_edit",
        "video-edit",
        "Add, change or remove what lies in a masked area of a video.",
        ("vaceflow", "function"),
    ),
    DeploymentSpec(
        f"{_FUNCTIONS}:video_extension",
        "video-extension",
        "A 5 s video continuing from a frame or clip, or bridging two.",
        ("vaceflow", "function"),
    ),
    DeploymentSpec(
        f"{_FUNCTIONS}:video_outpainting",
        "video-outpainting",
        "Widen a video's frame: the model paints what lies beyond its edges.",
        ("vaceflow", "function"),
    ),
    DeploymentSpec(
        "flows/job.py:vace_job",
        "vace-job",
        "One VACE job in the API's own request shape.",
    ),
    DeploymentSpec(
        "flows/batch.py:vace_batch",
        "vace-batch",
        "Many VACE jobs within the account's limits; one failure never stops the others.",
        ("vaceflow", "batch"),
    ),
    DeploymentSpec(
        "flows/watch.py:watch",
        "watch",
        "Run every job file dropped in the inbox (a folder or an S3 prefix) once.",
        ("vaceflow", "watch"),
        interval=WATCH_INTERVAL_SECONDS,
    ),
    DeploymentSpec(
        "flows/long_video.py:long_video",
        "long-video",
        "A video longer than the model's 5 s, made and joined in parts.",
        ("vaceflow", "long-video"),
    ),
    DeploymentSpec(
        "deployments/downstream.py:on_job_succeeded",
        "on-job-succeeded",
        "Example downstream step: runs when any vaceflow job succeeds.",
        ("vaceflow", "downstream"),
        triggers=(succeeded_trigger(),),
        reads_inputs=False,
    ),
)


def deployments() -> list[tuple[DeploymentSpec, Flow[..., Any]]]:
    """Every declared deployment with its flow."""
    return [(spec, spec.load()) for spec in DEPLOYMENTS]

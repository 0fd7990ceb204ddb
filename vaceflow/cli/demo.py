"""`vaceflow demo`: all five functions end to end on the local stack.

Starts the stack (SeaweedFS, the emulator, a Prefect server; left running for the
Prefect UI and for `vaceflow catalog`), draws sample inputs with ffmpeg, runs the five
jobs as one `vace_batch` and prints what each made. A second run returns the
cataloged results without a new submission (`--fresh` pays again).
"""

from __future__ import annotations

import os
import time
from typing import Any

import typer

__all__ = ["demo_jobs", "register"]

PROMPTS = {
    "image_reference": "A red ball rolls across a glowing fractal landscape at dusk.",
    "video_repainting": "The test pattern becomes a neon city street at night, same motion.",
    "video_edit": "A golden retriever sits in the marked oval, looking at the camera.",
    "video_extension": "The colour bars dissolve into ocean waves under a clear sky.",
    "video_outpainting": "The screen hangs in a cosy living room with plants and a lamp.",
}


def demo_jobs(samples: Any) -> list[dict[str, Any]]:
    """The five demo jobs, as API bodies with local paths where URLs go."""
    return [
        {
            "input": {
                "function": "image_reference",
                "prompt": PROMPTS["image_reference"],
                "ref_images_url": [str(samples.subject), str(samples.background)],
            },
            "parameters": {"obj_or_bg": ["obj", "bg"], "size": "1280*720"},
        },
        {
            "input": {
                "function": "video_repainting",
                "prompt": PROMPTS["video_repainting"],
                "video_url": str(samples.video),
            },
            "parameters": {"control_condition": "depth", "strength": 0.8},
        },
        {
            "input": {
                "function": "video_edit",
                "prompt": PROMPTS["video_edit"],
                "video_url": str(samples.video),
                "mask_image_url": str(samples.mask),
            },
            "parameters": {"mask_type": "fixed"},
        },
        {
            "input": {
                "function": "video_extension",
                "prompt": PROMPTS["video_extension"],
                "first_clip_url": str(samples.first_clip),
            },
        },
        {
            "input": {
                "function": "video_outpainting",
                "prompt": PROMPTS["video_outpainting"],
                "video_url": str(samples.video),
            },
            "parameters": {"left_scale": 1.5, "right_scale": 1.5, "top_scale": 1.2},
        },
    ]


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command()
    def demo(
        fresh: bool = typer.Option(
            False, "--fresh", help="Submit again even though the catalog has the results."
        ),
        prefect_server: bool = typer.Option(
            True,
            "--prefect-server/--no-prefect-server",
            help="Run the flows against the stack's Prefect server (its UI shows the runs).",
        ),
    ) -> None:
        """All five functions end to end on a local stack.

        The service is the local emulator: nothing reaches Alibaba Cloud.
        """
        _demo(fresh=fresh, prefect_server=prefect_server)


def _demo(*, fresh: bool, prefect_server: bool) -> None:
    from rich.console import Console

    from vaceflow.cli.hints import command
    from vaceflow.cli.layout import echo, fields, shown_path, wrap
    from vaceflow.cli.running import EXIT
    from vaceflow.errors import VaceflowError
    from vaceflow.samples import make_samples
    from vaceflow.settings import data_dir
    from vaceflow.stack import stack_env, up

    console = Console()
    started = time.monotonic()
    folder = data_dir()
    with console.status("starting the local stack (S3, DashScope emulator, Prefect) ..."):
        try:
            state, _ = up(folder, prefect=prefect_server)
        except VaceflowError as exc:
            typer.echo(f"error: the local stack did not start: {exc}", err=True)
            raise typer.Exit(EXIT["stack_down"]) from None
    for key, value in stack_env(state).items():
        os.environ[key] = value  # the stack's, even over an older environment
    if not prefect_server:
        os.environ.pop("PREFECT_API_URL", None)
    typer.echo(f"stack up in {time.monotonic() - started:.0f} s:")
    echo(
        fields(
            [
                ("S3", state.s3_endpoint),
                ("emulator", state.emulator_url),
                ("Prefect", state.prefect.api_url if state.prefect else ""),
            ]
        )
    )
    with console.status("drawing sample inputs with ffmpeg ..."):
        samples = make_samples(folder / "samples")
    typer.echo(f"sample inputs in {shown_path(folder / 'samples')}")

    from flows.batch import vace_batch
    from vaceflow.cli.running import calm_console, progress
    from vaceflow.jobs import parse_job

    calm_console()

    jobs = [parse_job(body) for body in demo_jobs(samples)]
    before = _submissions(state.emulator_url)
    with progress(console):
        outcomes = vace_batch(jobs, fresh=fresh)
    submitted = _submissions(state.emulator_url) - before
    _print_table(console, outcomes)
    echo(
        wrap(
            f"{sum(o.ok for o in outcomes)} of {len(outcomes)} functions succeeded in "
            f"{time.monotonic() - started:.0f} s; the emulator counted {submitted} new "
            f"submission{'s' if submitted != 1 else ''}. Every video carries an EMULATED "
            "mark: the local emulator made it, not the model."
        )
    )
    echo(
        fields(
            [
                ("the jobs", command("catalog list")),
                (
                    "the runs",
                    f"{state.prefect.api_url.removesuffix('/api')} (Prefect UI)"
                    if state.prefect
                    else "",
                ),
                ("stop the stack", command("dev down")),
            ]
        )
    )
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


def _submissions(emulator_url: str) -> int:
    import httpx

    try:
        state = httpx.get(f"{emulator_url}/_emulator/tasks", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return int(state.get("counters", {}).get("submissions", len(state.get("tasks", []))))


def _print_table(console: Any, outcomes: list[Any]) -> None:
    """Each function's job and status, with its video and contact sheet beneath."""
    from vaceflow.catalog import Catalog
    from vaceflow.cli.batch import outcome_lines
    from vaceflow.cli.layout import Whole, echo, shown_path

    with Catalog.from_settings() as catalog:
        records = {o.job_id: catalog.get(o.job_id) for o in outcomes if o.job_id}

    def below(outcome: Any) -> list[str]:
        record = records.get(outcome.job_id)
        out = record.output if record else None
        if out is None:
            return [outcome.error or ""]
        return [
            Whole(f"video      {shown_path(out.path)}"),
            Whole(f"thumbnail  {shown_path(out.thumbnail_path)}"),
        ]

    console.file.flush()
    typer.echo("vaceflow demo: five functions, emulated service")
    echo(outcome_lines(outcomes, below))

"""`vaceflow batch FILE`: many jobs from a YAML or JSON file, within the account's limits.

FILE holds request bodies in the API's own shape (a body copied from the reference is
a valid job; local paths and s3:// URIs may stand where URLs do): one body, a list of
bodies, or `{"jobs": [...]}`. Every input is conformed and every job validated, and
the estimate checked against `--budget`, before anything is uploaded or submitted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from vaceflow.options import WAIT_TIMEOUT_MINUTES

__all__ = ["load_jobs", "outcome_lines", "register"]


def load_jobs(path: Path) -> list[Any]:
    """The typed jobs in `path`; JobInvalid naming the job (by index) that is wrong."""
    import yaml
    from pydantic import ValidationError

    from vaceflow.errors import JobInvalid, describe_validation_error
    from vaceflow.jobs import parse_job

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise JobInvalid(f"{path}: not a readable YAML or JSON file ({exc})") from None
    if isinstance(data, dict) and "jobs" in data:
        data = data["jobs"]
    bodies = data if isinstance(data, list) else [data]
    jobs = []
    for i, body in enumerate(bodies):
        if not isinstance(body, dict):
            raise JobInvalid(f"{path}: job {i} is not a request body (a mapping)")
        try:
            jobs.append(parse_job(body))
        except ValidationError as exc:
            raise JobInvalid(f"{path}: job {i}: {describe_validation_error(exc)}") from None
    if not jobs:
        raise JobInvalid(f"{path}: no jobs in the file")
    return jobs


def outcome_lines(outcomes: list[Any], below: Callable[[Any], list[str]]) -> list[str]:
    """One line per job of a batch (index, function, status, job id), and `below(outcome)`
    beneath it: its video, or its error, whole."""
    from vaceflow.cli.layout import Column, table

    def status(text: str) -> str:
        return typer.style(text, fg="green" if text == "succeeded" else "red")

    columns = [Column("#", right=True), Column("function"), Column("status", style=status)]
    columns.append(Column("job"))
    rows = [
        [str(o.index), o.function, "succeeded" if o.ok else o.status, o.job_id or ""]
        for o in outcomes
    ]
    return table(columns, rows, below=[[line for line in below(o) if line] for o in outcomes])


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command()
    def batch(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML or JSON jobs."),
        max_in_flight: int | None = typer.Option(
            None,
            "--max-in-flight",
            min=1,
            max=100,
            help="Jobs submitted and not yet ended at once, within the account's bound "
            "(VACEFLOW_ACCOUNT__IN_FLIGHT, 4: its 2 running slots with one queued behind "
            "each, so a freed slot never idles) [default: the account's bound].",
            show_default=False,
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Prepare and estimate only."),
        budget: float | None = typer.Option(
            None, "--budget", min=0, metavar="AMOUNT", help="Refuse (exit 3) above this cost."
        ),
        fresh: bool = typer.Option(False, "--fresh", help="Pay again for cataloged jobs."),
        timeout_minutes: float = typer.Option(
            WAIT_TIMEOUT_MINUTES,
            "--timeout-minutes",
            min=0.1,
            help="Per job: stop waiting after this long; the task is kept for a re-run.",
        ),
        json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Run every job in a YAML or JSON file.

        One failure never stops the others. Inputs are read as given (you wrote the
        file): the restrictions of deployments and intake do not apply.
        """
        _batch(file, max_in_flight, dry_run, budget, fresh, timeout_minutes, json_out)


def _batch(
    file: Path,
    max_in_flight: int | None,
    dry_run: bool,
    budget: float | None,
    fresh: bool,
    timeout_minutes: float,
    json_out: bool,
) -> None:
    from rich.console import Console

    from vaceflow.cli.run import _estimate, stop_over_budget
    from vaceflow.cli.running import EXIT, progress
    from vaceflow.errors import InputRefused, MediaError, VaceflowError
    from vaceflow.media.prepare import prepare
    from vaceflow.settings import Settings

    console = Console(soft_wrap=True)
    current: int | None = None
    try:
        jobs = load_jobs(file)
        prepared = []
        for current, job in enumerate(jobs):  # noqa: B007 (read in the except clause)
            prepared.append(prepare(job))
    except VaceflowError as exc:
        where = f"job {current}: " if current is not None else ""
        rule = f" (rule: {exc.rule})" if isinstance(exc, InputRefused) else ""
        if json_out:
            error = {"job": current, "error": str(exc), "rule": getattr(exc, "rule", None)}
            typer.echo(json.dumps({"ok": False, **error}, indent=2))
        else:
            from vaceflow.cli.layout import echo, wrap
            from vaceflow.cli.run import _CLASS_NAME

            said = _CLASS_NAME.sub("", str(exc)) if isinstance(exc, MediaError) else str(exc)
            echo(wrap(f"refused: {where}{said}{rule}", indent="  "), err=True)
        raise typer.Exit(EXIT["refused"]) from None
    account = Settings.load().account
    running = min(max_in_flight or account.in_flight, account.concurrent_tasks)  # the rest queue
    estimate, over = _estimate(prepared, budget, concurrency=running)
    if over is not None:
        stop_over_budget(console, over, json_out=json_out)
    if not json_out:
        console.print(f"[bold]estimate:[/] {estimate.summary}", highlight=False)
    if dry_run:
        if json_out:
            typer.echo(json.dumps({"ok": True, "estimate": estimate.model_dump(mode="json")}))
        else:
            console.print(f"[bold green]ready[/]: {len(jobs)} jobs; nothing was submitted.")
        return

    from flows.batch import vace_batch
    from tasks.runtime import open_runtime
    from vaceflow.cli.problems import UserProblem, prefect_api_url, preflight
    from vaceflow.cli.running import calm_console, stop

    try:
        preflight(Settings.load(), prefect_url=prefect_api_url())
    except UserProblem as problem:
        stop(problem, json_out=json_out)
    calm_console()
    with (
        progress(console, enabled=not json_out) as listener,
        open_runtime(listener=listener, prepared=list(zip(jobs, prepared, strict=True))),
    ):
        outcomes = vace_batch(
            jobs, max_in_flight=max_in_flight, fresh=fresh, timeout_minutes=timeout_minutes
        )
    if json_out:
        typer.echo(json.dumps([o.model_dump(mode="json") for o in outcomes], indent=2))
    else:
        from vaceflow.cli.layout import echo, shown_path

        typer.echo(f"{file.name}: {sum(o.ok for o in outcomes)} of {len(outcomes)} ok")
        echo(outcome_lines(outcomes, lambda o: [shown_path(o.output) if o.ok else o.error or ""]))
    if not all(o.ok for o in outcomes):
        raise typer.Exit(EXIT["failed"])

"""Running jobs from the command line, with a live progress line.

`run` and `batch` come here after their checks. With a Prefect server named, the
flows do the work and the process's progress listener feeds a rich status line
(status, elapsed, polls); `run` with none runs the same steps without Prefect (no
temporary server to start, nothing to see it in), feeding the same line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from vaceflow.catalog import JobRecord
    from vaceflow.jobs import Job
    from vaceflow.responses import TaskStatus
    from vaceflow.steps import JobListener

__all__ = [
    "EXIT",
    "load_env_file",
    "needs_prefect",
    "print_record",
    "progress",
    "quiet_prefect_console",
    "run_here",
    "run_one",
]

EXIT = {"ok": 0, "failed": 1, "refused": 2, "over_budget": 3, "timeout": 4, "uncertain": 5}
"""Exit codes of `run` and `batch`; documented in the README."""


def load_env_file() -> None:
    """Export the dev stack's env file to this process (the environment wins), so that
    Prefect, boto3 and every setting see what `vaceflow dev up` wrote."""
    from vaceflow.settings import env_file

    path = env_file()
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key.strip(), value)


def quiet_prefect_console() -> None:
    """Prefect's INFO lines would bury the progress line: the console shows warnings
    and errors only (the runs' full logs still go to the Prefect API and UI)."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


@contextmanager
def progress(
    console: Console, enabled: bool = True, *, through_prefect: bool = True
) -> Iterator[JobListener | None]:
    """A live line per job while it waits: status, time since the wait began, polls.

    Yields the listener (None when not `enabled`); `through_prefect` also hands it to
    the flows' wait tasks (`tasks.runtime`), for a run that goes through Prefect."""
    if not enabled:
        yield None
        return
    lines: dict[str, str] = {}
    lock = threading.Lock()
    status = console.status("preparing ...", spinner="dots")

    def listener(job_id: str, state: TaskStatus, elapsed: float, polls: int) -> None:
        with lock:
            lines[job_id] = f"{job_id}: {state.value} {elapsed:5.0f} s, {polls} polls"
            status.update(" | ".join(lines.values())[-console.width + 4 :])

    if through_prefect:
        from tasks.runtime import set_progress_listener

        set_progress_listener(listener)
    with status:
        try:
            yield listener
        finally:
            if through_prefect:
                set_progress_listener(None)


def run_one(
    job: Job,
    *,
    fresh: bool,
    timeout_minutes: float,
    resubmit_on_algo_error: bool,
    json_out: bool,
    console: Console,
) -> None:
    """Run `job` (through the `vace_job` flow when a Prefect server is named, else the
    same steps without Prefect); print the record; exit with its code."""
    from vaceflow.errors import TaskFailed, VaceflowError, WaitTimeout
    from vaceflow.pipeline import JobUncertain

    started = time.monotonic()
    options: dict[str, Any] = dict(
        fresh=fresh, timeout_minutes=timeout_minutes, resubmit_on_algo_error=resubmit_on_algo_error
    )
    through_prefect = needs_prefect()
    try:
        with progress(console, enabled=not json_out, through_prefect=through_prefect) as listener:
            if through_prefect:
                from flows.job import vace_job

                record = vace_job(job, **options)
            else:
                record = run_here(job, listener=listener, **options)
    except WaitTimeout as exc:
        _fail(console, json_out, "timeout", exc)
    except JobUncertain as exc:
        _fail(console, json_out, "uncertain", exc)
    except (TaskFailed, VaceflowError) as exc:
        _fail(console, json_out, "failed", exc)
    print_record(console, record, json_out=json_out, seconds=time.monotonic() - started)


def needs_prefect() -> bool:
    """Whether a run must go through Prefect: a server is named (its UI shows the run),
    or a secret is to come from a Prefect Secret block."""
    from vaceflow.cli.prefect_api import prefect_server_named
    from vaceflow.settings import Settings

    if prefect_server_named():
        return True
    settings = Settings.load()
    from_block = (settings.api_key is None and settings.api_key_block) or (
        settings.s3_secret_access_key is None and settings.s3_secret_key_block
    )
    return bool(from_block)


def run_here(
    job: Job,
    *,
    listener: JobListener | None,
    fresh: bool,
    timeout_minutes: float,
    resubmit_on_algo_error: bool,
) -> JobRecord:
    """The job's steps (`vaceflow.steps`) in this process, without Prefect: the same
    catalog rows as the flow, so a later run (either way) resumes it."""
    from vaceflow.media.spec import JobSpec
    from vaceflow.services import Services
    from vaceflow.steps import LocalSteps, run_steps

    with Services.from_settings() as svc:
        return run_steps(
            LocalSteps(svc, on_status=listener),
            JobSpec.from_job(job),
            fresh=fresh,
            timeout_minutes=timeout_minutes,
            resubmit_on_algo_error=resubmit_on_algo_error,
        )


def _fail(console: Console, json_out: bool, kind: str, exc: BaseException) -> None:
    if json_out:
        typer.echo(json.dumps({"ok": False, "outcome": kind, "error": str(exc)}, indent=2))
    else:
        console.print(f"[bold red]{kind}:[/] {exc}", highlight=False)
    raise typer.Exit(EXIT[kind])


def print_record(
    console: Console, record: JobRecord, *, json_out: bool, seconds: float | None = None
) -> None:
    if json_out:
        typer.echo(json.dumps(record.model_dump(mode="json"), indent=2))
        return
    out = record.output
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    console.print(
        f"[bold green]{record.status.value}[/] {record.function} {record.id}{took}",
        highlight=False,
    )
    rows: list[tuple[str, Any]] = [
        ("task", record.task_id),
        ("video", out.path if out else None),
        ("thumbnail", out.thumbnail_path if out else None),
        ("s3", out.s3_uri if out else None),
        ("cost", f"{record.cost:.2f}" if record.cost is not None else None),
    ]
    for name, value in rows:
        if value:
            console.print(f"  {name:10s} {value}", highlight=False, soft_wrap=True)

"""Running jobs from the command line, with a live progress line.

`run` and `batch` come here after their checks. With a Prefect server named, the
flows do the work in a runtime this process opens (`tasks.runtime.open_runtime`), whose
listener feeds a rich status line (status, elapsed, polls); `run` with none runs the
same steps without Prefect (no temporary server to start, nothing to see it in),
feeding the same line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from tasks.runtime import PrefectApiSettings
    from vaceflow.catalog import JobRecord
    from vaceflow.cli.problems import UserProblem
    from vaceflow.jobs import Job
    from vaceflow.media.prepare import PreparedJob
    from vaceflow.pipeline import Staged
    from vaceflow.responses import TaskStatus
    from vaceflow.steps import JobListener

__all__ = [
    "EXIT",
    "calm_console",
    "load_env_file",
    "needs_prefect",
    "print_record",
    "progress",
    "quiet_prefect_console",
    "run_here",
    "run_one",
    "stop",
]

EXIT = {
    "ok": 0,
    "failed": 1,
    "refused": 2,
    "over_budget": 3,
    "timeout": 4,
    "uncertain": 5,
    # The user's situation, not the job's (vaceflow.cli.problems):
    "stack_down": 6,
    "prefect_unreachable": 7,
    "s3_unreachable": 8,
    "service_unreachable": 9,
    "no_key": 10,
    "catalog_unreachable": 11,
}
"""Exit codes of `run` and `batch` (6 and up: of every command); documented in the README."""


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


def calm_console() -> None:
    """A failed run is the CLI's one line: Prefect's own error lines about it, and every
    traceback, stay in the run's logs (the API, the UI) and reach this console only
    with --debug. Call after Prefect is imported (it sets up logging on import)."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    from vaceflow.cli.problems import debug

    if debug():
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(
            handler.formatter, _WithoutTraceback
        ):
            handler.addFilter(_no_prefect_errors)
            handler.setFormatter(_WithoutTraceback(handler.formatter))


def _no_prefect_errors(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("prefect") and record.levelno >= logging.ERROR)


class _WithoutTraceback(logging.Formatter):
    """The wrapped formatter's line, without the record's traceback or stack."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self._inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


@contextmanager
def progress(console: Console, enabled: bool = True) -> Iterator[JobListener | None]:
    """A live line per job while it waits: status, time since the wait began, polls.

    Yields the listener to hand to the steps (None when not `enabled`)."""
    if not enabled:
        yield None
        return
    lines: dict[str, str] = {}
    lock = threading.Lock()
    status = console.status("preparing ...", spinner="dots")

    states: dict[str, str] = {}

    def listener(job_id: str, state: TaskStatus, elapsed: float, polls: int) -> None:
        with lock:
            lines[job_id] = f"{job_id}: {state.value} {elapsed:5.0f} s, {polls} polls"
            states[job_id] = state.value
            text = " | ".join(lines.values())
            if len(text) > console.width - 4:  # too many jobs for one line: count them
                counts: dict[str, int] = {}
                for value in states.values():
                    counts[value] = counts.get(value, 0) + 1
                text = ", ".join(f"{n} {value}" for value, n in sorted(counts.items()))
            status.update(text)

    with status:
        yield listener


def run_one(
    job: Job,
    prepared: PreparedJob,
    *,
    fresh: bool,
    timeout_minutes: float,
    resubmit_on_algo_error: bool,
    json_out: bool,
    console: Console,
) -> None:
    """Run `job` from its preparation (through the `vace_job` flow when a Prefect server
    is named, else the same steps without Prefect); print the record; exit with its code."""
    from vaceflow.cli.problems import diagnose
    from vaceflow.errors import VaceflowError, WaitTimeout
    from vaceflow.pipeline import JobUncertain

    started = time.monotonic()
    options: dict[str, Any] = dict(
        fresh=fresh, timeout_minutes=timeout_minutes, resubmit_on_algo_error=resubmit_on_algo_error
    )
    through_prefect = needs_prefect()
    server = server_read_ahead() if through_prefect else None
    try:
        with progress(console, enabled=not json_out) as listener:
            if server is not None:
                record = _submit_then_flow(job, prepared, server, listener, options)
            elif through_prefect:
                from flows.job import vace_job
                from tasks.runtime import open_runtime

                calm_console()
                with open_runtime(listener=listener, prepared=[(job, prepared)]):
                    record = vace_job(job, **options)
            else:
                record = run_here(prepared, listener=listener, **options)
    except WaitTimeout as exc:
        _fail(console, json_out, "timeout", exc)
    except JobUncertain as exc:
        _fail(console, json_out, "uncertain", exc)
    except Exception as exc:
        problem = diagnose(exc)
        if problem is not None:
            stop(problem, json_out=json_out)
        if isinstance(exc, VaceflowError):
            _fail(console, json_out, "failed", exc)
        raise
    print_record(console, record, json_out=json_out, seconds=time.monotonic() - started)


def needs_prefect() -> bool:
    """Whether a run must go through Prefect: a server is named (its UI shows the run),
    or a secret is to come from a Prefect Secret block."""
    from vaceflow.cli.prefect_api import prefect_server_named

    return prefect_server_named() or _secrets_in_blocks()


def _secrets_in_blocks() -> bool:
    from vaceflow.settings import Settings

    settings = Settings.load()
    from_block = (settings.api_key is None and settings.api_key_block) or (
        settings.s3_secret_access_key is None and settings.s3_secret_key_block
    )
    return bool(from_block)


def server_read_ahead() -> PrefectApiSettings | None:
    """The Prefect server a run reports to, read without importing Prefect, when it can
    be read for certain (and no secret waits in a Prefect block): None otherwise."""
    from pydantic import ValidationError

    from tasks.runtime import PrefectApiSettings
    from vaceflow.cli.prefect_api import prefect_api_settings

    fields = prefect_api_settings()
    if not fields or not fields.get("url") or _secrets_in_blocks():
        return None
    try:  # Prefect's own default for the certificates, then what is set
        return PrefectApiSettings.model_validate(
            {"ssl_cert_file": os.environ.get("SSL_CERT_FILE")} | fields
        )
    except ValidationError:
        return None  # Prefect says what is wrong with it, in its own words


def _submit_then_flow(
    job: Job,
    prepared: PreparedJob,
    server: PrefectApiSettings,
    listener: JobListener | None,
    options: dict[str, Any],
) -> JobRecord:
    """With a server named: the job's slot is taken on the server and the job submitted
    here, before Prefect is imported (2 s and more); then the `vace_job` flow run, which
    the UI shows, goes on from the recorded task (waits, collects, records), inside the
    same slot. A run killed in between is resumed by the next, as any other."""
    from tasks.runtime import open_runtime
    from vaceflow.steps import LocalSteps, submit_then

    with open_runtime(listener=listener, prepared=[(job, prepared)], server=server) as runtime:

        def in_flow(record: JobRecord, staged: Staged | None) -> JobRecord:
            from flows.job import vace_job

            calm_console()
            with runtime.handed_over(record.id, staged):
                done: JobRecord = vace_job(job, **options)
            return done

        steps = LocalSteps(runtime.services, on_status=listener)
        return submit_then(steps, prepared, in_flow, fresh=options["fresh"])


def run_here(
    job: Job | PreparedJob,
    *,
    listener: JobListener | None,
    fresh: bool,
    timeout_minutes: float,
    resubmit_on_algo_error: bool,
) -> JobRecord:
    """The job's steps (`vaceflow.steps`) in this process, without Prefect: the same
    catalog rows as the flow, so a later run (either way) resumes it."""
    from vaceflow.services import Services
    from vaceflow.steps import LocalSteps, run_steps

    with Services.from_settings() as svc:
        return run_steps(
            LocalSteps(svc, on_status=listener),
            job,
            fresh=fresh,
            timeout_minutes=timeout_minutes,
            resubmit_on_algo_error=resubmit_on_algo_error,
        )


def _fail(console: Console, json_out: bool, kind: str, exc: BaseException) -> NoReturn:
    from vaceflow.cli.hints import in_commands

    message = in_commands(str(exc))
    if json_out:
        typer.echo(json.dumps({"ok": False, "outcome": kind, "error": message}, indent=2))
    else:
        typer.secho(f"{kind}: ", fg="red", bold=True, err=True, nl=False)
        typer.echo(message, err=True)
    raise typer.Exit(EXIT[kind])


def stop(problem: UserProblem, *, json_out: bool = False) -> NoReturn:
    """Say the user's situation (JSON on stdout with --json) and exit with its code."""
    from vaceflow.cli.problems import debug

    if json_out:
        typer.echo(json.dumps(problem.as_json(), indent=2))
    else:
        if debug():
            import traceback

            traceback.print_exc()
        for line in problem.lines():
            typer.echo(line, err=True)
    raise typer.Exit(problem.exit_code)


def print_record(
    console: Console, record: JobRecord, *, json_out: bool, seconds: float | None = None
) -> None:
    if json_out:
        typer.echo(json.dumps(record.model_dump(mode="json"), indent=2))
        return
    from vaceflow.cli.layout import echo, fields, shown_path
    from vaceflow.settings import Settings

    out = record.output
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    console.file.flush()
    head = typer.style(record.status.value, fg="green", bold=True)
    typer.echo(f"{head} {record.function} {record.id}{took}")
    price = Settings.load().pricing.for_model(record.model)
    cost = ""
    if record.cost is not None:
        cost = price.money(record.cost)
        if record.video_seconds:
            cost += f" ({record.video_seconds:g} s of video at {price})"
    rows: list[tuple[str, str]] = [
        ("task", record.task_id or ""),
        ("video", shown_path(out.path) if out else ""),
        ("thumbnail", shown_path(out.thumbnail_path) if out else ""),
        ("published", (out.s3_uri or "") if out else ""),
        ("cost", cost),
    ]
    echo(fields(rows))

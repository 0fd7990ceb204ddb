"""The `vaceflow` command: the one layer inside the package allowed to reach flows.

Each sub-module registers its own commands; heavy imports happen inside the commands
so `vaceflow --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import NoReturn

import typer
from typer._click.core import Context as _ClickContext  # typer vendors click since 0.26
from typer._click.formatting import HelpFormatter

from vaceflow.cli import batch, catalog, demo, dev, doctor, emulator, run, serve

__all__ = ["app", "console", "main"]

_UNBROKEN_HYPHEN = "\u2011"


class _HelpFormatter(HelpFormatter):
    """Click's help, wrapped at spaces only: a flag (--mask-video) is never split at its
    hyphens. Hyphens travel through the wrapping as non-breaking ones."""

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", _UNBROKEN_HYPHEN))

    def write_dl(
        self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        keep = [
            (a.replace("-", _UNBROKEN_HYPHEN), b.replace("-", _UNBROKEN_HYPHEN)) for a, b in rows
        ]
        super().write_dl(keep, col_max, col_spacing)

    def getvalue(self) -> str:
        return super().getvalue().replace(_UNBROKEN_HYPHEN, "-")


_ClickContext.formatter_class = _HelpFormatter  # in vaceflow's process: its own CLI only

app = typer.Typer(
    name="vaceflow",
    help="Run wan2.1-vace-plus (DashScope) video jobs: check, stage, submit once, collect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wraps at any width, never cuts a flag, pipes cleanly
)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks (also VACEFLOW_DEBUG=1).", show_default=False
    ),
) -> None:
    """vaceflow: typed VACE jobs, a DashScope client, a local emulator, Prefect flows."""
    if debug:
        os.environ["VACEFLOW_DEBUG"] = "1"


for _module in (demo, run, batch, catalog, serve, emulator, dev, doctor):
    _module.register(app)


def main() -> None:
    from vaceflow.cli.problems import report_uncaught
    from vaceflow.cli.running import load_env_file, quiet_prefect_console

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    if words[:1] and words[0] in ("run", "batch", "demo"):
        quiet_prefect_console()
    try:
        load_env_file()
        app()
    except Exception as exc:  # typer's exits are SystemExit: only real errors come here
        sys.exit(report_uncaught(exc))


def console() -> NoReturn:
    """The `vaceflow` command: `main`, then the process ends as soon as its work is out.

    Once a command is done, the interpreter's teardown only frees memory, and tearing
    down Prefect, SQLAlchemy and boto3 took 0.3 to 0.8 s after every run
    (`bench/bench_run.py`). What the teardown would do that matters is done first: the
    output and the log handlers flushed, Prefect's log and event queues sent to its API
    (their exit hooks would do it), then `os._exit`. Code that calls `main` itself
    keeps the ordinary exit."""
    code: int
    try:
        main()
        code = 0
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    _leave(code)


def _leave(code: int) -> NoReturn:
    import contextlib
    import logging

    if "prefect.logging.handlers" in sys.modules:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for service in (APILogWorker, EventsWorker):
            service.drain_all(timeout=DRAIN_SECONDS)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing reaches it
            stream.flush()
    os._exit(code)


DRAIN_SECONDS = 30.0
"""At most this long for Prefect's queued logs and events to reach its API at exit."""

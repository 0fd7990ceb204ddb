"""The `vaceflow` command: the one layer inside the package allowed to reach flows.

Each sub-module registers its own commands; heavy imports happen inside the commands
so `vaceflow --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from vaceflow.cli import batch, catalog, demo, dev, doctor, emulator, run, serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="vaceflow",
    help="Run wan2.1-vace-plus (DashScope) video jobs: check, stage, submit once, collect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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

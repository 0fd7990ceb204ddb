"""The `vaceflow` command: the one layer inside the package allowed to reach flows.

Each sub-module registers its own commands; heavy imports happen inside the commands
so `vaceflow --help` stays fast.
"""

from __future__ import annotations

import os

import typer

from vaceflow.cli import catalog, demo, dev, doctor, emulator, run

__all__ = ["app", "main"]

app = typer.Typer(
    name="vaceflow",
    help="Run wan2.1-vace-plus (DashScope) video jobs: check, stage, submit once, collect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """vaceflow: typed VACE jobs, a DashScope client, a local emulator, Prefect flows."""


for _module in (demo, run, catalog, emulator, dev, doctor):
    _module.register(app)


def main() -> None:
    from vaceflow.cli.running import load_env_file

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    load_env_file()
    app()

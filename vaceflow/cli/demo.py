"""`vaceflow demo`: all five functions end to end on the local stack."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command()
    def demo() -> None:
        """Run all five VACE functions end to end on a local stack (coming: needs the flows)."""
        typer.echo(
            "vaceflow demo is coming: the flows that run the five functions end to end are "
            "not built yet. Meanwhile `vaceflow emulator` serves the local DashScope emulator."
        )

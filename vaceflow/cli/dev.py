"""`vaceflow dev up / down / status`: the local stack (SeaweedFS S3, the emulator, a
Prefect server), or with `--team` the team's (plus PostgreSQL and process workers).

`up` prints `export` lines on stdout (so `eval "$(vaceflow dev up)"` works) and
writes the same variables to the env file every command reads; messages go to stderr.
"""

from __future__ import annotations

import shlex

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    from vaceflow.cli.layout import command_group

    dev = command_group(
        "The local stack on loopback: SeaweedFS (S3), the DashScope emulator, Prefect.",
        "The local stack: S3, the emulator, Prefect.",
    )

    @dev.command("up")
    def up_command(
        timeout: float = typer.Option(90.0, help="Seconds to wait for each service."),
        prefect: bool = typer.Option(
            True, "--prefect/--no-prefect", help="Also run a Prefect server (~10 s to start)."
        ),
        team: bool = typer.Option(
            False,
            "--team",
            help="The team stack: PostgreSQL, Prefect on it, the catalog on it, workers.",
        ),
        workers: int = typer.Option(2, min=1, max=16, help="Process workers (with --team)."),
    ) -> None:
        """Start the stack (when not running).

        Prints its environment and writes it to the env file every command reads.
        """
        from vaceflow.errors import VaceflowError
        from vaceflow.settings import data_dir, env_file
        from vaceflow.stack import stack_env, up

        try:
            state, already = up(
                data_dir(), timeout=timeout, prefect=prefect, team=team, workers=workers
            )
        except VaceflowError as exc:
            typer.echo(f"error: the stack did not start: {exc}", err=True)
            raise typer.Exit(1) from None
        word = "already running" if already else "started"
        kind = "team stack" if state.team else "dev stack"
        typer.echo(
            f"{kind} {word}: S3 {state.s3_endpoint}, emulator {state.emulator_url}", err=True
        )
        if state.prefect is not None:
            server = state.prefect
            pool = f", pool {state.pool!r} with {len(state.workers)} workers" if state.team else ""
            typer.echo(f"prefect: {server.api_url} on {server.database}{pool}", err=True)
            typer.echo(f"dashboard: {server.api_url.removesuffix('/api')}", err=True)
            typer.echo(_set_account_limits(server.api_url), err=True)
        typer.echo(f"lifecycle: {state.lifecycle}", err=True)
        typer.echo(
            f"environment written to {env_file()} (read by every vaceflow command)", err=True
        )
        for key, value in stack_env(state).items():
            typer.echo(f"export {key}={shlex.quote(value)}")

    @dev.command("down")
    def down_command() -> None:
        """Stop the stack; its data and keys stay for the next `up`."""
        from vaceflow.settings import data_dir
        from vaceflow.stack import down

        stopped = down(data_dir())
        typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "dev stack was not running")

    @dev.command("status")
    def status_command() -> None:
        """Say what runs and answers; exit 1 unless everything does."""
        from vaceflow.settings import data_dir
        from vaceflow.stack import status

        services = status(data_dir())
        if not services:
            from vaceflow.cli.hints import command

            typer.echo(f"dev stack: not started ({command('dev up')})")
            raise typer.Exit(1)
        for s in services:
            state = (
                "answering" if s.answering else "running, not answering" if s.running else "stopped"
            )
            pid = f"pid {s.pid}" if s.running else "no process"
            typer.echo(f"{s.name:<10} {state:<24} {pid:<12} {s.url}")
        if not all(s.answering for s in services):
            raise typer.Exit(1)

    app.add_typer(dev, name="dev")


def _set_account_limits(api_url: str) -> str:
    """The account's limits (the settings') on the stack's Prefect server, where every
    run and worker shares them (`tasks.runtime`); what was done, in a line."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.runtime import apply_account_limits
    from vaceflow.settings import Settings

    account = Settings.load().account
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            apply_account_limits(account)
    except Exception as exc:  # the stack runs: the first run makes the limits instead
        return f"account limits: not set ({type(exc).__name__}); the first run makes them"
    return f"account limits: at most {account.in_flight} jobs in flight, shared by every run"

"""`vaceflow serve` and `vaceflow deploy`: the deployments of `deployments/` on a Prefect
server, run by this process or by a work pool's workers.

Both read the one list in `deployments/catalog.py`. Both need a Prefect server
(PREFECT_API_URL, which `vaceflow dev up` writes to the env file): without one, a
deployment would vanish with the temporary server Prefect starts for a lone process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

__all__ = ["project_dir", "register"]

NO_SERVER = (
    "No Prefect server configured: set PREFECT_API_URL, or start one with "
    "`vaceflow dev up` (it writes PREFECT_API_URL to the env file every command reads)."
)


def project_dir() -> Path:
    """The folder holding `flows/`, `tasks/` and `deployments/`: what a worker loads
    the flows from (`deployments/` lives beside the package, not inside it)."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def _require_server() -> str:
    project_dir()
    from deployments.serving import api_url
    from vaceflow.cli.hints import in_commands
    from vaceflow.cli.problems import unreachable
    from vaceflow.cli.running import stop
    from vaceflow.reach import reach

    url = api_url()
    if not url:
        typer.echo(in_commands(NO_SERVER), err=True)
        raise typer.Exit(2)
    answer = reach(f"{url.rstrip('/')}/health")
    if not answer.answered:
        stop(unreachable("prefect", url, answer.problem or "no answer"))
    return url


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command()
    def serve(
        limit: int | None = typer.Option(
            None, "--limit", min=1, help="Flow runs this process runs at once (default: any)."
        ),
    ) -> None:
        """Serve the deployments from this process.

        Runs until interrupted.
        """
        url = _require_server()
        from deployments import deployments
        from deployments.serving import serve_all

        declared = deployments()
        typer.echo(f"serving {len(declared)} deployments on {url}:")
        for spec, _ in declared:
            typer.echo(f"  {spec.flow_name}/{spec.name}")
        serve_all(limit)

    @app.command()
    def deploy(
        pool: str = typer.Option(
            ..., "--pool", help="The work pool (the team stack, `dev up --team`, makes `vaceflow`)."
        ),
    ) -> None:
        """Register the deployments for a work pool.

        The workers load the flows from this project's folder (no image): they must see
        it at the same path, as process workers on this machine do.
        """
        url = _require_server()
        from deployments.serving import deploy_all, pool_exists
        from vaceflow.cli.hints import command, prefect_command
        from vaceflow.cli.layout import echo, wrap

        if not pool_exists(pool):
            create = prefect_command(f"work-pool create {pool} --type process")
            said = f"error: the Prefect server at {url} has no work pool {pool!r}"
            fix = wrap(
                f"create it: {create}; or start the team stack, which has one: "
                f"{command('dev up --team')}",
                first="  ",
                indent="  ",
                keep=[create, command("dev up --team")],
            )
            echo([said, *fix], err=True)
            raise typer.Exit(2)

        from vaceflow.settings import Settings

        for spec in deploy_all(pool, project_dir()):
            typer.echo(f"deployed {spec.flow_name}/{spec.name} to pool {pool!r}")
        typer.echo(f"on {url}")
        in_flight = Settings.load().account.in_flight
        typer.echo(f"the account's limits set there: at most {in_flight} jobs in flight")

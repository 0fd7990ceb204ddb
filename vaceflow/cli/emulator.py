"""`vaceflow emulator`: serve the local DashScope emulator in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command()
    def emulator(
        api_key: str = typer.Option(
            ...,
            "--api-key",
            envvar="DASHSCOPE_API_KEY",
            show_default=False,
            help="The key clients must send (also from DASHSCOPE_API_KEY); never printed.",
        ),
        host: str = typer.Option("127.0.0.1", help="Address to bind."),
        port: int = typer.Option(8765, help="Port to bind (0: any free port)."),
        latency: float = typer.Option(3.0, help="Seconds a task stays RUNNING."),
        concurrency: int | None = typer.Option(None, help="Tasks RUNNING at once [account's]."),
        submit_qps: float | None = typer.Option(None, help="Submits a second; 0 = unlimited."),
        query_qps: float | None = typer.Option(None, help="Status queries a second."),
        list_qps: float | None = typer.Option(None, help="List calls a second."),
        cancel_qps: float | None = typer.Option(None, help="Cancels a second."),
        url_ttl: float | None = typer.Option(None, help="Seconds task ids and video URLs live."),
        fault_rate: float = typer.Option(0.0, help="Share of calls and tasks that fail (0-1)."),
        fault: list[str] = typer.Option(
            [],
            "--fault",
            help="Only these fault kinds (repeat): error_500, error_503, drop, "
            "slow, task_failure. Default: all.",
        ),
        seed: int | None = typer.Option(None, help="Seed for the fault dice."),
        submit_fault: list[str] = typer.Option(
            [],
            "--submit-fault",
            help="A fault for the next submit, in order (repeat): answer_lost (the task is "
            "made, the answer lost), lost (no task made), hang (the answer comes late). "
            "Also POST /_emulator/faults while running.",
        ),
        region: str = typer.Option("singapore", help="singapore (wan2.1-vace-plus) or beijing."),
        data_dir: Path | None = typer.Option(None, help="Where results go [a temporary folder]."),
        public_url: str | None = typer.Option(
            None, help="Root URL clients reach this server at [from the request]."
        ),
    ) -> None:
        """Serve the local DashScope emulator.

        The same routes, limits and errors as wan2.1-vace-plus.
        """
        from pydantic import ValidationError

        from vaceflow.emulator import EmulatorConfig, EmulatorServer
        from vaceflow.errors import ConfigError
        from vaceflow.regions import parse_region

        given = {
            "concurrency": concurrency,
            "submit_qps": submit_qps,
            "query_qps": query_qps,
            "list_qps": list_qps,
            "cancel_qps": cancel_qps,
            "url_ttl": url_ttl,
            "faults": frozenset(fault) if fault else None,
            "submit_faults": tuple(submit_fault) if submit_fault else None,
        }
        try:
            config = EmulatorConfig(
                api_key=api_key,
                latency=latency,
                fault_rate=fault_rate,
                seed=seed,
                region=parse_region(region),
                data_dir=data_dir,
                public_url=public_url,
                **{k: v for k, v in given.items() if v is not None},
            )
        except (ValidationError, ConfigError) as exc:
            raise typer.BadParameter(str(exc)) from None
        server = EmulatorServer(config, host=host, port=port, log_level="info")
        typer.echo(
            f"DashScope emulator ({config.region.value}, model {config.model}) at "
            f"{server.base_url}\n  export DASHSCOPE_HTTP_BASE_URL={server.base_url}\n"
            "  Ctrl-C to stop"
        )
        server.serve()

"""`vaceflow catalog`: read the job ledger (list, show, export), and settle uncertain
submits (reconcile, resolve: `vaceflow.cli.settle`).

Otherwise reads only: the ledger is written by runs. The catalog opened is the
configured one (VACEFLOW_CATALOG_URL, else `catalog.db` in the data folder), migrated
on open.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vaceflow.cli import settle

if TYPE_CHECKING:
    from rich.table import Table

    from vaceflow.catalog import Catalog, JobRecord
    from vaceflow.settings import Pricing

__all__ = ["register"]


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def _open() -> Catalog:
    from vaceflow.catalog import Catalog

    return Catalog.from_settings()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _cost(value: float | None, record: JobRecord, pricing: Pricing) -> str:
    return pricing.for_model(record.model).money(value) if value is not None else ""


def _totals(costs: dict[str, float]) -> str:
    return " + ".join(f"{currency} {amount:.2f}" for currency, amount in costs.items()) or "0.00"


def _jobs_table(records: list[JobRecord], pricing: Pricing) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("id", no_wrap=True)
    for name in ("function", "status", "created (UTC)", "duration", "cost", "output"):
        table.add_column(name)
    for r in records:
        table.add_row(
            r.id,
            r.function,
            r.status.value,
            _when(r.created_at),
            _duration(r.duration_seconds),
            _cost(r.cost, r, pricing),
            Text((r.output.path or r.output.s3_uri or "") if r.output else ""),
        )
    return table


def _job_tables(record: JobRecord) -> tuple[Table, Table]:
    from rich.table import Table
    from rich.text import Text

    fields = Table("field", "value", show_header=False)
    for key, value in record.model_dump(mode="json", exclude={"history"}).items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        fields.add_row(key, Text("" if shown is None else str(shown)))
    fields.add_row("duration", _duration(record.duration_seconds))
    history = Table("at (UTC)", "status", "service", "task", "note", title="history")
    for event in record.history:
        history.add_row(
            _when(event.at),
            event.status.value,
            event.service_status or "",
            event.task_id or "",
            Text(event.note or ""),
        )
    return fields, history


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    catalog_app = typer.Typer(
        help="The job ledger: what ran, what it cost, where the videos are.",
        no_args_is_help=True,
    )
    app.add_typer(catalog_app, name="catalog")
    settle.register(catalog_app)

    @catalog_app.command("list")
    def list_jobs(
        status: Annotated[
            str | None, typer.Option(help="new, submitted, running, succeeded, uncertain, ...")
        ] = None,
        function: Annotated[str | None, typer.Option(help="e.g. video_edit")] = None,
        limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
    ) -> None:
        """Jobs, newest first."""
        from rich.console import Console

        from vaceflow.catalog import JobStatus
        from vaceflow.catalog.export import to_json

        try:
            wanted = JobStatus(status) if status else None
        except ValueError:
            choices = ", ".join(s.value for s in JobStatus)
            raise typer.BadParameter(
                f"{status!r}; one of {choices}", param_hint="--status"
            ) from None
        with _open() as catalog:
            records = catalog.list_jobs(status=wanted, function=function, limit=limit)
        if as_json:
            typer.echo(to_json(records))
            return
        Console().print(_jobs_table(records, catalog.pricing))

    @catalog_app.command("show")
    def show(
        job_id: Annotated[str, typer.Argument(help="The job id (vf_...).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON record.")] = False,
    ) -> None:
        """Everything about one job, its history included."""
        from rich.console import Console

        from vaceflow.catalog import JobNotFound

        with _open() as catalog:
            try:
                record = catalog.get(job_id, history=True)
            except JobNotFound as error:
                typer.echo(str(error), err=True)
                raise typer.Exit(1) from None
        if as_json:
            typer.echo(record.model_dump_json(indent=2))
            return
        console = Console()
        for table in _job_tables(record):
            console.print(table)

    @catalog_app.command("export")
    def export(
        fmt: Annotated[ExportFormat, typer.Option("--format", help="json or csv.")],
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
        ] = None,
    ) -> None:
        """Every job: JSON (full records with history) or CSV (the main columns)."""
        from vaceflow.catalog.export import to_csv, to_json

        with _open() as catalog:
            records = catalog.list_jobs(limit=None, history=fmt is ExportFormat.JSON)
            totals = catalog.total_costs()
        text = to_json(records) + "\n" if fmt is ExportFormat.JSON else to_csv(records)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
        where = f" to {output}" if output else ""
        typer.echo(f"exported {len(records)} jobs{where}; total cost {_totals(totals)}", err=True)

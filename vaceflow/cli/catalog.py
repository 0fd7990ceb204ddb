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


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else ""


def _cost(value: float | None, record: JobRecord, pricing: Pricing) -> str:
    return pricing.for_model(record.model).money(value) if value is not None else ""


def _totals(costs: dict[str, float]) -> str:
    return " + ".join(f"{currency} {amount:.2f}" for currency, amount in costs.items()) or "0.00"


def _status_style(text: str) -> str:
    colour = {"succeeded": "green", "failed": "red", "uncertain": "yellow"}.get(text)
    return typer.style(text, fg=colour) if colour else text


def _outcome(record: JobRecord) -> str:
    """The job's result in one phrase: its video, or why it has none."""
    from vaceflow.cli.layout import shown_path

    if record.output is not None:
        return shown_path(record.output.path) or record.output.s3_uri or ""
    if record.error_code or record.error_message:
        return ": ".join(p for p in (record.error_code, record.error_message) if p)
    return ""


def _below(record: JobRecord) -> str:
    """The line beneath a job: when it was made, and its video (whole) or its error."""
    from vaceflow.cli.layout import Whole

    when = f"{_when(record.created_at)} UTC"
    outcome = _outcome(record)
    if record.output is not None:
        return Whole(f"{when}  {outcome}")
    return f"{when}  {outcome}" if outcome else when


def _jobs_lines(records: list[JobRecord], pricing: Pricing) -> list[str]:
    """One line per job, sized to fit 80 columns; its creation time and video (or error)
    on the line beneath, whole."""
    from vaceflow.cli.layout import Column, table

    columns = [
        Column("job"),
        Column("function"),
        Column("status", style=_status_style),
        Column("at service", right=True),
        Column("video", right=True),
        Column("cost", right=True),
    ]
    rows = [
        [
            r.id,
            r.function,
            r.status.value,
            _duration(r.duration_seconds),
            _seconds(r.video_seconds),
            _cost(r.cost, r, pricing),
        ]
        for r in records
    ]
    below = [[_below(r)] for r in records]
    return table(columns, rows, below=below)


def _job_lines(record: JobRecord, pricing: Pricing) -> list[str]:
    """One job as blocks: the job, its inputs (each with the URL that was sent), its
    history; paths and URLs whole, the prompt wrapped."""
    from vaceflow.cli.layout import fields, shown_path

    out = record.output
    price = pricing.for_model(record.model)
    cost = _cost(record.cost, record, pricing)
    if cost and record.video_seconds:
        cost += f" ({record.video_seconds:g} s of video at {price})"
    probe = (out.probe or {}) if out else {}
    video = ", ".join(
        p
        for p in (
            _seconds(record.video_seconds),
            f"{probe['width']}x{probe['height']}" if probe.get("width") else "",
            f"{probe['fps']:g} fps" if probe.get("fps") else "",
        )
        if p
    )
    lines = [f"{record.id}  {record.function}  {_status_style(record.status.value)}", ""]
    lines += fields(
        [
            ("model", record.model),
            ("prompt", record.prompt),
            ("parameters", ", ".join(f"{k}={_plain(v)}" for k, v in record.parameters.items())),
            ("task", record.task_id or ""),
            ("request id", record.request_id or ""),
            ("attempts", str(record.attempts) if record.attempts else ""),
            ("created", f"{_when(record.created_at)} UTC"),
            ("submitted", f"{_when(record.submitted_at)} UTC" if record.submitted_at else ""),
            ("finished", f"{_when(record.finished_at)} UTC" if record.finished_at else ""),
            ("at service", _duration(record.duration_seconds)),
            ("video", video),
            ("cost", cost),
            ("output", shown_path(out.path) if out else ""),
            ("thumbnail", shown_path(out.thumbnail_path) if out else ""),
            ("published", (out.s3_uri or "") if out else ""),
            ("error", ": ".join(p for p in (record.error_code, record.error_message) if p)),
            ("flow run", record.flow_run_id or ""),
            ("derived from", record.parent_id or ""),
        ]
    )
    sent = record.sent_request().get("input", {})
    if record.inputs:
        lines += ["", "inputs"]
    for role, items in record.inputs.items():
        for i, item in enumerate(items):
            name = role if len(items) == 1 else f"{role}[{i + 1}]"
            report = item.report or {}
            lines.append(f"  {name}  {shown_path(item.source) or item.source}")
            lines += fields(
                [
                    ("sent as", item.staged_url or ""),
                    ("was", _summary(report.get("before"))),
                    ("done", _done(report)),
                    ("sha256", item.sha256 or ""),
                ],
                indent=4,
            )
    if sent and not any(i.staged_url for items in record.inputs.values() for i in items):
        lines.append("  (not sent: the inputs were never staged)")
    if record.history:
        lines += ["", "history (UTC)"]
    task = service = None
    for event in record.history:
        detail = []
        if event.service_status and event.service_status != service:
            detail.append(event.service_status)
        service = event.service_status
        if event.task_id and event.task_id != task:
            detail.append(f"task {event.task_id}")
            task = event.task_id
        if event.note:
            detail.append(_note(event.note))
        head = f"  {_when(event.at)}  {event.status.value:<10}  "
        from vaceflow.cli.layout import wrap

        lines += wrap(", ".join(d for d in detail if d), first=head, indent=" " * len(head))
    return lines


def _plain(value: object) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _note(note: str) -> str:
    """History notes name paths absolutely: show them as the rest of the output does."""
    from vaceflow.cli.layout import shown_path

    head, _, rest = note.partition(" ")
    if head in ("output", "published") and rest.startswith("/"):
        return f"{head} {shown_path(rest)}"
    return note


def _summary(before: object) -> str:
    """A conform report's media summary as the dry run prints it."""
    if not isinstance(before, dict):
        return ""
    from vaceflow.media.report import MediaSummary

    try:
        return str(MediaSummary.model_validate(before))
    except ValueError:
        return ""


def _done(report: dict[str, object]) -> str:
    actions = report.get("actions")
    if not isinstance(actions, list) or not actions:
        return "unchanged" if report else ""
    return "; ".join(
        f"{a.get('what')} ({a.get('why')})" if a.get("why") else str(a.get("what"))
        for a in actions
        if isinstance(a, dict)
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    from vaceflow.cli.layout import command_group

    catalog_app = command_group(
        "The job ledger: what ran, what it cost, where the videos are.",
        "The job ledger: jobs, costs, videos.",
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
        """Jobs, newest first.

        Each with its time at the service, seconds of video and cost.
        """
        from vaceflow.catalog import JobStatus
        from vaceflow.catalog.export import to_json
        from vaceflow.cli.layout import echo

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
        if not records:
            typer.echo("no jobs in the catalog" + (" match" if wanted or function else ""))
            return
        echo(_jobs_lines(records, catalog.pricing))

    @catalog_app.command("show")
    def show(
        job_id: Annotated[str, typer.Argument(help="The job id (vf_...).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON record.")] = False,
    ) -> None:
        """Everything about one job.

        Its inputs (with the URL that was sent) and its history.
        """
        from vaceflow.catalog import JobNotFound
        from vaceflow.cli.layout import echo

        with _open() as catalog:
            try:
                record = catalog.get(job_id, history=True)
            except JobNotFound as error:
                typer.echo(f"error: {error}", err=True)
                raise typer.Exit(1) from None
        if as_json:
            shown = record.model_dump(mode="json") | {"request": record.sent_request()}
            typer.echo(json.dumps(shown, indent=2))
            return
        echo(_job_lines(record, catalog.pricing))

    @catalog_app.command("export")
    def export(
        fmt: Annotated[ExportFormat, typer.Option("--format", help="json or csv.")],
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
        ] = None,
    ) -> None:
        """Every job, as JSON or CSV.

        JSON: full records with their history; CSV: the main columns.
        """
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

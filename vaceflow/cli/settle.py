"""`vaceflow catalog reconcile` and `vaceflow catalog resolve`: settle uncertain submits.

A submit whose answer never came leaves its job `uncertain`. Runs settle such jobs
from the provider's task list by themselves (`vaceflow.reconcile`, unless
VACEFLOW_RECONCILE=off); `reconcile` does the same for every uncertain job on request
(`--dry-run`: only say what it would do), and `resolve` records a person's decision where
the list cannot tell. Both exit 5 while a job they were asked about stays uncertain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from vaceflow.services import Services

__all__ = ["register"]

UNSETTLED = 5
"""The exit code of a job left uncertain, as `vaceflow run` uses it."""


def _services() -> Services:
    from vaceflow.services import Services

    return Services.from_settings()


def register(catalog_app: typer.Typer) -> None:
    """Add this module's commands to `vaceflow catalog`."""

    @catalog_app.command("reconcile")
    def reconcile_jobs(
        job_ids: Annotated[
            list[str] | None, typer.Argument(help="Jobs to settle [every uncertain job].")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Say what would be done; change nothing.")
        ] = False,
    ) -> None:
        """Settle uncertain submits from the task list.

        Reads the provider's task list (free) over each uncertain job's submit window."""
        from vaceflow.errors import ConfigError
        from vaceflow.reconcile import Verdict, reconcile

        with _services() as svc:
            ids = job_ids or [r.id for r in svc.catalog.uncertain()]
            if not ids:
                typer.echo("no uncertain jobs")
                return
            try:
                client = svc.client
            except ConfigError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None
            left = 0
            for job_id in ids:
                found = reconcile(
                    svc.catalog,
                    client,
                    job_id,
                    margin=svc.settings.reconcile_margin,
                    apply=not dry_run,
                )
                outcome = {
                    Verdict.FOUND: "found" if dry_run else "recorded; the next run resumes it",
                    Verdict.NONE: "never accepted"
                    if dry_run
                    else "released; the next run submits it",
                }.get(found.verdict, found.verdict.value.replace("_", " "))
                typer.echo(f"{job_id}: {outcome}: {found.summary}")
                left += found.verdict.needs_a_person or found.verdict is Verdict.EARLY
            if left:
                from vaceflow.cli.hints import command

                typer.echo(
                    f"{left} job(s) still uncertain; settle each with\n"
                    f"  {command('catalog resolve JOB --task-id ID')}  (its task), or\n"
                    f"  {command('catalog resolve JOB --resubmit')}  (pay again)",
                    err=True,
                )
                raise typer.Exit(UNSETTLED)

    @catalog_app.command("resolve")
    def resolve(
        job_id: Annotated[str, typer.Argument(help="The uncertain job (vf_...).")],
        task_id: Annotated[
            str | None,
            typer.Option("--task-id", help="The job's task, found in the provider's list."),
        ] = None,
        resubmit: Annotated[
            bool,
            typer.Option("--resubmit", help="No task was made: let the next run pay again."),
        ] = False,
    ) -> None:
        """Settle an uncertain job by hand.

        Name its task (--task-id), or let the next run submit it again (--resubmit)."""
        from vaceflow.catalog import CatalogConflict, JobNotFound, JobStatus
        from vaceflow.errors import DashScopeError
        from vaceflow.responses import TaskStatus

        if (task_id is None) == (not resubmit):
            raise typer.BadParameter("give --task-id ID or --resubmit (one of them)")
        with _services() as svc:
            try:
                record = svc.catalog.get(job_id)
            except JobNotFound as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None
            if record.status is not JobStatus.UNCERTAIN:
                typer.echo(
                    f"error: job {job_id} is {record.status.value}, not uncertain: "
                    "nothing to resolve",
                    err=True,
                )
                raise typer.Exit(1)
            try:
                if task_id is not None:
                    try:
                        task = svc.client.get(task_id)
                    except DashScopeError as exc:
                        typer.echo(f"error: task {task_id} could not be read: {exc}", err=True)
                        raise typer.Exit(1) from None
                    if task.status is TaskStatus.UNKNOWN:
                        typer.echo(
                            f"error: the service does not know task {task_id} (wrong id, "
                            "another region, or older than 24 h)",
                            err=True,
                        )
                        raise typer.Exit(1)
                    svc.catalog.record_submitted(
                        job_id, task_id, None, note=f"resolved by hand: task {task_id}"
                    )
                    typer.echo(f"{job_id}: task {task_id} recorded; the next run resumes it")
                else:
                    svc.catalog.mark_resubmit(job_id, "resolved by hand: submit again")
                    typer.echo(f"{job_id}: released; the next run submits it (and pays)")
            except CatalogConflict as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None

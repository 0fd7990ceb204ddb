"""Reports over the ledger's rows: lists, what was spent, how long tasks take.

Read-only. Costs are summed per currency: each job is costed in its model's region's
money when it succeeds (`Ledger.record_status`), and a catalog may hold both regions.
The medians feed estimates (`vaceflow.estimate`) and waits (`vaceflow.waiting`).
Files for people (JSON, CSV) are `vaceflow.catalog.export`.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from sqlalchemy import func, select

from vaceflow.catalog.database import CatalogStore
from vaceflow.catalog.records import JobEvent, JobRecord
from vaceflow.catalog.schema import EventRow, JobRow, JobStatus, uncertain_clause
from vaceflow.responses import TaskStatus

__all__ = ["Reports"]


class Reports(CatalogStore):
    """What the catalog says in sum; writes nothing."""

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        function: str | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
        history: bool = False,
    ) -> list[JobRecord]:
        """Jobs, newest first. `status=UNCERTAIN` finds rows left `submitting`;
        `history=True` loads every listed job's events too (one more query)."""
        now = self._clock()
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc())
        if status is JobStatus.UNCERTAIN:
            query = query.where(uncertain_clause(now))
        elif status is JobStatus.SENDING:
            query = query.where(JobRow.status == status.value, ~uncertain_clause(now))
        elif status is not None:
            query = query.where(JobRow.status == status.value)
        if function is not None:
            query = query.where(JobRow.function == function)
        if since is not None:
            query = query.where(JobRow.created_at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self._transaction() as session:
            rows = list(session.scalars(query))
            events: dict[str, list[JobEvent]] = {}
            if history and rows:
                listed = query.with_only_columns(JobRow.id).scalar_subquery()
                for event in session.scalars(
                    select(EventRow).where(EventRow.job_id.in_(listed)).order_by(EventRow.id)
                ):
                    events.setdefault(event.job_id, []).append(JobEvent.from_row(event))
            return [
                JobRecord.from_row(r, now=now, history=tuple(events.get(r.id, ()))) for r in rows
            ]

    def median_durations(self, *, since: datetime | None = None) -> dict[str, float]:
        """Median seconds from task id to final, per function, over succeeded jobs."""
        query = select(JobRow.function, JobRow.submitted_at, JobRow.finished_at).where(
            JobRow.status == JobStatus.SUCCEEDED.value,
            JobRow.submitted_at.is_not(None),
            JobRow.finished_at.is_not(None),
        )
        if since is not None:
            query = query.where(JobRow.created_at >= since)
        spans: dict[str, list[float]] = {}
        with self._transaction() as session:
            for function, start, end in session.execute(query):
                if start is None or end is None:
                    continue
                spans.setdefault(function, []).append((end - start).total_seconds())
        return {function: statistics.median(values) for function, values in spans.items()}

    def total_cost(self, *, since: datetime | None = None, function: str | None = None) -> float:
        """Spent in the active region's currency; `total_costs` has every currency."""
        costs = self.total_costs(since=since, function=function)
        return costs.get(self.pricing.active.currency, 0.0)

    def total_costs(
        self, *, since: datetime | None = None, function: str | None = None
    ) -> dict[str, float]:
        """Spent per currency (each job costs in its model's region's money), optionally
        since a time or for one function."""
        query = (
            select(JobRow.model, func.sum(JobRow.cost))
            .where(JobRow.cost.is_not(None))
            .group_by(JobRow.model)
        )
        if since is not None:
            query = query.where(JobRow.created_at >= since)
        if function is not None:
            query = query.where(JobRow.function == function)
        totals: dict[str, float] = {}
        with self._transaction() as session:
            for model, cost in session.execute(query):
                currency = self.pricing.for_model(model).currency
                totals[currency] = totals.get(currency, 0.0) + float(cost or 0.0)
        return totals

    def median_run_seconds(self, *, recent: int = 200) -> dict[str, float]:
        """Median seconds a task ran (the service's `scheduled_time` to `end_time`), per
        function, over the `recent` latest succeeded tasks: what a wait expects. Unlike
        `median_durations`, no time queued at the service nor our noticing is in it."""
        query = (
            select(JobRow.function, EventRow.scheduled_time, EventRow.end_time)
            .join(JobRow, JobRow.id == EventRow.job_id)
            .where(
                EventRow.service_status == TaskStatus.SUCCEEDED.value,
                EventRow.scheduled_time.is_not(None),
                EventRow.end_time.is_not(None),
            )
            .order_by(EventRow.id.desc())
            .limit(recent)
        )
        spans: dict[str, list[float]] = {}
        with self._transaction() as session:
            for function, start, end in session.execute(query):
                if start is not None and end is not None and end >= start:
                    spans.setdefault(function, []).append((end - start).total_seconds())
        return {function: statistics.median(values) for function, values in spans.items()}

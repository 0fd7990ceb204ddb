"""What a batch will cost and how long it will take, worked out before anything is paid.

Cost: the service bills seconds of generated video. A job with a main video (repaint,
edit, outpaint) makes as long a video as its conformed input, up to
`OUTPUT.max_seconds`; the others make `OUTPUT.fixed_seconds`. Seconds are rounded up
to whole seconds (the bill's `usage.video_duration` is whole seconds), so a budget
check never under-counts. The price is the job's region's (`Settings.pricing`).

Time: each task takes the catalog's median for its function (submit to end, so the
service's queueing is in it), else the provider's figure
(`ACCOUNT.typical_task_seconds`). The account runs `ACCOUNT.concurrent_tasks` at
once and accepts `ACCOUNT.submit_per_second` submissions, so the batch's wall time is
the makespan of that schedule: about ceil(n / concurrency) x the typical task.

A job the catalog already has as succeeded (same identity) costs nothing and takes no
time; neither does a repeat of an earlier job in the same batch (a run follows the
first one's task instead of paying twice).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from vaceflow.errors import BudgetExceeded, ConfigError
from vaceflow.identity import job_identity
from vaceflow.jobs import Function, Job
from vaceflow.limits import ACCOUNT, OUTPUT, Role
from vaceflow.media.prepare import PreparedJob
from vaceflow.settings import Price, Pricing, Settings

if TYPE_CHECKING:
    from vaceflow.catalog import Catalog

__all__ = ["Estimate", "JobEstimate", "check_budget", "estimate", "makespan", "output_seconds"]

SecondsFrom = Literal["fixed", "conformed video", "assumed"]
TaskTimeFrom = Literal["catalog median", "provider figure"]


class JobEstimate(BaseModel):
    """One job: its video seconds, its cost, its task time, and whether it will run."""

    model_config = ConfigDict(frozen=True)

    function: Function
    identity: str | None = None
    """Known for a prepared job (its conformed inputs' hashes); None for a bare job."""
    video_seconds: int
    seconds_from: SecondsFrom
    """fixed: the function always makes 5 s; assumed: no conformed video to measure."""
    task_seconds: float
    task_seconds_from: TaskTimeFrom
    runs: bool = True
    """False when nothing new is paid for (see `skipped`)."""
    skipped: str | None = None
    cost: float
    """0 when the job does not run."""


class Estimate(BaseModel):
    """A batch's estimate; `summary` is the line a person reads, the rest is for --json."""

    model_config = ConfigDict(frozen=True)

    jobs: list[JobEstimate]
    currency: str
    price_per_second: float
    concurrency: int = Field(ge=1)
    video_seconds: int
    cost: float
    wall_seconds: float

    @property
    def running(self) -> list[JobEstimate]:
        return [j for j in self.jobs if j.runs]

    @property
    def price(self) -> Price:
        return Price(amount=self.price_per_second, currency=self.currency)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """The line a person reads: "3 jobs, 15 s of video, about USD 1.50, about 14 min
        at 2 at once"; it leads with the jobs already paid for, when there are any."""
        count = len(self.jobs)
        head = _jobs(count)
        skipped = count - len(self.running)
        if skipped:
            head += f" ({skipped} already paid for)"
        if not self.running:
            return f"{head}: nothing new to pay for"
        return (
            f"{head}, {self.video_seconds} s of video, about {self.price.money(self.cost)}, "
            f"about {_minutes(self.wall_seconds)} at {self.concurrency} at once"
        )


def estimate(
    jobs: Iterable[PreparedJob | Job],
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    concurrency: int | None = None,
) -> Estimate:
    """Estimate `jobs` (prepared ones give the real durations and identities).

    `catalog` supplies the median task times and the jobs already paid for;
    `concurrency` overrides the account's tasks at once. Raises ConfigError when the
    jobs would bill in more than one currency (jobs of two regions in one batch).
    """
    settings = settings or Settings.load()
    slots = ACCOUNT.concurrent_tasks if concurrency is None else concurrency
    if slots < 1:
        raise ConfigError(f"concurrency must be at least 1, not {slots}")
    pricing = settings.pricing
    medians = catalog.median_durations() if catalog is not None else {}
    items = list(jobs)
    prices = {_price_of(_job_of(item), pricing) for item in items} or {pricing.active}
    currencies = {p.currency for p in prices}
    if len(currencies) > 1:
        raise ConfigError(
            f"these jobs bill in {' and '.join(sorted(currencies))}: estimate each "
            "region's jobs apart"
        )
    seen: dict[str, int] = {}
    estimates: list[JobEstimate] = []
    for index, item in enumerate(items):
        job = _job_of(item)
        price = _price_of(job, pricing)
        seconds, seconds_from = output_seconds(item)
        median = medians.get(job.function.value)
        identity = _identity(item)
        skipped = _skipped(identity, catalog, seen, index)
        estimates.append(
            JobEstimate(
                function=job.function,
                identity=identity,
                video_seconds=seconds,
                seconds_from=seconds_from,
                task_seconds=median if median is not None else ACCOUNT.typical_task_seconds,
                task_seconds_from="catalog median" if median is not None else "provider figure",
                runs=skipped is None,
                skipped=skipped,
                cost=price.of(seconds) if skipped is None else 0.0,
            )
        )
    running = [j for j in estimates if j.runs]
    price = next(iter(prices))
    return Estimate(
        jobs=estimates,
        currency=price.currency,
        price_per_second=price.amount,
        concurrency=slots,
        video_seconds=sum(j.video_seconds for j in running),
        cost=sum(j.cost for j in running),
        wall_seconds=makespan(
            [j.task_seconds for j in running],
            concurrency=slots,
            submit_per_second=ACCOUNT.submit_per_second,
        ),
    )


def output_seconds(item: PreparedJob | Job) -> tuple[int, SecondsFrom]:
    """Whole seconds of video the job will make, and where the figure comes from."""
    job = _job_of(item)
    if Role.VIDEO not in job.input.media():
        return math.ceil(OUTPUT.fixed_seconds), "fixed"
    duration = None
    if isinstance(item, PreparedJob):
        duration = next((r.after.duration for r in item.reports if r.role is Role.VIDEO), None)
    if duration is None:
        return math.ceil(OUTPUT.max_seconds), "assumed"
    # Rounded to the millisecond first: a 3.0000001 s probe is a 3 s video.
    return math.ceil(round(min(duration, OUTPUT.max_seconds), 3)), "conformed video"


def makespan(task_seconds: Sequence[float], *, concurrency: int, submit_per_second: float) -> float:
    """Seconds until the last task ends when tasks are submitted in order, each as soon
    as a slot is free and the submit rate allows: ceil(n / concurrency) x d for n
    equal tasks of d seconds, plus the submissions' spacing."""
    free = [0.0] * concurrency
    end = 0.0
    for index, seconds in enumerate(task_seconds):
        start = max(heapq.heappop(free), index / submit_per_second)
        heapq.heappush(free, start + seconds)
        end = max(end, start + seconds)
    return end


def check_budget(estimate: Estimate, budget: float) -> None:
    """Raise BudgetExceeded when the estimate's cost is over `budget` (its currency)."""
    running = len(estimate.running)
    # A thousandth of a cent of slack: 15 s x 0.10 is 1.5000000000000002 in floats.
    if estimate.cost > budget + 1e-5:
        raise BudgetExceeded(
            estimated=estimate.cost,
            budget=budget,
            currency=estimate.currency,
            what=f"{estimate.video_seconds} s of video at {estimate.price}, {_jobs(running)}",
        )


def _job_of(item: PreparedJob | Job) -> Job:
    return item.job if isinstance(item, PreparedJob) else item


def _price_of(job: Job, pricing: Pricing) -> Price:
    """A job that names no model follows the client's region, so the active price."""
    named = job.model if "model" in job.model_fields_set else None
    return pricing.for_model(named)


def _identity(item: PreparedJob | Job) -> str | None:
    if not isinstance(item, PreparedJob):
        return None
    hashes: dict[Role, list[str]] = {}
    for report in item.reports:
        hashes.setdefault(report.role, []).append(report.sha256)
    return job_identity(item.job, hashes)


def _skipped(
    identity: str | None, catalog: Catalog | None, seen: dict[str, int], index: int
) -> str | None:
    """Why the job will not be paid for again, or None when it will."""
    if identity is None:
        return None
    if identity in seen:
        return f"same job as #{seen[identity] + 1} of this batch"
    seen[identity] = index
    if catalog is not None:
        from vaceflow.catalog import JobStatus

        record = catalog.find(identity=identity)
        if record is not None and record.status is JobStatus.SUCCEEDED:
            return f"already succeeded as {record.id}"
    return None


def _jobs(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'}"


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min"

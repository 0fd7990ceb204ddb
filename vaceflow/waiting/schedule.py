"""When to look at a task next: pure arithmetic of (age, run time, expected run time).

Three wishes pull against each other: notice the end of a task within seconds, spend
few status calls (the account has 20 a second for every job and worker), and never
poll more often than the official SDK does. Knowing how long a task of this kind runs
(the catalog's median) and when this one began running (the service says, in
`scheduled_time` or the list's `start_time`) reconciles them: look a few times while
the task is young (inputs the service refuses fail within seconds), then sleep
through most of the run, halving the distance to the expected end, look just after
it and densely around it, and back off if the task overruns. The SDK's pace is a
floor on every delay but that one look: the count of calls never exceeds the SDK's.

Without an expected duration, the pace grows with the task's age, from the SDK's
to the provider's suggested 15 s: no worse than the SDK for a short task, about a
third of its calls for a long one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PollSchedule", "sdk_interval"]


def sdk_interval(elapsed: float) -> float:
    """The official SDK's sleep between polls at `elapsed` seconds into its wait.

    Its `wait()` polls at once, then sleeps 1 s, doubling the sleep every third
    poll, capped at 5 s: polls at 0, 1, 2, 4, 6, 8, 12, 16, 20, 25, 30...
    """
    if elapsed < 2:
        return 1.0
    if elapsed < 8:
        return 2.0
    if elapsed < 20:
        return 4.0
    return 5.0


@dataclass(frozen=True)
class PollSchedule:
    """The delay before the next look at one task.

    A look is one call (a `get`, or its row in one `list` shared by every watched
    task). The delay depends on `age` (seconds since the wait began), `ran` (seconds
    since the service began running the task; None while it is PENDING) and
    `expected` (seconds a task of its kind runs; None when the catalog has not seen one).
    """

    first: float = 1.0
    """The first look at a task just watched (its submit answered PENDING): the SDK's."""
    dense: float = 5.0
    """Around the expected end: the most an end there is noticed late
    (`VACEFLOW_STATUS_INTERVAL`). Past 20 s of waiting it is the SDK's own pace."""
    landing: float = 0.5
    """One look lands this long after the expected end (the service's clock and ours
    may differ a little): a task that took its kind's median time is seen at once."""
    young: float = 4.0
    """While a task has run less than this, look at the SDK's pace: a refused input
    (a URL the service cannot fetch, a frame rate it rejects) fails within seconds."""
    approach: float = 0.5
    """Before the expected end, sleep this share of the time left to it: an end that
    comes d seconds early is noticed within about d seconds."""
    longest: float = 90.0
    """...and never longer than this: a task that fails mid-run is noticed within it."""
    overrun: float = 0.25
    """Past the expected end, sleep this share of the overrun (at least `dense`)..."""
    sparse: float = 15.0
    """...and at most this, the provider's suggested pace; also the slowest pace of a
    task whose duration nobody knows."""

    def next_delay(self, age: float, ran: float | None, expected: float | None) -> float:
        """Seconds to sleep before the next look at the task."""
        floor = sdk_interval(age)
        if ran is not None and ran < self.young:
            return floor
        if expected is None or expected <= 0:
            pace = self.approach * (ran if ran is not None else age)
            return max(floor, min(self.sparse, max(self.dense, pace)))
        if ran is None:  # PENDING: it cannot end before it has run about `expected`
            return max(floor, min(self.longest, self.approach * expected))
        left = expected - ran
        if 0 < left <= self.dense:  # land just after the expected end: a typical task's
            return left + self.landing  # end is seen at once (one look, not the SDK's pace)
        if left > 0:
            delay = min(self.longest, max(self.dense, self.approach * left))
        else:
            delay = min(self.sparse, max(self.dense, self.overrun * -left))
        return max(floor, delay)

    def looks(self, ends: float, expected: float | None, *, starts: float = 0.0) -> list[float]:
        """The times (seconds into the wait) of every look at a task that starts running
        at `starts` and ends at `ends`, up to the one that sees it ended (for tests and
        benchmarks: the schedule's own count of calls and lag)."""
        times = [self.first]
        while times[-1] < ends:
            now = times[-1]
            ran = now - starts if now >= starts else None
            times.append(now + self.next_delay(now, ran, expected))
        return times

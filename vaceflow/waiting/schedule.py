"""When to ask about a task next: pure arithmetic of (elapsed, polls, expected).

Three wishes pull against each other: notice the end of a task within seconds, spend
few status queries (the account has 20 a second for every job and worker), and never
poll more often than the official SDK does. Knowing roughly how long a task takes
reconciles them: poll a few times quickly at first (bad inputs fail within seconds),
then sparsely, then densely around the expected end, then back off if it overruns.
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
    """The delay before the next status query of one task.

    `expected` is the typical run time of this kind of task (the catalog's median
    when known); `started` is when the task began running, as seconds into the wait
    (a task still PENDING has not started: its clock has not begun).
    """

    ramp_polls: int = 3
    """Polls at the SDK's own pace first: inputs the service refuses fail fast."""
    sparse: float = 15.0
    """Far from the expected end: the provider suggests about 15 s."""
    dense: float = 2.0
    """Around the expected end: bounds the lag between the task's end and our noticing.
    Never below the SDK's own interval, so past 20 s it is the SDK's 5 s."""
    window: float = 0.15
    """Dense for this share of `expected` either side of it..."""
    min_window: float = 10.0
    """...and at least this many seconds."""
    overrun_growth: float = 0.25
    """Past the window the delay grows by this share of the overrun, up to `sparse`."""
    default_expected: float = 300.0
    """Without a better figure: the provider's "a few minutes" per task."""

    def next_delay(
        self, elapsed: float, polls: int, expected: float | None = None, started: float = 0.0
    ) -> float:
        """Seconds to sleep before the next poll, `elapsed` seconds and `polls` polls in."""
        floor = sdk_interval(elapsed)
        if polls < self.ramp_polls:
            return floor
        exp = expected if expected and expected > 0 else self.default_expected
        ran = max(0.0, elapsed - started)
        half = max(self.min_window, self.window * exp)
        dense_from, dense_until = exp - half, exp + half
        if ran < dense_from:
            delay = min(self.sparse, dense_from - ran)
        elif ran <= dense_until:
            delay = self.dense
        else:
            delay = min(self.sparse, self.dense + self.overrun_growth * (ran - dense_until))
        return max(floor, delay)

    def polls_until(self, seconds: float, expected: float | None = None) -> list[float]:
        """The poll times this schedule makes over `seconds` (for tests and benchmarks)."""
        times: list[float] = []
        now = 0.0
        while True:
            now += self.next_delay(now, len(times), expected)
            if now > seconds:
                return times
            times.append(now)

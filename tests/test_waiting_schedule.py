"""The poll schedule and the rate budget: pure arithmetic, checked against the SDK's pace."""

from __future__ import annotations

import itertools
import threading

import pytest

from vaceflow.limits import AccountLimits
from vaceflow.ratebudget import LocalRateBudget, TokenBucket
from vaceflow.waiting import PollSchedule, sdk_interval

EXPECTED = [5.0, 20.0, 60.0, 300.0, 600.0, None]


def sdk_polls(seconds: float) -> list[float]:
    """When dashscope 2.0.2's `wait()` polls: at once, then 1 s doubling every third, max 5."""
    times, now, wait, step = [], 0.0, 1.0, 0
    while now <= seconds:
        step += 1
        if wait < 5 and step % 3 == 0:
            wait = min(wait * 2, 5)
        times.append(now)
        now += wait
    return times


def test_sdk_interval_matches_the_sdk_loop() -> None:
    polls = sdk_polls(60)
    assert polls[:10] == [0, 1, 2, 4, 6, 8, 12, 16, 20, 25]
    for a, b in itertools.pairwise(polls):
        assert b - a == sdk_interval(a)


@pytest.mark.parametrize("expected", EXPECTED)
def test_never_polls_more_often_than_the_sdk(expected: float | None) -> None:
    horizon = 2.5 * (expected or 300)
    ours = PollSchedule().polls_until(horizon, expected)
    for a, b in itertools.pairwise([0.0, *ours]):
        assert b - a >= sdk_interval(a) - 1e-9
    sdk = sdk_polls(horizon)
    for t in range(int(horizon) + 1):
        assert sum(p <= t for p in ours) <= sum(p <= t for p in sdk)


def test_first_polls_are_quick_to_catch_early_failures() -> None:
    assert PollSchedule().polls_until(4.5, 300)[:3] == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("expected", [60.0, 300.0, 600.0])
def test_long_jobs_take_far_fewer_polls(expected: float) -> None:
    ours = len(PollSchedule().polls_until(expected, expected))
    assert ours <= 0.6 * len(sdk_polls(expected))
    far = [t for t in PollSchedule().polls_until(0.7 * expected, expected) if t > 10]
    gaps = [b - a for a, b in itertools.pairwise(far)]
    assert gaps
    assert min(gaps) >= 14.9  # the provider's ~15 s, away from the end


@pytest.mark.parametrize("expected", [20.0, 60.0, 300.0, 600.0])
def test_an_end_near_the_expected_time_is_noticed_within_seconds(expected: float) -> None:
    polls = PollSchedule().polls_until(3 * expected, expected)
    for end in [expected * f for f in (0.9, 0.95, 1.0, 1.05, 1.1)]:
        noticed = next(t for t in polls if t >= end)
        assert noticed - end <= 5.0


def test_an_overrun_backs_off_to_the_sparse_pace() -> None:
    s = PollSchedule()
    delays = [s.next_delay(t, 50, 60) for t in (80.0, 100.0, 200.0, 1000.0)]
    assert delays == sorted(delays)
    assert delays[-1] == s.sparse


def test_a_pending_task_has_not_started_its_clock() -> None:
    s = PollSchedule()
    # 290 s into the wait of a 300 s job, but it only started running now: sparse.
    assert s.next_delay(290, 20, 300, started=290) == s.sparse
    assert s.next_delay(290, 20, 300, started=0) == sdk_interval(290)  # dense: the SDK's pace


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("limit", [2.0, 5.0, 20.0])
def test_budget_never_exceeds_the_limit_in_any_second(limit: float) -> None:
    t = FakeTime()
    limits = AccountLimits(query_per_second=limit)
    budget = LocalRateBudget(limits, clock=t.clock, sleep=t.sleep)
    stamps = []
    for _ in range(200):
        budget.acquire("query")
        stamps.append(t.now)
    for i, start in enumerate(stamps):
        in_window = sum(1 for s in stamps[i:] if s < start + 1.0)
        assert in_window <= limit
    assert budget.rate("query") < limit
    assert 200 / stamps[-1] >= 0.5 * limit  # it does not starve either


def test_budget_kinds_are_separate() -> None:
    t = FakeTime()
    budget = LocalRateBudget(clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        budget.acquire("query")
    budget.acquire("submit")
    budget.acquire("list")
    assert t.now == 0.0


def test_bucket_reservations_from_many_threads_are_all_distinct() -> None:
    bucket = TokenBucket(rate=10.0, burst=1.0, clock=lambda: 0.0)
    delays: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            d = bucket.reserve()
            with lock:
                delays.append(d)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(round(d, 6) for d in delays) == [round(i / 10, 6) for i in range(200)]

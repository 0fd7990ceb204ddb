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


def lag(schedule: PollSchedule, ends: float, expected: float | None) -> float:
    """Seconds from the end of a task (running from 0.2 s) to the look that sees it."""
    return schedule.looks(ends, expected, starts=0.2)[-1] - ends


@pytest.mark.parametrize("expected", EXPECTED)
@pytest.mark.parametrize("share", [0.5, 0.9, 1.0, 1.1, 2.0])
def test_never_looks_more_often_than_the_sdk(expected: float | None, share: float) -> None:
    ends = share * (expected or 300)
    ours = PollSchedule().looks(ends, expected, starts=0.2)
    sdk = sdk_polls(ours[-1])
    for t in range(int(ours[-1]) + 1):
        assert sum(p <= t for p in ours) <= sum(p <= t for p in sdk)


def test_first_looks_are_quick_to_catch_early_failures() -> None:
    assert PollSchedule().looks(4.5, 300, starts=0.2)[:3] == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(("expected", "most"), [(300.0, 15), (600.0, 20)])
def test_a_task_ending_when_expected_costs_few_looks_and_is_noticed_within_5_s(
    expected: float, most: int
) -> None:
    """The issue's targets: 300 s in at most 15 calls, 600 s in at most 20, lag <= 5 s."""
    schedule = PollSchedule()
    for ends in (expected - 3, expected, expected + 0.2, expected + 3):
        looks = schedule.looks(ends, expected, starts=0.2)
        assert len(looks) <= most, (ends, looks)
        assert looks[-1] - ends <= schedule.dense
        assert len(looks) <= len(sdk_polls(ends)) / 4


@pytest.mark.parametrize("expected", [20.0, 300.0, 600.0])
def test_a_task_that_takes_its_kinds_median_is_seen_at_once(expected: float) -> None:
    schedule = PollSchedule()
    looks = schedule.looks(expected + 0.2, expected, starts=0.2)
    assert 0 <= looks[-1] - (expected + 0.2) <= schedule.landing + 1e-9


def test_it_sleeps_through_most_of_the_run() -> None:
    looks = PollSchedule().looks(300, 300, starts=0.2)
    middle = [t for t in looks if 10 < t < 270]
    assert len(middle) <= 4
    assert max(b - a for a, b in itertools.pairwise(looks)) == PollSchedule().longest


@pytest.mark.parametrize("early", [10.0, 30.0, 60.0])
def test_an_early_end_is_noticed_within_about_its_earliness(early: float) -> None:
    assert lag(PollSchedule(), 300 - early, 300) <= max(PollSchedule().dense, early)


@pytest.mark.parametrize("ends", [3.0, 10.0, 30.0, 120.0, 600.0])
def test_without_an_expected_time_the_pace_grows_to_the_sparse_one(ends: float) -> None:
    schedule = PollSchedule()
    looks = schedule.looks(ends, None, starts=0.2)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(looks)]
    assert max(gaps) <= schedule.sparse
    assert gaps == sorted(gaps)  # never faster again
    assert looks[-1] - ends <= max(schedule.dense, 0.5 * ends)
    assert len(looks) <= len(sdk_polls(ends)) / (2 if ends >= 120 else 1)


def test_an_overrun_backs_off_to_the_sparse_pace() -> None:
    s = PollSchedule()
    delays = [s.next_delay(t + 100, t, 60) for t in (70.0, 100.0, 200.0, 1000.0)]
    assert delays == sorted(delays)
    assert delays[0] == s.dense
    assert delays[-1] == s.sparse


def test_a_pending_task_has_not_started_its_clock() -> None:
    s = PollSchedule()
    # 290 s into the wait of a 300 s job that is still queued: it cannot end for minutes.
    assert s.next_delay(290, None, 300) == s.longest
    assert s.next_delay(290, 292, 300) == s.dense  # running for 292 s: near its end
    assert s.next_delay(290, 1, 300) == sdk_interval(290)  # just started: the SDK's pace


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

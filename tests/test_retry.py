"""The retry policy: the backoff schedule and which failures may be sent again."""

from __future__ import annotations

import random

import pytest

from vaceflow.errors import DashScopeError, DashScopeTransportError
from vaceflow.retry import Call, RetryPolicy, may_repeat


def test_full_jitter_stays_under_the_exponential_ceiling_and_the_cap() -> None:
    policy = RetryPolicy(attempts=10, base=0.5, cap=3.0, rng=random.Random(7))
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter: spread over the whole range, not bunched at the top.
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9


def test_a_seeded_rng_gives_the_same_schedule() -> None:
    first = RetryPolicy(rng=random.Random(42))
    second = RetryPolicy(rng=random.Random(42))
    assert [first.delay(n) for n in range(1, 6)] == [second.delay(n) for n in range(1, 6)]


def test_without_jitter_the_delay_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base=1.0, cap=5.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_wins_over_backoff_but_not_over_the_cap() -> None:
    policy = RetryPolicy(base=0.5, cap=20.0, rng=random.Random(1))
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=0.0) == 0.0
    assert policy.delay(1, retry_after=600.0) == 20.0


def test_attempts_count_the_first_try() -> None:
    policy = RetryPolicy(attempts=3)
    busy = DashScopeError("busy", status=503)
    assert policy.should_retry(Call.READ, busy, attempt=1)
    assert policy.should_retry(Call.READ, busy, attempt=2)
    assert not policy.should_retry(Call.READ, busy, attempt=3)
    assert not RetryPolicy.never().should_retry(Call.READ, busy, attempt=1)


@pytest.mark.parametrize("attempts", [0, -1])
def test_a_policy_without_a_first_try_is_refused(attempts: int) -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=attempts)


def _http(status: int, code: str | None = None) -> DashScopeError:
    return DashScopeError("x", status=status, code=code)


REFUSED = DashScopeTransportError("refused", sent=False)
TIMED_OUT = DashScopeTransportError("timeout", sent=True)

# (error, read, submit, cancel): the contract's retry column, made safe for the paid submit.
TABLE = [
    (_http(429, "Throttling.RateQuota"), True, True, False),
    (_http(429, "Throttling.AllocationQuota"), True, True, False),
    (_http(429), True, True, False),
    (_http(408, "RequestTimeOut"), True, False, False),
    (_http(500, "InternalError"), True, False, True),
    (_http(500, "InternalError.Algo"), True, False, True),
    (_http(502), True, False, True),
    (_http(503), True, False, True),
    (_http(504), True, False, True),
    (_http(400, "InvalidParameter"), False, False, False),
    (_http(400, "UnsupportedOperation"), False, False, False),
    (_http(401, "InvalidApiKey"), False, False, False),
    (_http(403, "AccessDenied"), False, False, False),
    (_http(404), False, False, False),
    (REFUSED, True, True, True),
    (TIMED_OUT, True, False, True),
]


@pytest.mark.parametrize(("error", "read", "submit", "cancel"), TABLE, ids=repr)
def test_which_failures_may_be_sent_again(
    error: DashScopeError, read: bool, submit: bool, cancel: bool
) -> None:
    assert may_repeat(Call.READ, error) is read
    assert may_repeat(Call.SUBMIT, error) is submit
    assert may_repeat(Call.CANCEL, error) is cancel

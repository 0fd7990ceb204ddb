"""One budget for every call an account makes, so many jobs polling at once never draw a 429.

The account's limits (`limits.ACCOUNT`) are shared by every key, worker and job: a
status query of one job spends the same budget as a query of any other. The DashScope
client spends it (`vaceflow.client`): every request it sends, a retry included, first
waits in `budget.acquire(kind)` for a slot, so no caller can forget to.

`LocalRateBudget` is a token bucket per kind for one process. Several processes share
one account through another implementation of the one-method `RateBudget` protocol,
over Prefect global concurrency limits (one per kind, with slot decay set to the rate),
in the layer that may import Prefect (`tasks.runtime.PrefectRateBudget`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol

from vaceflow.limits import ACCOUNT, AccountLimits

__all__ = ["CallKind", "LocalRateBudget", "RateBudget", "TokenBucket"]

CallKind = Literal["query", "list", "cancel", "submit"]


class RateBudget(Protocol):
    """Blocks until one call of `kind` may be sent; safe to call from any thread."""

    def acquire(self, kind: CallKind) -> None: ...


class TokenBucket:
    """`rate` calls a second with at most `burst` at once; a reservation model.

    A caller reserves the next slot under the lock and sleeps outside it, so waiters
    are served in arrival order and never busy-wait.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("TokenBucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = burst
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one slot; returns the seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)


class LocalRateBudget:
    """Token buckets at `margin` of the account's limits, for the calls of one process.

    Burst and rate are chosen so that no window of one second ever holds more calls
    than the limit (burst + rate <= limit), whether the service counts with a bucket
    or a sliding window.
    """

    def __init__(
        self,
        limits: AccountLimits = ACCOUNT,
        *,
        margin: float = 0.85,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < margin <= 1:
            raise ValueError("margin is a share of the account limit, in (0, 1]")
        per_second: dict[CallKind, float] = {
            "query": limits.query_per_second,
            "list": limits.list_per_second,
            "cancel": limits.cancel_per_second,
            "submit": limits.submit_per_second,
        }
        self._buckets = {
            kind: _bucket_under(limit, margin, clock, sleep) for kind, limit in per_second.items()
        }

    def acquire(self, kind: CallKind) -> None:
        self._buckets[kind].acquire()

    def rate(self, kind: CallKind) -> float:
        """Calls a second this budget allows for `kind` (sustained)."""
        return self._buckets[kind].rate


def _bucket_under(
    limit: float,
    margin: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> TokenBucket:
    burst = max(1.0, limit * (1 - margin))
    rate = min(limit * margin, limit - burst) if limit > burst else limit * margin
    return TokenBucket(rate, burst, clock=clock, sleep=sleep)

"""Per-second rate limits per endpoint class, as the account enforces them."""

from __future__ import annotations

import time
from collections import Counter
from enum import StrEnum

__all__ = ["Endpoint", "Throttle", "TokenBucket"]


class Endpoint(StrEnum):
    """The classes of call the account limits separately."""

    SUBMIT = "submit"
    QUERY = "query"
    LIST = "list"
    CANCEL = "cancel"
    UPLOAD = "upload"


class TokenBucket:
    """`rate` calls a second, bursts up to `rate` (at least 1); rate 0 means unlimited."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Throttle:
    """One bucket per endpoint class; counts the 429s it answered."""

    def __init__(self, rates: dict[Endpoint, float]) -> None:
        self._buckets = {endpoint: TokenBucket(rate) for endpoint, rate in rates.items()}
        self.refused: Counter[str] = Counter()

    def allow(self, endpoint: Endpoint) -> bool:
        bucket = self._buckets.get(endpoint)
        if bucket is None or bucket.take():
            return True
        self.refused[endpoint.value] += 1
        return False

"""When a failed DashScope call may be sent again, and how long to wait first.

Pure: no I/O and no clock; the client asks `RetryPolicy` for a decision and a delay.
The asymmetry that matters is the paid submit: it is repeated only when the service
certainly did not accept it (HTTP 429, or a connection that was never opened),
because a timeout, a reset or a 5xx may hide an accepted, billed task.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from vaceflow.errors import DashScopeError, DashScopeTransportError

__all__ = ["Call", "RetryPolicy", "may_repeat"]


class Call(StrEnum):
    """What kind of call failed: decides which failures are safe to repeat."""

    READ = "read"
    """get, list, upload policy: repeating changes nothing."""
    SUBMIT = "submit"
    """Creates a billed task: repeated only when it certainly was not accepted."""
    CANCEL = "cancel"
    """Like a read, but a 4xx answer is final (a repeat cannot make it succeed)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring the service's `Retry-After`.

    `attempts` counts the first try; the n-th retry waits a random time in
    [0, min(cap, base * 2**(n-1))] (full jitter spreads workers sharing one account's
    rate limit), or `Retry-After` when the service sent one, never more than `cap`.
    """

    attempts: int = 4
    base: float = 0.5
    cap: float = 20.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts counts the first try: at least 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("RetryPolicy.base and cap are seconds: not negative")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One try, no retry: every failure raises at once."""
        return cls(attempts=1)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        if retry_after is not None and retry_after >= 0:
            return min(self.cap, retry_after)
        ceiling = min(self.cap, self.base * 2 ** (retry - 1))
        return self.rng.uniform(0, ceiling) if self.jitter else ceiling

    def should_retry(self, call: Call, error: DashScopeError, attempt: int) -> bool:
        """Whether to send again after `attempt` tries ended in `error`."""
        return attempt < self.attempts and may_repeat(call, error)


def may_repeat(call: Call, error: DashScopeError) -> bool:
    """Whether sending the same request again is both useful and safe."""
    if isinstance(error, DashScopeTransportError):
        return not (call is Call.SUBMIT and error.sent)
    if call is Call.SUBMIT:
        return error.status == 429
    if call is Call.CANCEL and error.status is not None and 400 <= error.status < 500:
        return False
    return error.retryable

"""Jobs submitted and not yet ended: at most the account's bound, a flow's own within it.

A job holds one slot from its submit to its task's end (`vaceflow.steps`). `Slots` is
the one-method protocol; `LocalSlots` is a semaphore of this process that, once taken,
takes a slot of the `outer` slots it sits in: a batch's own bound inside the account's,
the account's inside the Prefect global limit every worker shares (the Prefect layer's
`tasks.runtime.ServerSlots`). The narrow one is taken first on purpose: a Prefect server
answers each refused request with a Retry-After that grows with the refusals (up to
30 s), so a batch's threads asking the server all at once would leave freed slots idle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

__all__ = ["LocalSlots", "Slots"]


class Slots(Protocol):
    """`with slots.slot():` holds one slot; blocks until one is free."""

    def slot(self) -> AbstractContextManager[None]: ...


class LocalSlots:
    """At most `bound` holders at once in this process, each also holding a slot of `outer`."""

    def __init__(self, bound: int, outer: Slots | None = None) -> None:
        if bound < 1:
            raise ValueError(f"a bound of jobs in flight is at least 1, not {bound}")
        self.bound = bound
        self._outer = outer
        self._free = threading.BoundedSemaphore(bound)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._free:
            if self._outer is None:
                yield
                return
            with self._outer.slot():
                yield

    def narrowed(self, bound: int) -> LocalSlots:
        """Slots of their own (a batch's `max_in_flight`), each inside one of these."""
        return LocalSlots(bound, outer=self)

"""Seeded fault injection: which call or task fails, and how.

One `random.Random(seed)` decides everything, so a run with the same seed and the
same sequence of calls fails the same way; every decision is also counted so tests
can tell what happened.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from collections.abc import Iterable

from vaceflow.emulator.config import EmulatorConfig, FaultKind, SubmitFault

__all__ = ["CALL_FAULTS", "Faults"]

CALL_FAULTS: tuple[FaultKind, ...] = (
    FaultKind.ERROR_500,
    FaultKind.ERROR_503,
    FaultKind.DROP,
    FaultKind.SLOW,
)
"""Kinds that hit an API call (the rest hit tasks)."""


class Faults:
    def __init__(self, config: EmulatorConfig) -> None:
        self._rate = config.fault_rate
        self._call_kinds = [kind for kind in CALL_FAULTS if kind in config.faults]
        self._task_failures = FaultKind.TASK_FAILURE in config.faults
        self._drop_creates = config.drop_creates_task
        self._random = random.Random(config.seed)
        self._armed: deque[SubmitFault] = deque(config.submit_faults)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def arm(self, faults: Iterable[SubmitFault]) -> list[str]:
        """Queue faults for the next submits (one each, in order); returns the queue."""
        with self._lock:
            self._armed.extend(faults)
            return [f.value for f in self._armed]

    def for_submit(self) -> SubmitFault | None:
        """The armed fault for this submit, if any (consumed)."""
        with self._lock:
            if not self._armed:
                return None
            fault = self._armed.popleft()
        self.injected[f"submit_{fault.value}"] += 1
        return fault

    def for_call(self) -> FaultKind | None:
        """The fault to inflict on this API call, if any."""
        if not self._call_kinds or self._random.random() >= self._rate:
            return None
        kind = self._random.choice(self._call_kinds)
        self.injected[kind.value] += 1
        return kind

    def task_fails(self) -> bool:
        """Whether the task now starting will end FAILED InternalError.Algo."""
        if not self._task_failures or self._random.random() >= self._rate:
            return False
        self.injected[FaultKind.TASK_FAILURE.value] += 1
        return True

    def dropped_submit_creates_task(self) -> bool:
        """For a submit whose answer is dropped: did the service accept it anyway?"""
        created = self._random.random() < self._drop_creates
        self.injected["drop_submit_created" if created else "drop_submit_lost"] += 1
        return created

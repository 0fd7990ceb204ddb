"""The emulator's wall clock, which tests may move forward to reach a 24 h expiry."""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """`time.time()` plus an offset that only grows (`POST /_emulator/clock`)."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        return self.now()

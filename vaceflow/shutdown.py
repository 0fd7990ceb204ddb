"""Stopping without leaving a submit half-done: SIGTERM and SIGINT wait for a request on
the wire.

A container stopped, a pod evicted or a Prefect cancellation sends SIGTERM; Ctrl-C sends
SIGINT. Landing while a submit request is on the wire, either would leave the job
`sending` with no task id (the service may have made the task; we would not know its
id). So while any thread is inside `sending()`, the signal is held back: the request
finishes and its task id is written, then the signal takes its usual course (Prefect's
handler, KeyboardInterrupt; a SIGTERM that has no handler, as in a run before Prefect
is imported, exits through SystemExit(143), so the run unwinds as Prefect's would).
The wait is bounded (`GRACE_SECONDS`), and a second signal does not wait. A stop that
lands before the request left is honoured at once, and `sending()` refuses to begin
afterwards (`Stopping`): the submit is abandoned cleanly, nothing sent.

Signals belong to the process, and Python runs their handlers in the main thread only,
which is also the only thread that may install one: `install()` is called where a run
starts in the main thread (Prefect installs its own SIGTERM handler at each flow start,
so it is called inside the flow) and chains whatever handler it finds.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from vaceflow.errors import VaceflowError

__all__ = ["GRACE_SECONDS", "Stopping", "install", "sending", "stopping"]

log = logging.getLogger("vaceflow.shutdown")

GRACE_SECONDS = 30.0
"""The longest a stop waits for a submit on the wire (the submit's own timeouts are
about as long; a process supervisor usually waits this long before SIGKILL too)."""
_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any] | int | None


class Stopping(VaceflowError):
    """A stop (SIGTERM, SIGINT) was asked before the submit request left: nothing was sent."""


class _Guard:
    """The process's one view of stop signals and of the submits on the wire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._on_wire = 0
        self._pending: int | None = None
        self._passing = False
        self.stopping = False
        self.previous: dict[int, Handler] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            current = signal.getsignal(sig)
            if current == self.handle:
                continue
            self.previous[sig] = current
            signal.signal(sig, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            self.stopping = True
            hold = not self._passing and self._on_wire > 0 and self._pending is None
            if hold:
                self._pending = signum
        if not hold:
            self._pass_on(signum, frame)
            return
        log.warning(
            "%s: finishing the submit on the wire and recording its task first (at most "
            "%g s); send it again to stop at once",
            signal.Signals(signum).name,
            GRACE_SECONDS,
        )
        timer = threading.Timer(GRACE_SECONDS, self.release)
        timer.daemon = True
        timer.start()

    def _pass_on(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGTERM and previous == signal.SIG_DFL:
            raise SystemExit(128 + signum)  # unwinds: a submit not sent is given back
        elif previous != signal.SIG_IGN:  # the default action, from the main thread
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def release(self) -> None:
        """Let a held signal take its course (it runs in the main thread)."""
        with self._lock:
            signum, self._pending = self._pending, None
            if signum is None:
                return
            self._passing = True
        os.kill(os.getpid(), signum)

    @contextmanager
    def sending(self) -> Iterator[None]:
        with self._lock:
            if self.stopping:
                raise Stopping("a stop was asked (SIGTERM or SIGINT); the submit was not sent")
            self._on_wire += 1
        try:
            yield
        finally:
            with self._lock:
                self._on_wire -= 1
                due = self._on_wire == 0 and self._pending is not None
            if due:
                self.release()


_guard = _Guard()
"""Signals are the process's: one guard per process, like the handlers themselves."""


def install() -> None:
    """Hold SIGTERM and SIGINT while a submit is on the wire (main thread only; a no-op
    elsewhere, and when installed already)."""
    _guard.install()


def sending() -> Any:
    """`with sending():` around a submit request and the write of its task id. Raises
    `Stopping` when a stop was asked already."""
    return _guard.sending()


def stopping() -> bool:
    """Whether this process was asked to stop."""
    return _guard.stopping

"""Named places where a test stops this process: `VACEFLOW_FAILPOINT=submit.before_send`.

When vaceflow is tried, faults come from outside: a worker killed at any moment. The
tests that prove a kill at each step of a submit costs nothing must land it at exactly
that step, every run, which a kill timed from outside cannot. `NAME` sends SIGKILL there
(to the process group, when this process leads one: a `vaceflow run` and the servers it
started); `NAME:SIGTERM` or `NAME:SIGINT` sends this process that signal instead, as a
container stop or a Ctrl-C would. Unset, a failpoint costs one environment lookup. The
names are listed where they are used (`vaceflow.pipeline.submit_job`).
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "failpoint"]

ENV = "VACEFLOW_FAILPOINT"


def failpoint(name: str) -> None:
    """Stop here if `VACEFLOW_FAILPOINT` names this place (module docstring)."""
    wanted, _, how = os.environ.get(ENV, "").partition(":")
    if wanted != name:
        return
    if how:
        os.kill(os.getpid(), signal.Signals[how])
        return
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)

"""Background processes that outlive the command that started them, found again by pid.

Each runs in its own session (so `down` can signal its whole group) with output to a
log file. A pid alone is not proof: pids are reused, so a process is believed, or
signalled, only if psutil finds it alive (not a zombie) with a marker in its command line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

from vaceflow.errors import StackError

__all__ = ["free_ports", "http", "is_running", "log_tail", "spawn", "stop", "wait_until"]


@functools.cache
def http() -> httpx.Client:
    """One client for the stack's health checks and set-up calls: `httpx.get` makes a
    client, and so loads the CA bundle, per call, which a start-up's polling repeats
    dozens of times a second."""
    return httpx.Client(timeout=10.0)


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (held together, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def spawn(cmd: Sequence[str], *, log: Path, env: Mapping[str, str], cwd: Path, **popen: Any) -> int:
    """Start `cmd` detached (new session, stdin closed, output appended to `log`); `popen`
    adds Popen's `user`/`group` for a server that refuses to run as root."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            **popen,
        )
    return int(proc.pid)


def _ours(pid: int | None, marker: str) -> psutil.Process | None:
    """The live process `pid` if its command line holds `marker`, else None.
    A zombie counts as gone (and is reaped when it is our own child)."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            proc.wait(0)  # reaps our child; raises TimeoutExpired for another's
            return None
        return proc if marker in " ".join(proc.cmdline()) else None
    except psutil.Error:
        return None


def is_running(pid: int | None, marker: str) -> bool:
    """Whether `pid` is alive and its command line contains `marker`."""
    return _ours(pid, marker) is not None


def stop(
    pid: int | None,
    marker: str,
    *,
    timeout: float = 15.0,
    first: signal.Signals = signal.SIGTERM,
) -> bool:
    """Signal the process group (`first`, SIGKILL after `timeout`); False if it was not
    running. PostgreSQL wants SIGINT (fast shutdown): SIGTERM waits for its clients.
    Polled, not `psutil.Process.wait`: that waits out a zombie whose parent is another
    live process (a worker a test's `up` revived), where a zombie here counts as gone."""
    proc = _ours(pid, marker)
    if proc is None:
        return False
    for sig in (first, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        while _ours(pid, marker) is not None:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        else:
            return True
    return False


def wait_until(
    ready: Callable[[], bool], *, timeout: float, alive: Callable[[], bool], what: str
) -> None:
    """Poll `ready` until it holds; raise StackError at the deadline or if `alive` fails."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if not alive():
            raise StackError(f"{what} exited while starting")
        if time.monotonic() >= deadline:
            raise StackError(f"{what} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log, for an error message."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])

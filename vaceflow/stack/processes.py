"""Background processes that outlive the command that started them, found again by pid.

Each runs in its own session (so `down` can signal its whole group) with output to a
log file. A pid alone is not proof: pids are reused, so the command line is checked
for a marker before a process is believed, or signalled.
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

import httpx

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


def spawn(
    cmd: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    user: tuple[int, int] | None = None,
) -> int:
    """Start `cmd` detached (new session, stdin closed, output appended to `log`),
    as `user` (uid, gid) when given: a server that refuses to run as root."""
    log.parent.mkdir(parents=True, exist_ok=True)
    uid, gid = user if user is not None else (None, None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=None if user is None else [],
        )
    return int(proc.pid)


def _reap(pid: int) -> None:
    """Collect `pid` if it is our own exited child (else it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_running(pid: int | None, marker: str) -> bool:
    """Whether `pid` is alive and its command line contains `marker`."""
    if not pid:
        return False
    _reap(pid)
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            raw = (proc / "cmdline").read_bytes()
            cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X") and marker in cmdline
    try:  # no /proc (macOS): trust the pid
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(
    pid: int | None,
    marker: str,
    *,
    timeout: float = 15.0,
    first: signal.Signals = signal.SIGTERM,
) -> bool:
    """Signal the process group (`first`, SIGKILL after `timeout`); False if it was not
    running. PostgreSQL wants SIGINT (fast shutdown): SIGTERM waits for its clients."""
    if pid is None or not is_running(pid, marker):
        return False
    for sig in (first, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_running(pid, marker):
                return True
            time.sleep(0.1)
    return not is_running(pid, marker)


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

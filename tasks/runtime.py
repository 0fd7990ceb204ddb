"""What every task of one process shares: the core `Services`, the rate budget and the
slots that bound jobs in flight at the service.

With a Prefect server configured (PREFECT_API_URL), the budget and the slots are Prefect
global concurrency limits, so every worker of a team shares one account's limits;
without one (the embedded laptop run), they are in-process (a token bucket, a semaphore).
Nothing here is a scheduler or a lock service of our own.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx
from prefect.concurrency.sync import concurrency
from prefect.logging import get_logger

from vaceflow.limits import ACCOUNT
from vaceflow.ratebudget import CallKind, LocalRateBudget, RateBudget
from vaceflow.responses import TaskStatus
from vaceflow.services import Services
from vaceflow.settings import Settings

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

__all__ = [
    "RUNNING_LIMIT",
    "PrefectRateBudget",
    "ProgressListener",
    "ensure_limits",
    "in_flight_slot",
    "progress_listener",
    "server_configured",
    "services",
    "set_progress_listener",
]

log = get_logger("vaceflow.tasks")

RUNNING_LIMIT = "vaceflow-dashscope-in-flight"
"""Global concurrency limit: jobs submitted and not yet ended, across every worker."""
RATE_LIMITS: dict[CallKind, tuple[int, float]] = {
    # name suffix -> (slots, slot decay per second): 85 % of the account's limits.
    "query": (3, ACCOUNT.query_per_second * 0.85),
    "list": (3, ACCOUNT.list_per_second * 0.85),
    "cancel": (3, ACCOUNT.cancel_per_second * 0.85),
    "submit": (1, ACCOUNT.submit_per_second * 0.85),
}

_lock = threading.Lock()
_limits_lock = threading.Lock()
_services: Services | None = None
_local_slots: dict[int, threading.BoundedSemaphore] = {}
_limits_ready = False

ProgressListener = Callable[[str, TaskStatus, float, int], None]
"""(job_id, status, elapsed seconds, polls): the CLI's progress display hooks in here."""
_listener: ProgressListener | None = None


def server_configured() -> bool:
    """True when runs report to a Prefect server shared with other processes (not the
    temporary one Prefect starts inside a process that names no server)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


class PrefectRateBudget:
    """`RateBudget` over Prefect global rate limits: one budget for every worker.

    Each slot is taken with one call of this budget's own Prefect client. A local
    server on SQLite answers 503 ("database is locked") whenever another write lands
    between the read and the write of its increment; Prefect's client would wait 2 s
    before trying again, a 20th of a second is enough, so this budget retries itself.
    Calls may come from threads Prefect did not start (the shared status watcher), so
    each runs in a copy of the context this budget was made in: the same Prefect API.
    """

    def __init__(self) -> None:
        ensure_limits()
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._client: SyncPrefectClient | None = None

    def acquire(self, kind: CallKind) -> None:
        self._context.copy().run(self._take, f"vaceflow-dashscope-{kind}")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.__exit__(None, None, None)

    def _http(self) -> SyncPrefectClient:
        with self._lock:
            if self._client is None:
                from prefect.client.orchestration import get_client

                self._client = get_client(sync_client=True)
                self._client.__enter__()
            return self._client

    def _take(self, name: str) -> None:
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        busy = 0
        while True:
            try:
                with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
                    taken = self._http().increment_concurrency_slots(
                        names=[name], slots=1, mode="rate_limit"
                    )
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                if code == 423:  # no slot yet: the server says when one frees up
                    time.sleep(float(exc.response.headers.get("Retry-After", 0.1)))
                    continue
                if code not in (502, 503) or busy >= _BUSY_RETRIES:
                    raise
                busy += 1
                time.sleep(min(1.0, 0.05 * 2**busy) * random.uniform(0.5, 1.0))
                continue
            except httpx.TransportError:
                if busy >= _BUSY_RETRIES:
                    raise
                busy += 1
                time.sleep(min(1.0, 0.05 * 2**busy) * random.uniform(0.5, 1.0))
                continue
            if taken.json():
                return
            ensure_limits(force=True)  # somebody deleted the limit: make it again


_BUSY_RETRIES = 10
"""Retries of a 503 or a dropped connection (about 6 s in all) before the call fails."""


def ensure_limits(in_flight: int | None = None, *, force: bool = False) -> None:
    """Create (or resize) the global concurrency limits the tasks use. Idempotent."""
    global _limits_ready
    if not server_configured():
        return
    from prefect.client.orchestration import get_client

    with _limits_lock:
        if _limits_ready and in_flight is None and not force:
            return
        with get_client(sync_client=True) as client:
            for kind, (slots, decay) in RATE_LIMITS.items():
                client.upsert_global_concurrency_limit_by_name(
                    f"vaceflow-dashscope-{kind}", slots, slot_decay_per_second=decay
                )
            if in_flight is not None:
                client.upsert_global_concurrency_limit_by_name(RUNNING_LIMIT, in_flight)
            else:
                try:
                    client.read_global_concurrency_limit_by_name(RUNNING_LIMIT)
                except Exception:
                    client.upsert_global_concurrency_limit_by_name(
                        RUNNING_LIMIT, ACCOUNT.concurrent_tasks
                    )
        _limits_ready = True


def services() -> Services:
    """The process's Services, built on first use from the settings."""
    global _services
    with _lock:
        if _services is None:
            budget: RateBudget = PrefectRateBudget() if server_configured() else LocalRateBudget()
            _services = Services.from_settings(Settings.load(), budget=budget)
        return _services


def reset_services() -> None:
    """Drop the process's Services (tests, and after the settings changed)."""
    global _services, _limits_ready
    with _lock:
        if _services is not None:
            _services.close()
            if isinstance(_services.budget, PrefectRateBudget):
                _services.budget.close()
        _services = None
        _limits_ready = False


@contextmanager
def in_flight_slot(limit: int) -> Iterator[None]:
    """Hold one of `limit` slots from submit to the task's end."""
    if server_configured():
        ensure_limits()
        with concurrency(RUNNING_LIMIT, occupy=1, strict=True, lease_duration=60):
            yield
        return
    with _lock:
        slot = _local_slots.setdefault(limit, threading.BoundedSemaphore(limit))
    with slot:
        yield


def set_progress_listener(listener: ProgressListener | None) -> None:
    global _listener
    _listener = listener


def progress_listener() -> ProgressListener | None:
    return _listener

"""What every task of one process shares: the core `Services`, the rate budget and the
slots that bound jobs in flight at the service.

With a Prefect server configured (PREFECT_API_URL), the budget and the slots are Prefect
global concurrency limits, so every worker of a team shares one account's limits;
without one (the embedded laptop run), they are in-process (a token bucket, a semaphore).
Nothing here is a scheduler or a lock service of our own.
"""

from __future__ import annotations

import base64
import contextvars
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger
from pydantic import SecretStr

from vaceflow.errors import ConfigError
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
    "flow_settings",
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

    Each slot is one `POST /v2/concurrency_limits/increment` on a plain HTTP client. A
    local server on SQLite answers 503 ("database is locked") whenever another write
    lands between the read and the write of its increment; Prefect's own client sleeps
    1 to 2 s after any 503, even with its retries off, where a 20th of a second is
    enough: this budget retries by itself. The API's address and credentials are read
    in the context the budget was made in, since calls come from threads Prefect did
    not start (the shared status watcher).
    """

    def __init__(self) -> None:
        ensure_limits()
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    def acquire(self, kind: CallKind) -> None:
        self._take(f"vaceflow-dashscope-{kind}")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = self._context.run(_prefect_api_client)
            return self._client

    def _take(self, name: str) -> None:
        busy = 0
        body = {"names": [name], "slots": 1, "mode": "rate_limit"}
        while True:
            try:
                taken = self._http().post("v2/concurrency_limits/increment", json=body)
                taken.raise_for_status()
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
            self._context.copy().run(ensure_limits, force=True)  # the limit was deleted


def _prefect_api_client() -> httpx.Client:
    """A client on the configured Prefect API with its credentials, as Prefect's own
    client sends them (an auth string before a key)."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    if not api.url:
        raise ConfigError("no Prefect API is configured for the shared rate budget")
    headers: dict[str, str] = {}
    if api.auth_string is not None:
        token = base64.b64encode(api.auth_string.get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif api.key is not None:
        headers["Authorization"] = f"Bearer {api.key.get_secret_value()}"
    verify: ssl.SSLContext | bool = not api.tls_insecure_skip_verify
    if verify and api.ssl_cert_file:
        verify = ssl.create_default_context(cafile=api.ssl_cert_file)
    return httpx.Client(
        base_url=api.url.rstrip("/") + "/",
        headers=headers,
        timeout=api.request_timeout,
        verify=verify,
    )


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
                _upsert(client, f"vaceflow-dashscope-{kind}", slots, decay)
            if in_flight is not None:
                _upsert(client, RUNNING_LIMIT, in_flight)
            else:
                try:
                    client.read_global_concurrency_limit_by_name(RUNNING_LIMIT)
                except ObjectNotFound:
                    _upsert(client, RUNNING_LIMIT, ACCOUNT.in_flight)
        _limits_ready = True


def _upsert(client: SyncPrefectClient, name: str, limit: int, decay: float | None = None) -> None:
    """Prefect's upsert reads, then creates: when another process (a worker, a served
    run) creates the limit in between, the create answers 409; the next try updates."""
    for attempt in range(3):
        try:
            client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay_per_second=decay)
            return
        except ObjectAlreadyExists:
            if attempt == 2:
                raise


def services() -> Services:
    """The process's Services, built on first use from the settings."""
    global _services
    with _lock:
        if _services is None:
            budget: RateBudget = PrefectRateBudget() if server_configured() else LocalRateBudget()
            _services = Services.from_settings(flow_settings(), budget=budget)
        return _services


def flow_settings() -> Settings:
    """The settings, with the secrets that Prefect Secret blocks hold filled in where
    the environment sets none (`VACEFLOW_API_KEY_BLOCK`, `VACEFLOW_S3_SECRET_KEY_BLOCK`):
    a deployment's runs then get their keys from the server, never from parameters."""
    settings = Settings.load()
    updates: dict[str, SecretStr] = {}
    if settings.api_key is None and settings.api_key_block:
        updates["api_key"] = _secret(settings.api_key_block)
    if settings.s3_secret_access_key is None and settings.s3_secret_key_block:
        updates["s3_secret_access_key"] = _secret(settings.s3_secret_key_block)
    return settings.model_copy(update=updates) if updates else settings


def _secret(block: str) -> SecretStr:
    from prefect.blocks.system import Secret

    try:
        secret: Secret[str] = Secret.load(block)  # type: ignore[assignment]  # sync here
        value = secret.get()
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise ConfigError(f"no Prefect Secret block named {block!r}: {exc}") from None
    return SecretStr(str(value))


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
    """Hold one of `limit` slots from submit to the task's end.

    The process's own slots come first, then (with a server) the global limit every
    worker shares. Asking the server only with a local slot in hand matters: a Prefect
    server answers each refused request with a Retry-After that grows with the number
    of refusals (up to 30 s), so a batch's threads all asking at once would leave
    freed slots idle for many seconds.
    """
    with _lock:
        slot = _local_slots.setdefault(limit, threading.BoundedSemaphore(limit))
    with slot:
        if not server_configured():
            yield
            return
        ensure_limits()
        with concurrency(RUNNING_LIMIT, occupy=1, strict=True, lease_duration=60):
            yield


def set_progress_listener(listener: ProgressListener | None) -> None:
    global _listener
    _listener = listener


def progress_listener() -> ProgressListener | None:
    return _listener

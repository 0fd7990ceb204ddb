"""What a flow run's tasks use, handed to them explicitly: one `Runtime` per run.

A flow opens it first (`flow_runtime`) and passes `runtime.services` to each task it
calls. The flows it starts (a batch's jobs, a watch's files, a long video's segments)
run in the same runtime: one client, one watcher and one rate budget for all. It reaches
them in a context variable, as Prefect's own run context does (a flow's parameters are
its deployment's form: it cannot be one of them). A caller may open the runtime itself
(`open_runtime`) to hand its flows a progress listener and the jobs it has prepared
already: the CLI shows the plan, then runs that same preparation.

The account's limits are settings (`Settings.account`). With a Prefect server named
(PREFECT_API_URL) they are the server's global concurrency limits, shared by every
worker: set by whoever sets the server up (`vaceflow dev up`, `vaceflow deploy`:
`apply_account_limits`) or made by the first run that finds them missing
(`ensure_account_limits`), and never resized by a flow. A flow may ask for fewer jobs
in flight (`Runtime.narrowed`: slots of its own, inside the account's). Without a
server the account's bound and budget are the runtime's own (a semaphore, token
buckets), shared by the flows that run in it. Nothing here is a scheduler or a lock
service of our own.

This module imports Prefect only where a call needs it: the CLI opens a runtime on a
server (`open_runtime(server=...)`), takes a slot and submits before Prefect is imported,
then hands the job to the flow (`Runtime.handed_over`), which resumes it.
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, SecretStr

from tasks.scope import bound
from vaceflow.errors import ConfigError
from vaceflow.inflight import LocalSlots
from vaceflow.jobs import Job
from vaceflow.limits import AccountLimits
from vaceflow.media.prepare import PreparedJob
from vaceflow.pipeline import Staged
from vaceflow.ratebudget import CallKind, LocalRateBudget, RateBudget
from vaceflow.services import Services
from vaceflow.settings import Settings
from vaceflow.steps import JobListener

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

__all__ = [
    "RUNNING_LIMIT",
    "PrefectApiSettings",
    "PrefectRateBudget",
    "Runtime",
    "ServerSlots",
    "apply_account_limits",
    "ensure_account_limits",
    "flow_runtime",
    "flow_settings",
    "open_runtime",
    "server_configured",
    "server_limits",
]

logger = logging.getLogger(__name__)

RUNNING_LIMIT = "vaceflow-dashscope-in-flight"
"""Global concurrency limit: jobs submitted and not yet ended, across every worker."""
RATE_MARGIN = 0.85
"""The server's rate limits run at this share of the account's."""


def server_configured() -> bool:
    """True when runs report to a Prefect server shared with other processes (not the
    temporary one Prefect starts inside a process that names no server)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def _rate_limit(kind: CallKind) -> str:
    return f"vaceflow-dashscope-{kind}"


def server_limits(account: AccountLimits) -> dict[str, tuple[int, float | None]]:
    """The account's limits as the server keeps them: name -> (slots, slot decay a second)."""
    rates: dict[CallKind, tuple[int, float]] = {
        "query": (3, account.query_per_second),
        "list": (3, account.list_per_second),
        "cancel": (3, account.cancel_per_second),
        "submit": (1, account.submit_per_second),
    }
    limits: dict[str, tuple[int, float | None]] = {
        _rate_limit(kind): (slots, rate * RATE_MARGIN) for kind, (slots, rate) in rates.items()
    }
    limits[RUNNING_LIMIT] = (account.in_flight, None)
    return limits


def apply_account_limits(account: AccountLimits) -> None:
    """Set the account's limits on the server (made or changed): its owner's setup."""
    _write_limits(account, change=True)


def ensure_account_limits(account: AccountLimits) -> None:
    """Make the account's limits the server lacks (a first run); leaves the others be."""
    _write_limits(account, change=False)


def _write_limits(account: AccountLimits, *, change: bool) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for name, (slots, decay) in server_limits(account).items():
            if not change:
                try:
                    client.read_global_concurrency_limit_by_name(name)
                    continue
                except ObjectNotFound:
                    pass
            _upsert(client, name, slots, decay)


def _upsert(client: SyncPrefectClient, name: str, limit: int, decay: float | None) -> None:
    """Prefect's upsert reads, then creates: when another process (a worker, a served
    run) creates the limit in between, the create answers 409; the next try updates."""
    from prefect.exceptions import ObjectAlreadyExists

    for attempt in range(3):
        try:
            client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay_per_second=decay)
            return
        except ObjectAlreadyExists:
            if attempt == 2:
                raise


class PrefectApiSettings(BaseModel):
    """Where the Prefect API is and how to talk to it: Prefect's `api` settings (the
    fields of theirs this client uses), from Prefect (`from_prefect`) or read by a
    caller that has not imported it (the CLI: `vaceflow.cli.prefect_api`)."""

    url: str
    key: SecretStr | None = None
    auth_string: SecretStr | None = None
    tls_insecure_skip_verify: bool = False
    ssl_cert_file: str | None = None
    request_timeout: float = 60.0

    @classmethod
    def from_prefect(cls) -> PrefectApiSettings:
        from prefect.settings import get_current_settings

        api = get_current_settings().api
        if not api.url:
            raise ConfigError("no Prefect API is configured for the shared limits")
        return cls.model_validate(api.model_dump(include=set(cls.model_fields)))

    def client(self) -> httpx.Client:
        """A client on the API with its credentials, as Prefect's own client sends them
        (an auth string before a key)."""
        headers: dict[str, str] = {}
        if self.auth_string is not None:
            token = base64.b64encode(self.auth_string.get_secret_value().encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif self.key is not None:
            headers["Authorization"] = f"Bearer {self.key.get_secret_value()}"
        verify: ssl.SSLContext | bool = not self.tls_insecure_skip_verify
        if verify and self.ssl_cert_file:
            verify = ssl.create_default_context(cafile=self.ssl_cert_file)
        return httpx.Client(
            base_url=self.url.rstrip("/") + "/",
            headers=headers,
            timeout=self.request_timeout,
            verify=verify,
        )


class _PrefectApi:
    """POSTs to the Prefect API on a plain HTTP client, for the calls a job makes on its
    way to the submit. A local server on SQLite answers 503 ("database is locked")
    whenever another write lands between the read and the write of a slot's increment;
    Prefect's own client sleeps 2 s after a 503, even with its retries off, where a 20th
    of a second is enough: this client retries by itself, and waits as long as a 423 (no
    slot yet) says. Without `settings`, the API's are Prefect's in the context this was
    made in, since calls come from threads Prefect did not start (the shared status
    watcher)."""

    def __init__(self, settings: PrefectApiSettings | None = None) -> None:
        self._settings = settings
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """The answer to `body` at `path`, once the server has one that is not busy."""
        busy = 0
        while True:
            try:
                answer = self._http().post(path, json=body)
                answer.raise_for_status()
                return answer
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                if code == 423:  # no slot yet: the server says when one frees up
                    time.sleep(float(exc.response.headers.get("Retry-After", 0.1)))
                    continue
                if code not in (502, 503) or busy >= _BUSY_RETRIES:
                    raise
            except httpx.TransportError:
                if busy >= _BUSY_RETRIES:
                    raise
            busy += 1
            time.sleep(min(1.0, 0.05 * 2**busy) * random.uniform(0.5, 1.0))

    def in_context(self, call: Callable[[], None]) -> None:
        """`call` in the context this client was made in (the same Prefect API)."""
        self._context.copy().run(call)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                settings = self._settings or self._context.run(PrefectApiSettings.from_prefect)
                self._client = settings.client()
            return self._client


class PrefectRateBudget:
    """`RateBudget` over Prefect global rate limits: one budget for every worker. Each
    call is one `POST /v2/concurrency_limits/increment` (`_PrefectApi`)."""

    def __init__(self, account: AccountLimits, api: _PrefectApi) -> None:
        self._account = account
        self._api = api

    def acquire(self, kind: CallKind) -> None:
        body = {"names": [_rate_limit(kind)], "slots": 1, "mode": "rate_limit"}
        while not self._api.post("v2/concurrency_limits/increment", body).json():
            # The limit was deleted: make it again, as a first run would.
            self._api.in_context(lambda: ensure_account_limits(self._account))


class ServerSlots:
    """`Slots` of the server's in-flight limit, which every worker shares: a lease on one
    slot (`POST /v2/concurrency_limits/increment-with-lease`, `_PrefectApi`), renewed
    while the job holds it, so that a killed worker's slot comes back when its lease
    ends, and given back at the end."""

    def __init__(self, account: AccountLimits, api: _PrefectApi) -> None:
        self._account = account
        self._api = api

    @contextmanager
    def slot(self) -> Iterator[None]:
        lease = self._take()
        done = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(lease, done), name="vaceflow-slot-lease", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            self._give_back(lease)

    def _take(self) -> str:
        body: dict[str, Any] = {
            "names": [RUNNING_LIMIT],
            "slots": 1,
            "mode": "concurrency",
            "lease_duration": LEASE_SECONDS,
        }
        holder = _holder()
        if holder is not None:
            body["holder"] = holder
        while True:
            taken = self._api.post("v2/concurrency_limits/increment-with-lease", body).json()
            lease = str(taken["lease_id"])
            if taken.get("limits"):
                return lease
            # The limit was deleted: the lease holds nothing. Make it, as a first run would.
            self._give_back(lease)
            self._api.in_context(lambda: ensure_account_limits(self._account))

    def _give_back(self, lease: str) -> None:
        """Never raises over the job's own outcome: a slot not given back frees itself
        when its lease ends."""
        try:
            self._api.post("v2/concurrency_limits/decrement-with-lease", {"lease_id": lease})
        except httpx.HTTPError as exc:
            logger.warning(
                "could not give back the in-flight slot (it frees itself within %.0f s): %s",
                LEASE_SECONDS,
                exc,
            )

    def _renew(self, lease: str, done: threading.Event) -> None:
        path = f"v2/concurrency_limits/leases/{lease}/renew"
        while not done.wait(LEASE_SECONDS / 3):
            try:
                self._api.post(path, {"lease_duration": LEASE_SECONDS})
            except httpx.HTTPError as exc:  # the next renewal may get through
                logger.warning("could not renew the in-flight slot's lease: %s", exc)


def _holder() -> dict[str, str] | None:
    """The run holding a slot, as the Prefect UI lists it (none before Prefect is
    imported: there is no run then)."""
    if "prefect.context" not in sys.modules:
        return None
    from prefect.context import FlowRunContext, TaskRunContext

    task = TaskRunContext.get()
    if task is not None:
        return {"type": "task_run", "id": str(task.task_run.id)}
    flow = FlowRunContext.get()
    if flow is not None and flow.flow_run is not None:
        return {"type": "flow_run", "id": str(flow.flow_run.id)}
    return None


_BUSY_RETRIES = 10
"""Retries of a 503 or a dropped connection (about 6 s in all) before the call fails."""
LEASE_SECONDS = 60.0
"""How long a killed worker's in-flight slot stays taken (the API's shortest lease)."""


@dataclass(frozen=True)
class Runtime:
    """One flow run's services, its in-flight slots, who hears its progress, and the
    jobs its caller prepared already."""

    services: Services
    slots: LocalSlots
    """The account's bound, or a flow's narrower one inside it."""
    listener: JobListener | None = None
    """(job id, status, seconds, looks) after every look at a task: the CLI's status line."""
    prepared: dict[str, PreparedJob] = field(default_factory=dict)
    handed: dict[str, Staged | None] = field(default_factory=dict)
    """Jobs their caller submitted and holds the slot of (`handed_over`): their staged inputs."""

    def narrowed(self, max_in_flight: int | None) -> Runtime:
        """This runtime with at most `max_in_flight` jobs in flight of its own (None: as is)."""
        if max_in_flight is None:
            return self
        return replace(self, slots=self.slots.narrowed(max_in_flight))

    def prepared_for(self, job: Job) -> PreparedJob | None:
        """The caller's preparation of `job`, if it made one (nothing is prepared twice)."""
        return self.prepared.get(_key(job))

    @contextmanager
    def handed_over(self, job_id: str, staged: Staged | None) -> Iterator[None]:
        """Inside the block the flows go on with a job this runtime's caller took the
        slot for and submitted (the CLI, before Prefect was imported): they take no
        second slot for it (at a limit of one, that one would never come), and clean
        up the inputs it staged."""
        self.handed[job_id] = staged
        try:
            yield
        finally:
            self.handed.pop(job_id, None)

    def slot_for(self, job_id: str) -> AbstractContextManager[None]:
        """The job's in-flight slot: the caller's, when it holds one for it already."""
        return nullcontext() if job_id in self.handed else self.slots.slot()

    def staged_for(self, job_id: str) -> Staged | None:
        """The inputs the caller staged for a job it handed over."""
        return self.handed.get(job_id)


def _key(job: Job) -> str:
    return json.dumps(job.to_body(), sort_keys=True)


_current: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar(
    "vaceflow_runtime", default=None
)


@contextmanager
def open_runtime(
    *,
    listener: JobListener | None = None,
    prepared: Sequence[tuple[Job, PreparedJob]] = (),
    server: PrefectApiSettings | None = None,
) -> Iterator[Runtime]:
    """A runtime of its own for the flows run inside (closed at the end): with a
    server, the account's limits are made there when missing and every worker's share.

    `server`: the Prefect server, read by a caller that has not imported Prefect (nor
    will until it needs to): its limits are reached on plain HTTP, and made only when a
    slot or a call finds them missing."""
    settings = flow_settings()
    account = settings.account
    budget: RateBudget
    api: _PrefectApi | None = None
    if server is not None or server_configured():
        if server is None:
            ensure_account_limits(account)
        api = _PrefectApi(server)
        budget = PrefectRateBudget(account, api)
        slots = LocalSlots(account.in_flight, outer=ServerSlots(account, api))
    else:
        budget = LocalRateBudget(account)
        slots = LocalSlots(account.in_flight)
    services = Services.from_settings(settings, budget=budget, in_flight=slots)
    runtime = Runtime(services, slots, listener, {_key(job): done for job, done in prepared})
    try:
        with bound(_current, runtime):
            yield runtime
    finally:
        services.close()
        if api is not None:
            api.close()


@contextmanager
def flow_runtime(max_in_flight: int | None = None) -> Iterator[Runtime]:
    """The runtime of the flow run in progress: the enclosing one (a flow that started
    this one, or a caller's), else one of its own. `max_in_flight`: fewer jobs in
    flight for this flow and the flows it starts (never more than the account's)."""
    current = _current.get()
    if current is None:
        with open_runtime() as opened, bound(_current, opened.narrowed(max_in_flight)) as runtime:
            yield runtime
        return
    with bound(_current, current.narrowed(max_in_flight)) as runtime:
        yield runtime


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

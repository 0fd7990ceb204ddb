"""Everything the DashScope client does except I/O, written once for sync and async.

Each call is a generator (`Steps`): it yields `Send` (put this request on the wire)
and `Sleep` (wait this long) actions, receives the `httpx.Response` or the translated
`DashScopeTransportError` for each `Send`, and returns the parsed result or raises a
`DashScopeError`. `Client` and `AsyncClient` only perform the actions.

Each `Send` names the rate budget it spends (`vaceflow.ratebudget`), and the shells
take that slot before the request leaves, a retry included: no caller can forget it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self, TypedDict, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from vaceflow.errors import (
    ConfigError,
    DashScopeError,
    DashScopeTransportError,
    JobInvalid,
    describe_validation_error,
)
from vaceflow.jobs import Job, parse_job
from vaceflow.ratebudget import CallKind, RateBudget
from vaceflow.redact import redact_url
from vaceflow.regions import Endpoint, Region, resolve_endpoint
from vaceflow.responses import (
    LIST_TIME_FORMAT,
    SERVICE_TZ,
    ErrorBody,
    SubmitResponse,
    TaskListResponse,
    TaskResponse,
    TaskStatus,
)
from vaceflow.retry import Call, RetryPolicy
from vaceflow.settings import Settings

from .uploads import OSS_SCHEME, UploadPolicy

__all__ = [
    "DEFAULT_SUBMIT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "KEEPALIVE",
    "BeforeSend",
    "ClientBase",
    "ClientCore",
    "ListQuery",
    "Outcome",
    "Send",
    "Sleep",
    "Steps",
    "next_page",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("vaceflow.client")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_SUBMIT_TIMEOUT = 30.0
"""Seconds a submit waits for its answer (`Settings.submit_timeout`)."""
KEEPALIVE = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=4.0)
"""Idle connections close before uvicorn's 5 s keep-alive would drop them under a request."""

SUBMIT_PATH = "/services/aigc/video-generation/video-synthesis"
LIST_TIME = re.compile(r"^\d{14}$")
USER_AGENT = "vaceflow/0.1 (+httpx)"

# A failure before any byte left this machine: the service cannot have accepted the call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class Send:
    request: httpx.Request
    attempt: int
    spends: CallKind | None = None
    """The account's rate budget this request takes a slot of (None: the upload policy,
    which the account's limits do not count)."""


@dataclass(frozen=True)
class Sleep:
    seconds: float


Outcome = httpx.Response | DashScopeTransportError | None
Steps = Generator[Send | Sleep, Outcome, T]
BeforeSend = Callable[[], None]
"""Called just before each request of a call leaves; raising stops it unsent."""


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def list_time(value: datetime | str | None) -> str | None:
    """A list-window bound in the service's `YYYYMMDDhhmmss` (China Standard Time).

    An aware datetime is converted; a naive one is taken as already in service time.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(SERVICE_TZ)
        return value.strftime(LIST_TIME_FORMAT)
    if not LIST_TIME.match(value):
        raise ValueError(f"task list time {value!r} is not YYYYMMDDhhmmss")
    return value


class ClientCore:
    """Key, endpoint, retry policy; builds requests and parses answers. Reads nothing
    from the environment: `ClientBase` fills what the caller left out from `Settings`."""

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        region: str | Region | None = None,
        workspace_id: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        submit_timeout: float = DEFAULT_SUBMIT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not secret or not secret.strip():
            raise ConfigError(
                "no DashScope API key: pass api_key= or set DASHSCOPE_API_KEY "
                "(a key belongs to one region: Singapore or Beijing)"
            )
        self._api_key = SecretStr(secret.strip())
        self.endpoint: Endpoint = resolve_endpoint(
            region=region or Region.SINGAPORE,
            base_url=base_url or None,
            workspace_id=workspace_id or None,
        )
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        short = min(10.0, submit_timeout)
        self.submit_timeout = httpx.Timeout(submit_timeout, connect=short, write=short, pool=short)
        self.retry = retry or RetryPolicy()

    @property
    def submit_window(self) -> float:
        """The longest one submit request can take, from leaving to its answer: a task it
        created was created within this many seconds of the send."""
        t = self.submit_timeout
        return sum(x or 0.0 for x in (t.pool, t.connect, t.write, t.read))

    def __repr__(self) -> str:
        return f"base_url={self.endpoint.base_url!r}, model={self.endpoint.model!r}"

    # --- requests -------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        all_headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if self.endpoint.workspace_id:
            all_headers["X-DashScope-WorkSpace"] = self.endpoint.workspace_id
        all_headers.update(headers or {})
        url = self.endpoint.base_url + path
        if json is not None:
            return httpx.Request(method, url, params=params, json=json, headers=all_headers)
        return httpx.Request(method, url, params=params, headers=all_headers)

    def job_for(self, job: Job | Mapping[str, Any]) -> Job:
        """The job to send, its model named as this endpoint's region names it."""
        if isinstance(job, Mapping):
            try:
                job = parse_job(dict(job))
            except ValidationError as exc:
                raise JobInvalid(describe_validation_error(exc)) from None
        wanted = self.endpoint.model
        if job.model != wanted:
            if "model" in job.model_fields_set:
                raise ConfigError(
                    f"the job names model {job.model!r} but this client's endpoint "
                    f"({self.endpoint.base_url}) calls it {wanted!r}: model, endpoint and key "
                    "must belong to one region (leave the model unset to follow the client)"
                )
            job = job.with_model(wanted)
        return job

    # --- one exchange, with retries ---------------------------------------------------

    def _exchange(
        self, call: Call, request: httpx.Request, spends: CallKind | None
    ) -> Steps[httpx.Response]:
        attempt = 0
        while True:
            attempt += 1
            outcome = yield Send(request, attempt, spends)
            assert outcome is not None
            error = outcome if isinstance(outcome, DashScopeError) else self._error_of(outcome)
            self._log(request, outcome, error, attempt)
            if error is None:
                assert isinstance(outcome, httpx.Response)
                return outcome
            if not self.retry.should_retry(call, error, attempt):
                raise error
            delay = self.retry.delay(attempt, error.retry_after)
            log.info(
                "%s %s: retrying in %.2f s (attempt %d of %d)",
                request.method,
                request.url.path,
                delay,
                attempt + 1,
                self.retry.attempts,
            )
            yield Sleep(delay)

    def transport_error(self, exc: httpx.RequestError) -> DashScopeTransportError:
        """Translate an httpx failure; `sent` says whether the service may have it."""
        sent = not isinstance(exc, _NOT_SENT)
        where = redact_url(str(exc.request.url)) if _has_request(exc) else self.endpoint.base_url
        what = "may have reached the service" if sent else "was not sent"
        detail = self._scrub(str(exc) or type(exc).__name__)
        return DashScopeTransportError(
            f"no answer from {where} ({type(exc).__name__}: {detail}); the request {what}",
            sent=sent,
        )

    def _error_of(self, response: httpx.Response) -> DashScopeError | None:
        if response.is_success:
            return None
        try:
            body = ErrorBody.model_validate(response.json())
        except (ValueError, ValidationError):
            body = ErrorBody(message=response.text[:200].strip() or response.reason_phrase)
        return DashScopeError(
            self._scrub(body.message or response.reason_phrase or "request failed"),
            status=response.status_code,
            code=body.code or None,
            request_id=body.request_id or response.headers.get("x-request-id"),
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    def _parse(self, response: httpx.Response, model: type[M]) -> M:
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise DashScopeError(
                f"unreadable answer to {response.request.method} {response.request.url.path}: "
                f"{type(exc).__name__}",
                status=response.status_code,
                code="InvalidResponse",
            ) from None

    def _scrub(self, text: str) -> str:
        key = self._api_key.get_secret_value()
        return text.replace(key, "***") if key in text else text

    def _log(
        self,
        request: httpx.Request,
        outcome: httpx.Response | DashScopeError,
        error: DashScopeError | None,
        attempt: int,
    ) -> None:
        if isinstance(outcome, DashScopeTransportError):
            log.warning(
                "%s %s -> no answer (sent=%s) attempt=%d: %s",
                request.method,
                request.url.path,
                outcome.sent,
                attempt,
                outcome,
            )
            return
        assert isinstance(outcome, httpx.Response)
        request_id = error.request_id if error else _request_id(outcome)
        level = logging.DEBUG if error is None else logging.WARNING
        log.log(
            level,
            "%s %s -> %d%s request_id=%s attempt=%d",
            request.method,
            request.url.path,
            outcome.status_code,
            f" {error.code}" if error and error.code else "",
            request_id,
            attempt,
        )

    # --- the calls ----------------------------------------------------------------------

    def submit(
        self, job: Job | Mapping[str, Any], *, oss_resolve: bool | None = None
    ) -> Steps[SubmitResponse]:
        """POST the job once; retried only when it certainly was not accepted."""
        job = self.job_for(job)
        body = job.to_body()
        if oss_resolve is None:
            urls = (url for found in job.input.media().values() for url in found)
            oss_resolve = any(url.startswith(OSS_SCHEME) for url in urls)
        headers = {"X-DashScope-Async": "enable"}
        if oss_resolve:
            headers["X-DashScope-OssResourceResolve"] = "enable"
        request = self._request("POST", SUBMIT_PATH, json=body, headers=headers)
        request.extensions = {**request.extensions, "timeout": self.submit_timeout.as_dict()}
        response = yield from self._exchange(Call.SUBMIT, request, "submit")
        submitted = self._parse(response, SubmitResponse)
        log.info(
            "submitted %s task %s request_id=%s",
            job.function.value,
            submitted.output.task_id,
            submitted.request_id,
        )
        return submitted

    def get(self, task_id: str) -> Steps[TaskResponse]:
        request = self._request("GET", f"/tasks/{_task_path(task_id)}")
        task = self._parse((yield from self._exchange(Call.READ, request, "query")), TaskResponse)
        if task.output.video_url:
            log.debug(
                "task %s %s video %s",
                task_id,
                task.status.value,
                redact_url(task.output.video_url),
            )
        return task

    def cancel(self, task_id: str) -> Steps[None]:
        request = self._request("POST", f"/tasks/{_task_path(task_id)}/cancel")
        yield from self._exchange(Call.CANCEL, request, "cancel")

    def list(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        status: TaskStatus | str | None = None,
        model_name: str | None = None,
        page_no: int = 1,
        page_size: int = 10,
    ) -> Steps[TaskListResponse]:
        query: dict[str, str | int] = {"page_no": page_no, "page_size": page_size}
        for name, value in (
            ("start_time", list_time(start)),
            ("end_time", list_time(end)),
            ("status", TaskStatus(status).value if status else None),
            ("model_name", model_name),
        ):
            if value:
                query[name] = value
        request = self._request("GET", "/tasks", params=query)
        return self._parse(
            (yield from self._exchange(Call.READ, request, "list")), TaskListResponse
        )

    def upload_policy(self, model: str | None = None) -> Steps[UploadPolicy]:
        query = {"action": "getPolicy", "model": model or self.endpoint.model}
        request = self._request("GET", "/uploads", params=query)
        return self._parse((yield from self._exchange(Call.READ, request, None)), UploadPolicy)


def next_page(page: TaskListResponse) -> int | None:
    """The page number after `page`, or None when it was the last."""
    if not page.data or page.page_no >= page.total_page:
        return None
    return page.page_no + 1


def _task_path(task_id: str) -> str:
    if not task_id or "/" in task_id or task_id in (".", ".."):
        raise ValueError(f"not a task id: {task_id!r}")
    return task_id


def _request_id(response: httpx.Response) -> str | None:
    try:
        value = response.json().get("request_id")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def _has_request(exc: httpx.RequestError) -> bool:
    try:
        exc.request  # noqa: B018
    except RuntimeError:
        return False
    return True


class ListQuery(TypedDict, total=False):
    """Filters of the task list; see `ClientCore.list`."""

    start: datetime | str | None
    end: datetime | str | None
    status: TaskStatus | str | None
    model_name: str | None
    page_no: int
    page_size: int


def _settings() -> Settings:
    """The environment's settings; a value that cannot be read is a ConfigError."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(f"settings: {describe_validation_error(exc)}") from None


class ClientBase:
    """What `Client` and `AsyncClient` share besides the I/O: construction and repr."""

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        region: str | Region | None = None,
        workspace_id: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        submit_timeout: float = DEFAULT_SUBMIT_TIMEOUT,
        retry: RetryPolicy | None = None,
        budget: RateBudget | None = None,
    ) -> None:
        """What is left out comes from vaceflow's `Settings`, that is from the SDK's
        variables: DASHSCOPE_API_KEY, DASHSCOPE_REGION, DASHSCOPE_HTTP_BASE_URL and
        DASHSCOPE_WORKSPACE_ID. `budget`: the account's rate budget every request spends
        (None: the service alone says)."""
        self.budget = budget
        if api_key is None or region is None or workspace_id is None or base_url is None:
            settings = _settings()
            api_key = api_key if api_key is not None else settings.api_key
            region = region or settings.region
            workspace_id = workspace_id or settings.workspace_id
            base_url = base_url or settings.http_base_url
        self._core = ClientCore(
            api_key,
            region=region,
            workspace_id=workspace_id,
            base_url=base_url,
            timeout=timeout,
            submit_timeout=submit_timeout,
            retry=retry,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        """A client configured by vaceflow's settings (keywords override them)."""
        options: dict[str, Any] = {
            "api_key": settings.api_key,
            "region": settings.region,
            "workspace_id": settings.workspace_id,
            "base_url": settings.http_base_url,
            "submit_timeout": settings.submit_timeout,
        }
        return cls(**(options | kwargs))

    @property
    def endpoint(self) -> Endpoint:
        """Base URL, model name and workspace this client talks to."""
        return self._core.endpoint

    @property
    def submit_window(self) -> float:
        """Seconds within which a submit request's task, if any, was created."""
        return self._core.submit_window

    def job_for(self, job: Job | Mapping[str, Any]) -> Job:
        """The job as this client would send it: the model named as its region names it."""
        return self._core.job_for(job)

    def _spend(self, send: Send) -> None:
        """Block until the budget lets `send` leave."""
        if self.budget is not None and send.spends is not None:
            self.budget.acquire(send.spends)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._core!r})"

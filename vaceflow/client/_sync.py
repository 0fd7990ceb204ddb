"""The blocking client: performs `ClientCore`'s actions with httpx.Client and time.sleep."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx
from pydantic import SecretStr

from vaceflow.jobs import Job
from vaceflow.ratebudget import RateBudget
from vaceflow.regions import Region
from vaceflow.responses import SubmitResponse, TaskListItem, TaskListResponse, TaskResponse
from vaceflow.retry import RetryPolicy

from ._core import (
    DEFAULT_SUBMIT_TIMEOUT,
    DEFAULT_TIMEOUT,
    KEEPALIVE,
    BeforeSend,
    ClientBase,
    ListQuery,
    Outcome,
    Sleep,
    Steps,
    next_page,
)
from .uploads import UploadPolicy

__all__ = ["Client"]

T = TypeVar("T")


class Client(ClientBase):
    """DashScope's task API for wan2.1-vace-plus, over one pooled httpx connection.

    Reads retry by themselves; `submit` retries only when the service certainly did
    not accept the job (HTTP 429, refused connection). See `vaceflow.retry`. Every
    request (a retry too) first takes a slot of `budget`, before `before_send` runs.
    """

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            api_key,
            region=region,
            workspace_id=workspace_id,
            base_url=base_url,
            timeout=timeout,
            submit_timeout=submit_timeout,
            retry=retry,
            budget=budget,
        )
        self._http = httpx.Client(transport=transport, timeout=self._core.timeout, limits=KEEPALIVE)

    def submit(
        self,
        job: Job | Mapping[str, Any],
        *,
        oss_resolve: bool | None = None,
        before_send: BeforeSend | None = None,
    ) -> SubmitResponse:
        """Create the task (billed if it succeeds); `oss_resolve` defaults to "any oss://
        input". `before_send` runs just before each request leaves (a resend after a
        429 included): the caller's last word, e.g. to record that it is sending."""
        return self._run(self._core.submit(job, oss_resolve=oss_resolve), before_send)

    def get(self, task_id: str) -> TaskResponse:
        return self._run(self._core.get(task_id))

    def cancel(self, task_id: str) -> None:
        """Cancel a task that is still PENDING (else DashScopeError UnsupportedOperation)."""
        self._run(self._core.cancel(task_id))

    def list(self, **query: Unpack[ListQuery]) -> TaskListResponse:
        """One page of the account's tasks (the last 24 h unless `start`/`end` say)."""
        return self._run(self._core.list(**query))

    def list_all(self, **query: Unpack[ListQuery]) -> Iterator[TaskListItem]:
        """Every task of every page from `page_no` on."""
        page: int | None = query.get("page_no", 1)
        while page is not None:
            query["page_no"] = page
            answer = self.list(**query)
            yield from answer.data
            page = next_page(answer)

    def get_upload_policy(self, model: str | None = None) -> UploadPolicy:
        """A policy to upload to the provider's temporary storage (model: this endpoint's)."""
        return self._run(self._core.upload_policy(model))

    def _run(self, steps: Steps[T], before_send: BeforeSend | None = None) -> T:
        outcome: Outcome = None
        try:
            while True:
                action = steps.send(outcome)
                if isinstance(action, Sleep):
                    time.sleep(action.seconds)
                    outcome = None
                    continue
                self._spend(action)
                if before_send is not None:
                    before_send()
                try:
                    outcome = self._http.send(action.request)
                except httpx.RequestError as exc:
                    outcome = self._core.transport_error(exc)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""The async client (asyncio or trio): `ClientCore`'s actions with httpx.AsyncClient, anyio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import anyio
import anyio.to_thread
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

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientBase):
    """DashScope's task API for wan2.1-vace-plus, over one pooled httpx connection.

    Reads retry by themselves; `submit` retries only when the service certainly did
    not accept the job (HTTP 429, refused connection). See `vaceflow.retry`.
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
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._http = httpx.AsyncClient(
            transport=transport, timeout=self._core.timeout, limits=KEEPALIVE
        )

    async def submit(
        self,
        job: Job | Mapping[str, Any],
        *,
        oss_resolve: bool | None = None,
        before_send: BeforeSend | None = None,
    ) -> SubmitResponse:
        """Create the task (billed if it succeeds); as `Client.submit`."""
        return await self._run(self._core.submit(job, oss_resolve=oss_resolve), before_send)

    async def get(self, task_id: str) -> TaskResponse:
        return await self._run(self._core.get(task_id))

    async def cancel(self, task_id: str) -> None:
        """Cancel a task that is still PENDING (else DashScopeError UnsupportedOperation)."""
        await self._run(self._core.cancel(task_id))

    async def list(self, **query: Unpack[ListQuery]) -> TaskListResponse:
        """One page of the account's tasks (the last 24 h unless `start`/`end` say)."""
        return await self._run(self._core.list(**query))

    async def list_all(self, **query: Unpack[ListQuery]) -> AsyncIterator[TaskListItem]:
        """Every task of every page from `page_no` on."""
        page: int | None = query.get("page_no", 1)
        while page is not None:
            query["page_no"] = page
            answer = await self.list(**query)
            for item in answer.data:
                yield item
            page = next_page(answer)

    async def get_upload_policy(self, model: str | None = None) -> UploadPolicy:
        """A policy to upload to the provider's temporary storage (model: this endpoint's)."""
        return await self._run(self._core.upload_policy(model))

    async def _run(self, steps: Steps[T], before_send: BeforeSend | None = None) -> T:
        outcome: Outcome = None
        try:
            while True:
                action = steps.send(outcome)
                if isinstance(action, Sleep):
                    await anyio.sleep(action.seconds)
                    outcome = None
                    continue
                if self.budget is not None:  # a blocking budget: off the event loop
                    await anyio.to_thread.run_sync(self._spend, action)
                if before_send is not None:
                    before_send()
                try:
                    outcome = await self._http.send(action.request)
                except httpx.RequestError as exc:
                    outcome = self._core.transport_error(exc)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

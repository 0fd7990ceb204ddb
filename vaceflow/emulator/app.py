"""The emulator's HTTP surface: DashScope's routes under /api/v1, its own under /_emulator.

Every /api/v1 call passes the same gate, in the service's order: the key (401), the
account's rate limit for that kind of call (429), then any injected fault (500/503
before any effect; a slow answer; a dropped connection after or instead of the effect).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from vaceflow.emulator.admission import admit
from vaceflow.emulator.clock import Clock
from vaceflow.emulator.config import EmulatorConfig, FaultKind, SubmitFault
from vaceflow.emulator.faults import Faults
from vaceflow.emulator.runner import Runner, result_path
from vaceflow.emulator.signing import Signer
from vaceflow.emulator.tasks import Task, TaskStore, key_id
from vaceflow.emulator.throttle import Endpoint, Throttle
from vaceflow.emulator.uploads import UploadRejected, UploadStore, parse_form
from vaceflow.emulator.views import result_route, task_body, task_list_item, unknown_task_body
from vaceflow.emulator.wire import ApiError, new_id, parse_list_time
from vaceflow.limits import ACCOUNT
from vaceflow.responses import TaskStatus

__all__ = ["create_app"]

SUBMIT_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"
_MAX_PAGE_SIZE = 100
_WINDOW = ACCOUNT.list_window_seconds

Handler = Callable[[str, bool], Awaitable[Response]]
"""An endpoint's own work: (request_id, response_will_be_dropped) -> response."""


class _Dropped(Response):
    """Sends the response head (with a Content-Length) and closes before the body."""

    def __init__(self, length: int) -> None:
        super().__init__(status_code=200)
        self._length = length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % self._length),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


@dataclass
class _Emulator:
    """Everything one app instance owns."""

    config: EmulatorConfig
    data_dir: Path
    clock: Clock
    store: TaskStore
    throttle: Throttle
    faults: Faults
    signer: Signer
    uploads: UploadStore
    runner: Runner
    """Made with the app, so it also works under httpx's ASGITransport (no lifespan)."""

    @property
    def key(self) -> str:
        return self.config.api_key.get_secret_value()

    def root(self, request: Request) -> str:
        return self.config.public_url or str(request.base_url).rstrip("/")

    def live_task(self, task_id: str) -> Task | None:
        """The task, unless unknown or older than the id's lifetime."""
        task = self.store.get(task_id)
        if task is None or self.clock.now() - task.submit_time > self.config.url_ttl:
            return None
        return task

    async def call(self, request: Request, endpoint: Endpoint, handler: Handler) -> Response:
        request_id = new_id()
        try:
            self._authorize(request)
            if not self.throttle.allow(endpoint):
                raise ApiError(
                    429,
                    "Throttling.RateQuota",
                    "Requests rate limit exceeded, please try again later.",
                )
            fault = self.faults.for_call()
            if fault is FaultKind.ERROR_500:
                raise ApiError(
                    500, "InternalError", "An internal error has occured, please try again later."
                )
            if fault is FaultKind.ERROR_503:
                raise ApiError(503, "ServiceUnavailable", "The service is temporarily unavailable.")
            if fault is FaultKind.SLOW:
                await asyncio.sleep(self.config.slow_seconds)
        except ApiError as exc:
            return exc.response(request_id)
        dropped = fault is FaultKind.DROP
        submit = endpoint is Endpoint.SUBMIT
        armed = self.faults.for_submit() if submit else None
        if armed is SubmitFault.LOST or (
            dropped and submit and not self.faults.dropped_submit_creates_task()
        ):
            return _Dropped(256)  # the submit never reached the service
        dropped = dropped or armed is SubmitFault.ANSWER_LOST
        try:
            response = await handler(request_id, dropped)
        except ApiError as exc:
            response = exc.response(request_id)
        if armed is SubmitFault.HANG:
            await asyncio.sleep(self.config.hang_seconds)
        return _Dropped(len(response.body) or 256) if dropped else response

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not token or scheme.lower() != "bearer":
            raise ApiError(401, "InvalidApiKey", "No API-key provided.")
        if not hmac.compare_digest(token.strip().encode(), self.key.encode()):
            raise ApiError(401, "InvalidApiKey", "Invalid API-key provided.")


def create_app(config: EmulatorConfig) -> FastAPI:
    """A fresh emulator: its own tasks, uploads, clock, limits and fault dice."""
    owns_dir = config.data_dir is None
    data_dir = config.data_dir or Path(tempfile.mkdtemp(prefix="vaceflow-emulator-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    secret = secrets.token_bytes(32)
    store = TaskStore()
    faults = Faults(config)
    uploads = UploadStore(data_dir / "uploads", secret=secret, clock=clock, ttl=config.upload_ttl)
    rates = {
        Endpoint.SUBMIT: config.submit_qps,
        Endpoint.QUERY: config.query_qps,
        Endpoint.LIST: config.list_qps,
        Endpoint.CANCEL: config.cancel_qps,
    }
    emu = _Emulator(
        config=config,
        data_dir=data_dir,
        clock=clock,
        store=store,
        throttle=Throttle(rates),
        faults=faults,
        signer=Signer(secret),
        uploads=uploads,
        runner=Runner(
            config, store=store, clock=clock, faults=faults, uploads=uploads, data_dir=data_dir
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await emu.runner.close()
            if owns_dir:
                shutil.rmtree(data_dir, ignore_errors=True)

    app = FastAPI(
        title="vaceflow DashScope emulator", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.emulator = emu
    _add_api_routes(app, emu)
    _add_emulator_routes(app, emu)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "InvalidParameter")
        return ApiError(exc.status_code, code, str(exc.detail)).response(new_id())

    return app


def _add_api_routes(app: FastAPI, emu: _Emulator) -> None:
    @app.post(SUBMIT_PATH)
    async def submit(request: Request) -> Response:
        async def handle(request_id: str, dropped: bool) -> Response:
            if request.headers.get("x-dashscope-async", "").strip().lower() != "enable":
                raise ApiError(
                    403, "AccessDenied", "current user api does not support synchronous calls"
                )
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise ApiError(
                    400, "InvalidParameter", "The request body is not valid JSON."
                ) from None
            oss = request.headers.get("x-dashscope-ossresourceresolve", "").lower() == "enable"
            admitted = admit(
                body,
                model=emu.config.model,
                oss_resolve=oss,
                blocked_words=emu.config.blocked_words,
            )
            task = Task(
                task_id=new_id(),
                request_id=request_id,
                model=emu.config.model,
                body=body,
                job=admitted.job,
                notes=admitted.notes,
                submit_time=emu.clock.now(),
                response_dropped=dropped,
            )
            emu.store.add(task)
            emu.runner.start(task)
            output = {"task_status": TaskStatus.PENDING.value, "task_id": task.task_id}
            return JSONResponse({"output": output, "request_id": request_id})

        return await emu.call(request, Endpoint.SUBMIT, handle)

    @app.get("/api/v1/tasks/{task_id}")
    async def query(request: Request, task_id: str) -> Response:
        async def handle(request_id: str, dropped: bool) -> Response:
            emu.store.counters["queries"] += 1
            task = emu.live_task(task_id)
            if task is None:
                return JSONResponse(unknown_task_body(task_id, request_id))
            task.queries += 1
            task.queried_at.append(emu.clock.now())
            body = task_body(
                task,
                request_id,
                root=emu.root(request),
                signer=emu.signer,
                url_ttl=emu.config.url_ttl,
            )
            return JSONResponse(body)

        return await emu.call(request, Endpoint.QUERY, handle)

    @app.post("/api/v1/tasks/{task_id}/cancel")
    async def cancel(request: Request, task_id: str) -> Response:
        async def handle(request_id: str, dropped: bool) -> Response:
            task = emu.live_task(task_id)
            if task is None or not emu.runner.cancel(task):
                raise ApiError(
                    400,
                    "UnsupportedOperation",
                    "Failed to cancel the task, please confirm if the task is in PENDING status.",
                )
            return JSONResponse({"request_id": request_id})

        return await emu.call(request, Endpoint.CANCEL, handle)

    @app.get("/api/v1/tasks")
    async def list_tasks(request: Request) -> Response:
        async def handle(request_id: str, dropped: bool) -> Response:
            emu.store.counters["lists"] += 1
            return JSONResponse(_list_page(emu, dict(request.query_params), request_id))

        return await emu.call(request, Endpoint.LIST, handle)

    @app.get("/api/v1/uploads")
    async def upload_policy(request: Request) -> Response:
        async def handle(request_id: str, dropped: bool) -> Response:
            params = request.query_params
            if params.get("action") != "getPolicy":
                raise ApiError(400, "InvalidParameter", "action: only getPolicy is supported")
            model = params.get("model")
            if not model:
                raise ApiError(400, "InvalidParameter", "model: required")
            if model != emu.config.model:
                raise ApiError(400, "InvalidParameter", f"Model not exist. ({model!r})")
            host = emu.root(request) + "/_emulator/oss"
            policy = emu.uploads.policy(model, owner=key_id(emu.key), host=host)
            return JSONResponse({"request_id": request_id, "data": policy})

        return await emu.call(request, Endpoint.UPLOAD, handle)


def _list_page(emu: _Emulator, params: dict[str, str], request_id: str) -> dict[str, Any]:
    """`GET /tasks`: filter by window, model and status; newest first; one page."""
    try:
        end = parse_list_time(params["end_time"]) if params.get("end_time") else None
        start = parse_list_time(params["start_time"]) if params.get("start_time") else None
    except ValueError:
        raise ApiError(400, "InvalidParameter", "start_time/end_time: use YYYYMMDDhhmmss") from None
    if end is None:
        end = emu.clock.now() if start is None else start + _WINDOW
    if start is None:
        start = end - _WINDOW
    if end < start:
        raise ApiError(400, "InvalidParameter", "end_time is before start_time")
    if end - start > _WINDOW:
        raise ApiError(400, "InvalidParameter", "The time window must not exceed 24 hours.")
    status = params.get("status")
    if status and status not in TaskStatus.__members__:
        raise ApiError(400, "InvalidParameter", f"status: unknown task status {status!r}")
    try:
        page_no = max(1, int(params.get("page_no") or 1))
        page_size = min(
            _MAX_PAGE_SIZE, max(1, int(params.get("page_size") or ACCOUNT.list_default_page_size))
        )
    except ValueError:
        raise ApiError(400, "InvalidParameter", "page_no/page_size: must be integers") from None
    model = params.get("model_name")
    other_key = params.get("api_key_id") not in (None, "", key_id(emu.key))
    rows = [
        t
        for t in emu.store.tasks.values()
        if not other_key
        and start <= t.submit_time <= end
        and emu.live_task(t.task_id) is not None
        and (not model or t.model == model)
        and (not status or t.status.value == status)
    ]
    rows.sort(key=lambda t: t.submit_time, reverse=True)
    page = rows[(page_no - 1) * page_size : page_no * page_size]
    return {
        "request_id": request_id,
        "data": [task_list_item(t, api_key=emu.key, region=emu.config.region) for t in page],
        "total": len(rows),
        "total_page": math.ceil(len(rows) / page_size),
        "page_no": page_no,
        "page_size": page_size,
    }


def _add_emulator_routes(app: FastAPI, emu: _Emulator) -> None:
    @app.post("/_emulator/oss")
    async def form_upload(request: Request) -> Response:
        fields, content = parse_form(request.headers.get("content-type", ""), await request.body())
        try:
            if content is None:
                raise UploadRejected(400, "InvalidArgument", "The form has no file field.")
            emu.uploads.accept(fields, content)
        except UploadRejected as exc:
            return Response(exc.xml(), status_code=exc.status, media_type="application/xml")
        status = 200 if fields.get("success_action_status") == "200" else 204
        return Response(status_code=status)

    @app.get("/_emulator/results/{name}")
    async def result(request: Request, name: str) -> Response:
        task_id = name.removesuffix(".mp4")
        path = result_path(emu.data_dir, task_id)
        try:
            expires = int(request.query_params.get("Expires", ""))
        except ValueError:
            expires = 0
        signature = request.query_params.get("Signature", "")
        valid = emu.signer.verify(result_route(task_id), expires, signature)
        if not valid or expires < emu.clock.now() or not path.is_file():
            denied = UploadRejected(403, "AccessDenied", "Request has expired or is not signed.")
            return Response(denied.xml(), status_code=403, media_type="application/xml")
        return FileResponse(path, media_type="video/mp4")

    @app.get("/_emulator/tasks")
    async def tasks() -> dict[str, Any]:
        return {
            "tasks": [_record(t) for t in emu.store.tasks.values()],
            "counters": {
                **emu.store.counters,
                "throttled": dict(emu.throttle.refused),
                "faults": dict(emu.faults.injected),
            },
            "running": emu.store.running,
            "peak_running": emu.store.peak_running,
        }

    @app.get("/_emulator/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": emu.config.model, "region": emu.config.region.value}

    @app.post("/_emulator/faults")
    async def arm_faults(request: Request) -> dict[str, Any]:
        """`{"submit": ["answer_lost", "lost", "hang"]}`: faults for the next submits."""
        try:
            body = json.loads(await request.body() or b"{}")
            armed = emu.faults.arm(SubmitFault(kind) for kind in body.get("submit", []))
        except (ValueError, AttributeError, TypeError) as exc:
            raise HTTPException(400, f"faults: {exc}") from None
        return {"submit": armed}

    @app.post("/_emulator/latency")
    async def set_latency(request: Request) -> dict[str, float]:
        """`?seconds=S`: tasks stay RUNNING S seconds, those running now too."""
        seconds = _seconds(request, "seconds")
        _or_400(emu.runner.set_latency, seconds)
        return {"latency": seconds}

    @app.post("/_emulator/clock")
    async def advance_clock(request: Request) -> dict[str, float]:
        """`?advance=S`: the clock moves S seconds forward (expiries come sooner)."""
        return {"now": _or_400(emu.clock.advance, _seconds(request, "advance"))}


def _seconds(request: Request, name: str) -> float:
    try:
        return float(request.query_params[name])
    except (KeyError, ValueError):
        raise HTTPException(400, f"{name}: seconds expected") from None


def _or_400(change: Callable[[float], Any], seconds: float) -> Any:
    try:
        return change(seconds)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def _record(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "request_id": task.request_id,
        "model": task.model,
        "function": task.job.function.value,
        "body": task.body,
        "notes": task.notes,
        "status": task.status.value,
        "submit_time": task.submit_time,
        "scheduled_time": task.scheduled_time,
        "end_time": task.end_time,
        "code": task.code,
        "message": task.message,
        "queries": task.queries,
        "queried_at": task.queried_at,
        "response_dropped": task.response_dropped,
    }

"""The DashScope client over real HTTP on loopback, sync and async alike.

A scripted server answers each request with the next step of a script (a status and
body, a hang past the client's timeout, or a closed connection) and records what it
received, so the tests count what reached the "service" exactly.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import free_port
from vaceflow.client import AsyncClient, Client, RetryPolicy, UploadPolicy
from vaceflow.errors import (
    ConfigError,
    DashScopeError,
    DashScopeTransportError,
    JobInvalid,
)
from vaceflow.jobs import parse_job
from vaceflow.responses import TaskStatus

KEY = "sk-test-0123456789abcdef"
FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)

OUTPAINT = {
    "model": "wan2.1-vace-plus",
    "input": {"function": "video_outpainting", "prompt": "wider", "video_url": "http://h/v.mp4"},
    "parameters": {"top_scale": 1.5},
}
UNSET_MODEL = {k: v for k, v in OUTPAINT.items() if k != "model"}


# --- the scripted server ---------------------------------------------------------------


@dataclass
class Step:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    drop: bool = False


def ok_submit(task_id: str = "t-1") -> Step:
    return Step(
        body={"request_id": "rq-s", "output": {"task_id": task_id, "task_status": "PENDING"}}
    )


def task(status: str, task_id: str = "t-1", **output: Any) -> Step:
    return Step(
        body={"request_id": "rq-g", "output": {"task_id": task_id, "task_status": status, **output}}
    )


def error(status: int, code: str | None = None, message: str = "no", **headers: str) -> Step:
    body = {"code": code, "message": message, "request_id": f"rq-{status}"} if code else None
    return Step(status=status, body=body, headers=headers)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    peer: int


class ScriptedServer:
    """Answers with `script` in order (the last step repeats); records every request."""

    def __init__(self) -> None:
        self.script: list[Step] = [Step()]
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                step = server._record(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None,
                        self.client_address[1],
                    )
                )
                if step.hang:
                    time.sleep(step.hang)
                if step.drop:
                    self.close_connection = True
                    return
                payload = (
                    b""
                    if step.body is None
                    else (
                        step.body.encode()
                        if isinstance(step.body, str)
                        else json.dumps(step.body).encode()
                    )
                )
                self.send_response(step.status)
                ctype = "text/html" if isinstance(step.body, str) else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in step.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True).start()

    def _record(self, seen: Seen) -> Step:
        with self._lock:
            self.seen.append(seen)
            index = min(len(self.seen), len(self.script)) - 1
            return self.script[index]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.close()


# --- one test body for both clients ------------------------------------------------------


class PortSwitch:
    """Sends the first `refusals` requests to a closed port (a real refused connection)."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.dead_port = free_port()
        self.calls = 0

    def route(self, request: httpx.Request) -> httpx.Request:
        self.calls += 1
        if self.calls > self.refusals:
            return request
        dead = request.url.copy_with(port=self.dead_port)
        return httpx.Request(request.method, dead, headers=request.headers, content=request.content)


class SyncSwitch(httpx.HTTPTransport):
    def __init__(self, switch: PortSwitch) -> None:
        super().__init__()
        self.switch = switch

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return super().handle_request(self.switch.route(request))


class AsyncSwitch(httpx.AsyncHTTPTransport):
    def __init__(self, switch: PortSwitch) -> None:
        super().__init__()
        self.switch = switch

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await super().handle_async_request(self.switch.route(request))


Call = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    """`call(method, *args, switch=None, **client_kwargs_and_method_kwargs)` on a fresh client.

    Client options go in `client=`; everything else goes to the method.
    """
    flavour = request.param

    def run(
        method: str,
        *args: Any,
        client: dict[str, Any],
        switch: PortSwitch | None = None,
        **kwargs: Any,
    ) -> Any:
        options = {"api_key": KEY, "retry": FAST, **client}
        if flavour == "sync":
            if switch:
                options["transport"] = SyncSwitch(switch)
            with Client(**options) as c:
                result = getattr(c, method)(*args, **kwargs)
                return list(result) if method == "list_all" else result

        async def go() -> Any:
            if switch:
                options["transport"] = AsyncSwitch(switch)
            async with AsyncClient(**options) as c:
                if method == "list_all":
                    return [item async for item in c.list_all(*args, **kwargs)]
                return await getattr(c, method)(*args, **kwargs)

        return anyio.run(go)

    return run


# --- submit: sent once unless certainly refused -------------------------------------------


def test_submit_sends_the_async_header_key_and_body(server: ScriptedServer, call: Call) -> None:
    server.script = [ok_submit("t-9")]
    answer = call("submit", parse_job(OUTPAINT), client={"base_url": server.base_url})
    assert answer.output.task_id == "t-9"
    assert answer.output.task_status is TaskStatus.PENDING
    [seen] = server.seen
    assert (seen.method, seen.path) == (
        "POST",
        "/api/v1/services/aigc/video-generation/video-synthesis",
    )
    assert seen.headers["x-dashscope-async"] == "enable"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert "x-dashscope-ossresourceresolve" not in seen.headers
    assert seen.body == OUTPAINT


def test_submit_retries_a_429_after_its_retry_after(server: ScriptedServer, call: Call) -> None:
    server.script = [error(429, "Throttling.RateQuota", **{"Retry-After": "0"}), ok_submit()]
    answer = call("submit", OUTPAINT, client={"base_url": server.base_url})
    assert answer.output.task_id == "t-1"
    assert [s.method for s in server.seen] == ["POST", "POST"]
    assert server.seen[0].body == server.seen[1].body == OUTPAINT


def test_submit_gives_up_after_the_policy_attempts_of_429(
    server: ScriptedServer, call: Call
) -> None:
    server.script = [error(429, "Throttling.RateQuota")]
    with pytest.raises(DashScopeError) as caught:
        call("submit", OUTPAINT, client={"base_url": server.base_url})
    assert caught.value.status == 429
    assert caught.value.code == "Throttling.RateQuota"
    assert len(server.seen) == FAST.attempts


@pytest.mark.parametrize(
    "answer",
    [
        error(500, "InternalError"),
        error(503, "ServiceUnavailable"),
        error(504),
        error(408, "RequestTimeOut"),
    ],
    ids=["500", "503", "504", "408"],
)
def test_submit_is_never_resent_after_a_server_error(
    server: ScriptedServer, call: Call, answer: Step
) -> None:
    """The service may have created (and will bill) the task: raise, do not send twice."""
    server.script = [answer, ok_submit()]
    with pytest.raises(DashScopeError) as caught:
        call("submit", OUTPAINT, client={"base_url": server.base_url})
    assert caught.value.status == answer.status
    assert len(server.seen) == 1


def test_submit_timeout_is_not_resent(server: ScriptedServer, call: Call) -> None:
    server.script = [Step(hang=1.5, body=ok_submit().body), ok_submit("t-2")]
    with pytest.raises(DashScopeTransportError) as caught:
        call("submit", OUTPAINT, client={"base_url": server.base_url, "submit_timeout": 0.3})
    assert caught.value.sent is True
    assert "may have reached" in str(caught.value)
    assert len(server.seen) == 1


def test_submit_tells_its_caller_before_each_request_leaves(
    server: ScriptedServer, call: Call
) -> None:
    """The ledger marks the row `sending` there; a throttled submit is sent again, and
    the caller hears of each request; raising there keeps the request home."""
    server.script = [error(429, "Throttling.RateQuota", **{"Retry-After": "0"}), ok_submit("t-4")]
    sends: list[int] = []
    answer = call(
        "submit",
        OUTPAINT,
        client={"base_url": server.base_url},
        before_send=lambda: sends.append(len(server.seen)),
    )
    assert (answer.output.task_id, sends) == ("t-4", [0, 1])

    def refuse() -> None:
        raise RuntimeError("the row was taken over")

    with pytest.raises(RuntimeError, match="taken over"):
        call("submit", OUTPAINT, client={"base_url": server.base_url}, before_send=refuse)
    assert len(server.seen) == 2


def test_the_submit_window_is_the_sum_of_the_submit_timeouts() -> None:
    assert Client(api_key=KEY).submit_window == 30 + 10 + 10 + 10
    assert Client(api_key=KEY, submit_timeout=2).submit_window == 8


def test_submit_dropped_connection_is_not_resent(server: ScriptedServer, call: Call) -> None:
    server.script = [Step(drop=True), ok_submit("t-2")]
    with pytest.raises(DashScopeTransportError) as caught:
        call("submit", OUTPAINT, client={"base_url": server.base_url})
    assert caught.value.sent is True
    assert len(server.seen) == 1


def test_submit_refused_connection_is_resent(server: ScriptedServer, call: Call) -> None:
    server.script = [ok_submit("t-3")]
    switch = PortSwitch(refusals=2)
    answer = call("submit", OUTPAINT, client={"base_url": server.base_url}, switch=switch)
    assert answer.output.task_id == "t-3"
    assert switch.calls == 3
    assert len(server.seen) == 1


def test_a_refused_connection_raises_not_sent_after_every_attempt(call: Call) -> None:
    switch = PortSwitch(refusals=99)
    with pytest.raises(DashScopeTransportError) as caught:
        call("submit", OUTPAINT, client={"base_url": "http://127.0.0.1:9/api/v1"}, switch=switch)
    assert caught.value.sent is False
    assert "was not sent" in str(caught.value)
    assert switch.calls == FAST.attempts
    assert not isinstance(caught.value.__cause__, httpx.HTTPError)


def test_submit_refuses_a_bad_body_before_sending(server: ScriptedServer, call: Call) -> None:
    bad = {**UNSET_MODEL, "parameters": {"top_scale": 2.5}}
    with pytest.raises(JobInvalid, match=r"parameters\.top_scale"):
        call("submit", bad, client={"base_url": server.base_url})
    assert server.seen == []


# --- model, region, workspace, OSS headers --------------------------------------------------


def test_an_unset_model_follows_the_region(server: ScriptedServer, call: Call) -> None:
    server.script = [ok_submit()]
    call(
        "submit", parse_job(UNSET_MODEL), client={"base_url": server.base_url, "region": "beijing"}
    )
    assert server.seen[0].body["model"] == "wanx2.1-vace-plus"


def test_an_explicit_model_of_the_other_region_is_refused(
    server: ScriptedServer, call: Call
) -> None:
    with pytest.raises(ConfigError, match="one region"):
        call(
            "submit", parse_job(OUTPAINT), client={"base_url": server.base_url, "region": "beijing"}
        )
    assert server.seen == []


def test_workspace_header_and_oss_resolution(server: ScriptedServer, call: Call) -> None:
    server.script = [ok_submit()]
    oss = {**UNSET_MODEL, "input": {**OUTPAINT["input"], "video_url": "oss://dir/v.mp4"}}
    call("submit", oss, client={"base_url": server.base_url, "workspace_id": "ws-1"})
    call("submit", OUTPAINT, client={"base_url": server.base_url}, oss_resolve=True)
    call("submit", OUTPAINT, client={"base_url": server.base_url}, oss_resolve=False)
    first, forced, plain = (s.headers for s in server.seen)
    assert first["x-dashscope-workspace"] == "ws-1"
    assert first["x-dashscope-ossresourceresolve"] == "enable"
    assert forced["x-dashscope-ossresourceresolve"] == "enable"
    assert "x-dashscope-ossresourceresolve" not in plain
    assert "x-dashscope-workspace" not in plain


def test_key_and_base_url_come_from_the_sdk_variables(
    server: ScriptedServer, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-from-env")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", server.base_url)
    server.script = [task("RUNNING")]
    call("get", "t-1", client={"api_key": None})
    assert server.seen[0].headers["authorization"] == "Bearer sk-from-env"


def test_a_client_without_arguments_follows_the_sdk_variables(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-all-from-env")
    monkeypatch.setenv("DASHSCOPE_REGION", "beijing")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", server.base_url)
    monkeypatch.setenv("DASHSCOPE_WORKSPACE_ID", "ws-from-env")
    server.script = [ok_submit()]
    with Client() as client:
        client.submit(UNSET_MODEL)
    assert AsyncClient().endpoint == client.endpoint
    (sent,) = server.seen
    assert sent.headers["authorization"] == "Bearer sk-all-from-env"
    assert sent.headers["x-dashscope-workspace"] == "ws-from-env"
    assert sent.body["model"] == "wanx2.1-vace-plus"  # Beijing's name for the model


def test_no_key_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="DASHSCOPE_API_KEY"):
        Client(base_url="http://127.0.0.1:9/api/v1")
    with pytest.raises(ConfigError, match="DASHSCOPE_API_KEY"):
        AsyncClient(api_key="  ", base_url="http://127.0.0.1:9/api/v1")


def test_from_settings(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaceflow.settings import Settings

    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-settings")
    monkeypatch.setenv("DASHSCOPE_REGION", "beijing")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", server.base_url)
    server.script = [task("RUNNING")]
    with Client.from_settings(Settings()) as client:
        assert client.endpoint.model == "wanx2.1-vace-plus"
        assert client.endpoint.base_url == server.base_url
        client.get("t-1")
    assert server.seen[0].headers["authorization"] == "Bearer sk-settings"


# --- reads ------------------------------------------------------------------------------------


def test_one_client_keeps_one_connection(server: ScriptedServer) -> None:
    server.script = [task("RUNNING")]
    with Client(KEY, base_url=server.base_url) as client:
        for _ in range(3):
            client.get("t-1")

    async def three_gets() -> None:
        async with AsyncClient(KEY, base_url=server.base_url) as client:
            for _ in range(3):
                await client.get("t-1")

    anyio.run(three_gets)
    sync_peers, async_peers = {s.peer for s in server.seen[:3]}, {s.peer for s in server.seen[3:]}
    assert len(sync_peers) == 1
    assert len(async_peers) == 1


def test_get_retries_503_twice_then_answers(server: ScriptedServer, call: Call) -> None:
    server.script = [
        error(503, "ServiceUnavailable"),
        error(503),
        task("SUCCEEDED", video_url="http://v/o.mp4"),
    ]
    answer = call("get", "t-1", client={"base_url": server.base_url})
    assert answer.status is TaskStatus.SUCCEEDED
    assert answer.output.video_url == "http://v/o.mp4"
    assert [s.path for s in server.seen] == ["/api/v1/tasks/t-1"] * 3


def test_get_retries_a_timeout_and_a_dropped_connection(server: ScriptedServer, call: Call) -> None:
    server.script = [Step(hang=1.0), Step(drop=True), task("RUNNING")]
    answer = call("get", "t-1", client={"base_url": server.base_url, "timeout": 0.3})
    assert answer.status is TaskStatus.RUNNING
    assert len(server.seen) == 3


def test_get_raises_the_last_error_when_attempts_run_out(
    server: ScriptedServer, call: Call
) -> None:
    server.script = [error(503, "ServiceUnavailable", message="busy")]
    with pytest.raises(DashScopeError) as caught:
        call("get", "t-1", client={"base_url": server.base_url})
    err = caught.value
    assert (err.status, err.code, err.message, err.request_id) == (
        503,
        "ServiceUnavailable",
        "busy",
        "rq-503",
    )
    assert len(server.seen) == FAST.attempts


def test_a_final_error_is_not_retried(server: ScriptedServer, call: Call) -> None:
    server.script = [error(401, "InvalidApiKey", message="Invalid API-key provided.")]
    with pytest.raises(DashScopeError) as caught:
        call("get", "t-1", client={"base_url": server.base_url})
    assert caught.value.code == "InvalidApiKey"
    assert caught.value.status == 401
    assert len(server.seen) == 1


def test_a_proxy_page_becomes_a_dashscope_error(server: ScriptedServer, call: Call) -> None:
    server.script = [Step(status=502, body="<html>Bad Gateway</html>")]
    with pytest.raises(DashScopeError) as caught:
        call("get", "t-1", client={"base_url": server.base_url})
    assert caught.value.status == 502
    assert "Bad Gateway" in caught.value.message
    assert len(server.seen) == FAST.attempts


def test_an_unknown_status_reads_as_unknown(server: ScriptedServer, call: Call) -> None:
    server.script = [task("SOMETHING_NEW")]
    assert call("get", "t-1", client={"base_url": server.base_url}).status is TaskStatus.UNKNOWN


def test_list_sends_the_filters_and_pages_through(server: ScriptedServer, call: Call) -> None:
    def page(no: int, ids: list[str]) -> Step:
        rows = [
            {"task_id": i, "status": "SUCCEEDED", "model_name": "wan2.1-vace-plus"} for i in ids
        ]
        return Step(
            body={
                "request_id": "rq-l",
                "data": rows,
                "total": 5,
                "total_page": 3,
                "page_no": no,
                "page_size": 2,
            }
        )

    server.script = [page(1, ["a", "b"]), page(2, ["c", "d"]), page(3, ["e"])]
    items = call(
        "list_all",
        client={"base_url": server.base_url},
        status="SUCCEEDED",
        start="20250101000000",
        end="20250101120000",
        page_size=2,
    )
    assert [i.task_id for i in items] == ["a", "b", "c", "d", "e"]
    queries = [httpx.URL(s.path).params for s in server.seen]
    assert [q["page_no"] for q in queries] == ["1", "2", "3"]
    assert queries[0]["status"] == "SUCCEEDED"
    assert queries[0]["page_size"] == "2"
    assert queries[0]["start_time"] == "20250101000000"
    assert queries[0]["end_time"] == "20250101120000"


def test_upload_policy(server: ScriptedServer, call: Call) -> None:
    server.script = [
        Step(
            body={
                "request_id": "rq-u",
                "data": {
                    "policy": "cG9saWN5",
                    "signature": "c2ln-secret",
                    "upload_dir": "dashscope-instant/abc",
                    "upload_host": "https://bucket.oss.example",
                    "expire_in_seconds": 300,
                    "max_file_size_mb": 100,
                    "capacity_limit_mb": 999,
                    "oss_access_key_id": "LTAI-id",
                    "x_oss_object_acl": "private",
                    "x_oss_forbid_overwrite": "true",
                },
            }
        )
    ]
    policy: UploadPolicy = call("get_upload_policy", client={"base_url": server.base_url})
    seen = httpx.URL(server.seen[0].path)
    assert seen.path == "/api/v1/uploads"
    assert dict(seen.params) == {"action": "getPolicy", "model": "wan2.1-vace-plus"}
    assert policy.oss_url("in.mp4") == "oss://dashscope-instant/abc/in.mp4"
    form = policy.form_fields("in.mp4")
    assert form["key"] == "dashscope-instant/abc/in.mp4"
    assert form["Signature"] == "c2ln-secret"
    assert form["x-oss-content-type"] == "video/mp4"
    assert "c2ln-secret" not in repr(policy)


def test_cancel_is_final_on_4xx_and_retried_on_5xx(server: ScriptedServer, call: Call) -> None:
    server.script = [error(400, "UnsupportedOperation", message="not PENDING")]
    with pytest.raises(DashScopeError, match="UnsupportedOperation"):
        call("cancel", "t-1", client={"base_url": server.base_url})
    assert len(server.seen) == 1
    server.seen.clear()
    server.script = [error(503), Step(body={"request_id": "rq-c"})]
    assert call("cancel", "t-1", client={"base_url": server.base_url}) is None
    assert [(s.method, s.path) for s in server.seen] == [("POST", "/api/v1/tasks/t-1/cancel")] * 2


# --- secrets and logs -------------------------------------------------------------------------


def test_the_key_never_shows(
    server: ScriptedServer, call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script = [
        ok_submit(),
        task("SUCCEEDED", video_url="http://oss.example/out.mp4?Expires=1&Signature=SIGNED"),
        error(401, "InvalidApiKey", message=f"Invalid API-key provided: {KEY}"),
    ]
    call("submit", OUTPAINT, client={"base_url": server.base_url})
    call("get", "t-1", client={"base_url": server.base_url})
    with pytest.raises(DashScopeError) as caught:
        call("get", "t-1", client={"base_url": server.base_url})
    with pytest.raises(DashScopeTransportError) as unsent:
        call("get", "t-1", client={"base_url": "http://127.0.0.1:9/api/v1"}, switch=PortSwitch(99))
    client = Client(KEY, base_url=server.base_url)
    texts = [repr(client), str(caught.value), repr(caught.value), str(unsent.value), caplog.text]
    client.close()
    assert all(KEY not in t for t in texts)
    assert "***" in str(caught.value)
    assert "http://oss.example/out.mp4" in caplog.text
    assert "SIGNED" not in caplog.text
    assert "request_id=rq-s" in caplog.text

"""A loopback front for a real server that fails chosen requests and counts them all.

Retries are tested by counting what reaches a server. `FlakyFront` stands before one (the
emulator's file host, SeaweedFS, a file server): every request is recorded by method
and path, those a rule picks are answered 503 without reaching the server (or reach it
and lose its answer), and every other one is forwarded as it came, Host header
included, so S3 signatures still hold.

`flaky_front(target)` makes one for a test; `target` may be set later (`front.target`),
for a server that must be told the front's address before it starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

FlakyFrontFactory = Callable[..., "FlakyFront"]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


@dataclass
class _Rule:
    method: str
    prefix: str
    left: int | None
    """Requests still to fail; None: every one."""
    answer_lost: bool


class FlakyFront:
    def __init__(self, target: str | None = None) -> None:
        self.target = target
        self.seen: list[tuple[str, str]] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60, trust_env=False)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                body = self._body()
                rule = front._take(self.command, self.path)
                if rule is not None and not rule.answer_lost:
                    self._answer(503, {}, b"")
                    return
                upstream = front._forward(self.command, self.path, dict(self.headers), body)
                if rule is not None:  # it reached the server; its answer is lost
                    self._answer(503, {}, b"")
                    return
                self._answer(*upstream)

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    data = b""
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return data
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                headers = dict(headers)
                length = headers.pop("content-length", None)  # a HEAD's: the object's size
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", length or str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def fail(
        self, method: str, prefix: str, *, times: int | None = None, answer_lost: bool = False
    ) -> None:
        """Answer 503 to the next `times` `method` requests under `prefix` (None: all);
        `answer_lost`: let each reach the server first."""
        with self._lock:
            self._rules.append(_Rule(method, prefix, times, answer_lost))

    def heal(self) -> None:
        """Fail nothing from now on."""
        with self._lock:
            self._rules.clear()

    def count(self, method: str, prefix: str) -> int:
        """Requests seen so far, failed or forwarded."""
        with self._lock:
            return sum(1 for m, p in self.seen if m == method and p.startswith(prefix))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._http.close()

    def _take(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            self.seen.append((method, path))
            for rule in self._rules:
                if rule.method == method and path.startswith(rule.prefix) and rule.left != 0:
                    if rule.left is not None:
                        rule.left -= 1
                    return rule
            return None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.target, "the front has no target yet"
        sent = {k: v for k, v in headers.items() if k.lower() not in ("expect", *_HOP_BY_HOP)}
        request = self._http.build_request(method, self.target + path, headers=sent, content=body)
        response = self._http.send(request, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        if method == "HEAD" and "content-length" in response.headers:
            kept["content-length"] = response.headers["content-length"]
        return response.status_code, kept, raw


@pytest.fixture
def flaky_front() -> Iterator[FlakyFrontFactory]:
    """Factory: `flaky_front(target=None)` -> a running FlakyFront, closed after the test."""
    fronts: list[FlakyFront] = []

    def make(target: str | None = None) -> FlakyFront:
        front = FlakyFront(target)
        fronts.append(front)
        return front

    yield make
    for front in fronts:
        front.close()

"""What a hostile job reaches for: an internal media server on loopback that counts
every request it gets (it must get none), a trusted host that redirects to it, and a
DNS name that resolves to it.

Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.media import MediaFactory


@dataclass
class Server:
    """A real HTTP server on `host`; `requests` holds the path of every request."""

    host: str
    handler: Callable[[http.server.BaseHTTPRequestHandler], None]
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.handler(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self.port = int(self._httpd.server_address[1])
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/secret.mp4", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def internal_server(media: MediaFactory) -> Iterator[Server]:
    """An internal media server on 127.0.0.1 serving a real clip for any path: had a
    hostile job reached it, the job would have run (and paid)."""
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="internal").read_bytes()

    def serve(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "video/mp4")
        request.send_header("Content-Length", str(len(clip)))
        request.end_headers()
        request.wfile.write(clip)

    server = Server("127.0.0.1", serve)
    yield server
    server.close()


@pytest.fixture
def redirector(internal_server: Server) -> Iterator[Server]:
    """A host on 127.0.0.2 (a team would name it in VACEFLOW_ALLOWED_HOSTS) whose every
    answer redirects to the internal server."""

    def redirect(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(302)
        request.send_header("Location", internal_server.url())
        request.send_header("Content-Length", "0")
        request.end_headers()

    server = Server("127.0.0.2", redirect)
    yield server
    server.close()


HOSTS = Path("/etc/hosts")


@pytest.fixture
def loopback_name() -> Iterator[str | None]:
    """A DNS name added for the test that resolves to 127.0.0.1; None where the machine
    does not let the test add one (/etc/hosts not writable)."""
    name = f"media-{secrets.token_hex(4)}.vaceflow-test"
    try:
        ends_a_line = HOSTS.read_text().endswith("\n")
        with HOSTS.open("a") as hosts:
            hosts.write(f"{'' if ends_a_line else chr(10)}127.0.0.1 {name}\n")
    except OSError:
        yield None
        return
    try:
        yield name
    finally:
        kept = [entry for entry in HOSTS.read_text().splitlines(True) if name not in entry]
        HOSTS.write_text("".join(kept))  # in place: /etc/hosts may be a bind mount

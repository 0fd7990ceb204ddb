"""Shared fixtures: media made by ffmpeg, a loopback file server, and the emulator.

Everything runs as a real process or a real socket on 127.0.0.1; nothing is faked.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.media import MediaFactory

pytest_plugins = [
    "tests.fixtures_emulator",
    "tests.fixtures_s3",
    "tests.fixtures_team",
    "tests.fixtures_flows",
    "tests.fixtures_flaky",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    """Makes test media with ffmpeg (testsrc2, sine), cached for the session."""
    return MediaFactory(tmp_path_factory.mktemp("media"))


class FileServer:
    """Serves a folder over HTTP on loopback; `url(path)` gives a file's URL, `gets`
    counts the GETs of each path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gets: Counter[str] = Counter()
        handler = _quiet_handler(root, self.gets)
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: Path | str) -> str:
        rel = Path(path).resolve().relative_to(self.root.resolve())
        return f"http://127.0.0.1:{self.port}/{rel.as_posix()}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _quiet_handler(root: Path, gets: Counter[str]) -> Callable[..., Any]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            gets[self.path.partition("?")[0]] += 1
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def file_server(media: MediaFactory) -> Iterator[FileServer]:
    """Serves the session's media folder, as a public bucket would."""
    server = FileServer(media.root)
    yield server
    server.close()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (`--dist loadgroup`) the tests of the team stack share one worker: one
    `dev up --team` for them all, and never two team stacks on the machine at once."""
    for item in items:
        if "team_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("team"))

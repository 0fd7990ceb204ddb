"""Downloading results (`download_video`) and contact sheets (`make_thumbnail`) on real files."""

from __future__ import annotations

import hashlib
import http.server
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import TEST_KEY, StartEmulator
from tests.media import MediaFactory
from vaceflow.client import Client, RetryPolicy
from vaceflow.collect import download_video, link_expiry
from vaceflow.errors import DownloadFailed, MediaError, ResultExpired
from vaceflow.media.probe import probe
from vaceflow.ratebudget import LocalRateBudget
from vaceflow.responses import TaskStatus
from vaceflow.thumbnail import make_thumbnail, sheet_size
from vaceflow.waiting import TaskWatcher

QUICK = RetryPolicy(attempts=3, base=0.01, cap=0.05)


class FileHost:
    """A loopback file host that records each request's headers and misbehaves on demand.

    `mode`: "ok" serves the file; "truncate" announces the full length and closes
    halfway; "flaky" answers 503 first, then serves; "forbidden" answers 403.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.mode = "ok"
        self.requests: list[dict[str, str]] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append({k.lower(): v for k, v in self.headers.items()})
                mode = host.mode
                if (mode == "flaky" and len(host.requests) == 1) or mode == "forbidden":
                    self.send_response(503 if mode == "flaky" else 403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(host.body)))
                self.end_headers()
                sent = host.body[: len(host.body) // 2] if mode == "truncate" else host.body
                self.wfile.write(sent)
                self.wfile.flush()
                if mode == "truncate":
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/out/result.mp4"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def result_file(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=30, seconds=2.0, name="result")


@pytest.fixture
def host(result_file: Path) -> Iterator[FileHost]:
    server = FileHost(result_file.read_bytes())
    yield server
    server.close()


@pytest.fixture(scope="module")
def clip(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=16, seconds=1.0)


def emulator_result(
    server: Any, file_server: FileServer, clip: Path, *, ttl_poll: bool = False
) -> str:
    """Submit a small job to the emulator and return its result link."""
    job = {
        "input": {
            "function": "video_repainting",
            "prompt": "a fox",
            "video_url": file_server.url(clip),
        },
        "parameters": {"control_condition": "depth"},
    }
    with Client(TEST_KEY, base_url=server.base_url, budget=LocalRateBudget()) as client:
        task_id = client.submit(job).output.task_id
        if not ttl_poll:
            with TaskWatcher(client) as watcher:
                task = watcher.wait(task_id, expected=0.3)
        else:  # a link that lives seconds: poll quickly before the task id expires too
            deadline = time.monotonic() + 30
            while (task := client.get(task_id)).status.is_waiting:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    assert task.status is TaskStatus.SUCCEEDED
    assert task.output.video_url
    return task.output.video_url


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_downloads_and_verifies_an_emulator_result(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path, tmp_path: Path
) -> None:
    url = emulator_result(start_emulator(), file_server, clip)
    got = download_video(url, tmp_path / "results")
    info = probe(got.path)
    assert info.is_mp4
    assert info.codec == "h264"
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert (info.width, info.height) == (320, 240)
    assert got.sha256 == hashlib.sha256(got.path.read_bytes()).hexdigest()
    assert got.size_bytes == got.path.stat().st_size
    assert got.info.path == str(got.path)
    assert leftovers(tmp_path / "results") == [got.path.name]
    assert got.path.name.endswith(".mp4")


def test_no_auth_header_reaches_the_file_host_and_no_signature_the_log(
    host: FileHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-must-not-travel")
    with caplog.at_level(logging.DEBUG):
        got = download_video(host.url + "?Expires=9999999999&Signature=SECRETSIG", tmp_path / "out")
    assert got.path.read_bytes() == host.body
    assert len(host.requests) == 1
    assert "authorization" not in host.requests[0]
    assert "sk-must-not-travel" not in str(host.requests[0])
    assert "result.mp4" in caplog.text  # httpx and vaceflow logged the request...
    assert "SECRETSIG" not in caplog.text  # ...without the link's signature


def test_a_truncated_body_is_retried_then_fails_leaving_no_file(
    host: FileHost, tmp_path: Path
) -> None:
    host.mode = "truncate"
    with pytest.raises(DownloadFailed) as caught:
        download_video(host.url, tmp_path, retry=QUICK)
    assert not isinstance(caught.value, ResultExpired)
    assert "3 attempts" in str(caught.value)
    assert len(host.requests) == 3
    assert leftovers(tmp_path) == []


def test_a_transient_error_is_retried(host: FileHost, tmp_path: Path) -> None:
    host.mode = "flaky"
    got = download_video(host.url, tmp_path, retry=QUICK, name="kept.mp4")
    assert len(host.requests) == 2
    assert got.path == tmp_path / "kept.mp4"
    assert leftovers(tmp_path) == ["kept.mp4"]


def test_a_corrupt_file_is_refused_and_deleted(
    media: MediaFactory, result_file: Path, tmp_path: Path
) -> None:
    broken = FileHost(media.truncated(result_file, keep=3000).read_bytes())
    try:
        with pytest.raises(DownloadFailed, match="not a readable video"):
            download_video(broken.url, tmp_path, retry=QUICK)
        assert len(broken.requests) == 1  # complete but corrupt: another try cannot help
    finally:
        broken.close()
    assert leftovers(tmp_path) == []


def test_a_link_whose_expires_has_passed_is_not_even_fetched(
    host: FileHost, tmp_path: Path
) -> None:
    with pytest.raises(ResultExpired, match="expired at 1970"):
        download_video(host.url + "?Expires=1000&Signature=abc", tmp_path)
    assert host.requests == []
    assert leftovers(tmp_path) == []


def test_a_link_refused_with_403_is_reported_expired(host: FileHost, tmp_path: Path) -> None:
    host.mode = "forbidden"
    with pytest.raises(ResultExpired, match="HTTP 403") as caught:
        download_video(host.url + "?Expires=9999999999&Signature=SECRETSIG", tmp_path)
    assert caught.value.status == 403
    assert "SECRETSIG" not in str(caught.value)
    assert leftovers(tmp_path) == []


def test_an_expired_emulator_link_is_reported_expired(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path, tmp_path: Path
) -> None:
    server = start_emulator(url_ttl=3)
    url = emulator_result(server, file_server, clip, ttl_poll=True)
    expires = link_expiry(url)
    assert expires is not None
    # Past its expiry the emulator's OSS refuses the link, whatever our clock says...
    httpx.post(server.root_url + "/_emulator/clock", params={"advance": 10}).raise_for_status()
    with pytest.raises(ResultExpired) as refused:
        download_video(url, tmp_path, now=lambda: expires - 1)
    assert refused.value.status == 403
    # ...and a link whose Expires has passed by our clock is not even requested.
    with pytest.raises(ResultExpired, match="expired at"):
        download_video(url, tmp_path, now=lambda: expires + 1)
    assert leftovers(tmp_path) == []


def tiles_of(png: Path, columns: int, rows: int, tile: tuple[int, int]) -> list[np.ndarray]:
    with av.open(str(png)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    w, h = tile
    return [
        image[6 + r * (h + 6) : 6 + r * (h + 6) + h, 6 + c * (w + 6) : 6 + c * (w + 6) + w]
        for r in range(rows)
        for c in range(columns)
    ]


@pytest.mark.parametrize(("frames", "columns"), [(6, 3), (4, 2)])
def test_thumbnail_is_a_png_grid_of_distinct_labelled_frames(
    media: MediaFactory, tmp_path: Path, frames: int, columns: int
) -> None:
    video = media.video(width=640, height=360, fps=24, seconds=3.0)
    sheet = make_thumbnail(video, tmp_path / "sheet.png", frames=frames, columns=columns)
    info = probe(sheet.path)
    assert info.is_image
    assert info.image_format == "png"
    assert (info.width, info.height) == sheet_size(640, 360, frames=frames, columns=columns)
    assert (sheet.width, sheet.height) == (info.width, info.height)
    assert list(sheet.times) == sorted(sheet.times)
    assert 0 <= sheet.times[0] < sheet.times[-1] <= 3.0
    tiles = tiles_of(sheet.path, columns, frames // columns, (320, 180))
    for a, b in itertools.pairwise(tiles):
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 1  # frames differ: it moves
    for tile in tiles:
        corner = tile[-14:, :40]  # the time label: white glyphs on black
        assert (corner == 255).all(axis=-1).any()
        assert (corner == 0).all(axis=-1).any()


def test_thumbnail_of_a_non_video_is_a_media_error(media: MediaFactory, tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        make_thumbnail(media.text("notes.txt"), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()

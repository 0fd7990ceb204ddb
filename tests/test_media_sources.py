"""Inputs from a path, a loopback HTTP server and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FileServer
from tests.fixtures_flaky import FlakyFrontFactory
from tests.fixtures_s3 import S3Server
from tests.media import MediaFactory
from vaceflow.errors import MediaError
from vaceflow.media.sources import FETCH_RETRY, Sources
from vaceflow.redact import redact_url
from vaceflow.storage.s3 import make_s3_client


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a stalled origin."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/clip.mp4"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_local_path_is_used_in_place(media: MediaFactory, tmp_path: Path) -> None:
    src = media.video(seconds=1)
    assert Sources(tmp_path).fetch(str(src), name="video") == src.resolve()
    assert Sources(tmp_path).fetch(src.as_uri(), name="video") == src.resolve()


def test_missing_local_file_names_the_input(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="mask_image") as caught:
        Sources(tmp_path).fetch(str(tmp_path / "nope.png"), name="mask_image")
    assert caught.value.input_name == "mask_image"


def test_http_input_is_downloaded_whole(
    media: MediaFactory, file_server: FileServer, tmp_path: Path
) -> None:
    src = media.video(seconds=1)
    got = Sources(tmp_path / "work").fetch(file_server.url(src), name="video")
    assert got.is_relative_to(tmp_path / "work")
    assert got.suffix == ".mp4"
    assert digest(got) == digest(src)


def test_http_404_is_a_clear_error_without_the_query(
    file_server: FileServer, media: MediaFactory, tmp_path: Path
) -> None:
    url = file_server.url(media.root) + "/missing.mp4?X-Amz-Signature=s3cr3t"
    with pytest.raises(MediaError) as caught:
        Sources(tmp_path).fetch(url, name="first_clip")
    message = str(caught.value)
    assert "first_clip" in message
    assert "404" in message
    assert "s3cr3t" not in message
    assert "s3cr3t" not in redact_url(url)


def test_oversize_download_is_refused_and_nothing_is_left(
    media: MediaFactory, file_server: FileServer, tmp_path: Path
) -> None:
    src = media.video(seconds=1)
    work = tmp_path / "work"
    with pytest.raises(MediaError, match="video") as caught:
        Sources(work, max_bytes=src.stat().st_size - 1).fetch(file_server.url(src), name="video")
    assert "MB" in str(caught.value)
    assert [p for p in work.rglob("*") if p.is_file()] == []


def no_pause(_seconds: float) -> None:
    """The retry's delays are `RetryPolicy`'s (test_retry); here only the tries count."""


def test_an_origin_failing_for_a_moment_is_fetched_again_and_a_missing_file_once(
    media: MediaFactory, file_server: FileServer, flaky_front: FlakyFrontFactory, tmp_path: Path
) -> None:
    src = media.video(seconds=1)
    front = flaky_front(f"http://127.0.0.1:{file_server.port}")
    path = file_server.url(src).removeprefix(f"http://127.0.0.1:{file_server.port}")
    front.fail("GET", path, times=FETCH_RETRY.attempts - 1)
    got = Sources(tmp_path, sleep=no_pause).fetch(front.url + path, name="video")
    assert digest(got) == digest(src)
    assert front.count("GET", path) == FETCH_RETRY.attempts
    with pytest.raises(MediaError, match="404"):
        Sources(tmp_path, sleep=no_pause).fetch(front.url + "/missing.mp4", name="video")
    assert front.count("GET", "/missing.mp4") == 1  # another try cannot help


def test_an_origin_that_keeps_failing_is_tried_fetch_retry_times(
    media: MediaFactory, file_server: FileServer, flaky_front: FlakyFrontFactory, tmp_path: Path
) -> None:
    src = media.video(seconds=1)
    front = flaky_front(f"http://127.0.0.1:{file_server.port}")
    front.fail("GET", "/")
    path = file_server.url(src).removeprefix(f"http://127.0.0.1:{file_server.port}")
    work = tmp_path / "work"
    with pytest.raises(MediaError, match="HTTP 503") as caught:
        Sources(work, sleep=no_pause).fetch(front.url + path + "?sig=s3cr3t", name="video")
    assert front.count("GET", path) == FETCH_RETRY.attempts
    assert f"({FETCH_RETRY.attempts} attempts)" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert [p for p in work.rglob("*") if p.is_file()] == []


def test_stalled_download_times_out(silent_server: str, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="timed out") as caught:
        Sources(tmp_path, timeout=0.5).fetch(silent_server, name="video")
    assert caught.value.input_name == "video"


def test_s3_input_is_downloaded(s3_server: S3Server, media: MediaFactory, tmp_path: Path) -> None:
    src = media.image()
    key = f"inputs-test/{src.name}"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=src.read_bytes())
    settings = s3_server.settings()
    sources = Sources(tmp_path, s3_client=lambda: make_s3_client(settings, max_attempts=1))
    got = sources.fetch(f"s3://{s3_server.bucket}/{key}", name="ref_image")
    assert digest(got) == digest(src)
    assert got.suffix == ".png"
    with pytest.raises(MediaError, match=r"NoSuchKey|404"):
        sources.fetch(f"s3://{s3_server.bucket}/inputs-test/absent.png", name="ref_image")


def test_an_s3_input_is_tried_by_sources_alone(
    s3_server: S3Server,
    media: MediaFactory,
    flaky_front: FlakyFrontFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one layer that retries an s3:// input is `Sources`: the client it makes for
    them (`from_settings`) tries each call once, so a store that keeps failing sees
    FETCH_RETRY's tries and no more."""
    src = media.image()
    key = f"inputs-test/flaky-{src.name}"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=src.read_bytes())
    front = flaky_front(s3_server.endpoint)
    front.fail("GET", f"/{s3_server.bucket}/")
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path))
    sources = Sources.from_settings(s3_server.settings(s3_endpoint_url=front.url))
    with pytest.raises(MediaError, match=f"{FETCH_RETRY.attempts} attempts"):
        sources.fetch(f"s3://{s3_server.bucket}/{key}", name="ref_image")
    assert front.count("GET", f"/{s3_server.bucket}/") == FETCH_RETRY.attempts
    front.heal()
    assert digest(sources.fetch(f"s3://{s3_server.bucket}/{key}", name="ref_image")) == digest(src)


def test_runs_fetching_the_same_input_at_once_each_get_it_whole(
    media: MediaFactory, tmp_path: Path
) -> None:
    """Worker runs copy local inputs (they are read under a policy): the jobs of a batch
    that share an input copy it into the same folder at the same moment."""
    from vaceflow.trust import TrustPolicy

    src = media.video(seconds=1)
    policy = TrustPolicy(roots=(src.parent.resolve(),))
    results: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def fetch() -> None:
        start.wait(timeout=30)
        try:
            results.append(Sources(tmp_path, policy=policy).fetch(str(src), name="video"))
        except BaseException as exc:
            errors.append(exc)

    for _ in range(5):
        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert len(results) == 40
    assert {digest(p) for p in results} == {digest(src)}
    assert not list(tmp_path.rglob("*.part"))

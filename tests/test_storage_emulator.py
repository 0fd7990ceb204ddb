"""Staged inputs as the service meets them: the emulator fetches what staging produced.

Two paths: presigned URLs from SeaweedFS, and the provider's temporary storage
(`oss://` plus the resolve header). Each job must end SUCCEEDED with a real video.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.fixtures_emulator import TEST_KEY, StartEmulator, api_client, wait_final
from tests.fixtures_flaky import FlakyFrontFactory
from tests.fixtures_s3 import S3Server
from tests.media import MediaFactory
from vaceflow.client import Client
from vaceflow.emulator import EmulatorServer
from vaceflow.errors import DashScopeError, StorageError
from vaceflow.regions import resolve_endpoint
from vaceflow.settings import Settings
from vaceflow.storage import (
    OSS_RESOLVE_HEADER,
    DashScopeTempStager,
    S3Store,
    StagedInput,
    account_scope,
    check_fetchable,
    needs_oss_resolve,
    open_stager,
)
from vaceflow.storage.dashscope_temp import UPLOAD_RETRY

SUBMIT = "/services/aigc/video-generation/video-synthesis"


def reference_job(server: EmulatorServer, staged: StagedInput) -> dict[str, Any]:
    return {
        "model": server.config.model,
        "input": {
            "function": "image_reference",
            "prompt": "a test card drifts slowly to the left",
            "ref_images_url": [staged.url],
        },
        "parameters": {"obj_or_bg": ["obj"], "size": "1280*720"},
    }


def submit_and_wait(server: EmulatorServer, staged: StagedInput) -> dict[str, Any]:
    """Submit the way the flows will: guard first, the resolve header when needed."""
    endpoint = resolve_endpoint(base_url=server.base_url)
    check_fetchable(endpoint, [staged.url])
    headers = dict([OSS_RESOLVE_HEADER]) if needs_oss_resolve([staged]) else {}
    with api_client(server) as client:
        answer = client.post(SUBMIT, json=reference_job(server, staged), headers=headers)
        assert answer.status_code == 200, answer.text
        return wait_final(client, answer.json()["output"]["task_id"])


def assert_video(body: dict[str, Any]) -> None:
    assert body["output"]["task_status"] == "SUCCEEDED", body
    video = httpx.get(body["output"]["video_url"], timeout=30)
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"  # an MP4 came back


def test_emulator_fetches_a_presigned_seaweedfs_url(
    s3_server: S3Server, media: MediaFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    named = tmp_path / "女孩 photo.png"
    shutil.copy(media.image(width=640, height=480), named)
    with S3Store.from_settings(s3_server.settings()) as store:
        staged = store.stage(named)
    assert not staged.needs_oss_resolve
    assert_video(submit_and_wait(emulator, staged))


def test_an_expired_presigned_url_fails_the_job_as_invalid_url(
    s3_server: S3Server, media: MediaFactory, emulator: EmulatorServer
) -> None:
    with S3Store.from_settings(s3_server.settings()) as store:
        staged = store.stage(media.image(width=640, height=480))
        url, expires_at = store.url_for(staged.key, 1)
    expired = staged.model_copy(update={"url": url, "expires_at": expires_at})
    time.sleep(2.5)
    with api_client(emulator) as client:
        answer = client.post(SUBMIT, json=reference_job(emulator, expired))
        if answer.status_code == 200:  # accepted: the fetch fails when the task runs
            body = wait_final(client, answer.json()["output"]["task_id"])
            assert body["output"]["task_status"] == "FAILED"
            assert body["output"]["code"] == "InvalidURL"
        else:
            assert answer.json()["code"] == "InvalidURL"


class CountingHttp:
    """An httpx client that counts the form POSTs to the upload host."""

    def __init__(self) -> None:
        self.posts = 0
        self.client = httpx.Client(event_hooks={"request": [self._count]}, timeout=30)

    def _count(self, request: httpx.Request) -> None:
        if request.method == "POST":
            self.posts += 1


def temp_stager(
    server: EmulatorServer, records: Path, http: httpx.Client, *, min_remaining: float = 3600
) -> DashScopeTempStager:
    client = Client(api_key=TEST_KEY, base_url=server.base_url)
    return DashScopeTempStager(
        client.get_upload_policy,
        records=records,
        scope=account_scope(server.base_url, SecretStr(TEST_KEY)),
        min_remaining=min_remaining,
        http=http,
        on_close=client.close,
    )


def test_temporary_storage_job_succeeds_and_reuses_uploads(
    media: MediaFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    image = media.image(width=640, height=480)
    records = tmp_path / "uploads.json"
    counting = CountingHttp()
    with counting.client:
        with temp_stager(emulator, records, counting.client) as stager:
            staged = stager.stage(image)
        assert staged.url.startswith("oss://")
        assert staged.needs_oss_resolve
        assert counting.posts == 1

        with temp_stager(emulator, records, counting.client) as stager:  # a resumed job
            again = stager.stage(image)
        assert again.url == staged.url
        assert counting.posts == 1

        # A record that would expire before the job could end is uploaded again.
        with temp_stager(emulator, records, counting.client, min_remaining=49 * 3600) as later:
            assert later.stage(image).url.startswith("oss://")
        assert counting.posts == 2

    assert_video(submit_and_wait(emulator, staged))


def test_an_upload_is_tried_again_and_one_whose_answer_was_lost_counts_as_done(
    media: MediaFactory,
    start_emulator: StartEmulator,
    flaky_front: FlakyFrontFactory,
    tmp_path: Path,
) -> None:
    """The form POST retries in the stager, its one layer: a refused try is sent again,
    and a try that stored the file but lost its answer is not stored twice (the service
    answers the next one 409 FileAlreadyExists: the same bytes are there)."""
    front = flaky_front()
    server = start_emulator(public_url=front.url)  # the upload host is the front
    front.target = server.root_url
    front.fail("POST", "/_emulator/oss", times=1)
    front.fail("POST", "/_emulator/oss", times=1, answer_lost=True)
    image = media.image(width=640, height=480)
    with httpx.Client(timeout=30) as http, temp_stager(server, tmp_path / "up.json", http) as st:
        staged = st.stage(image)
    assert front.count("POST", "/_emulator/oss") == UPLOAD_RETRY.attempts == 3
    assert_video(submit_and_wait(server, staged))


def test_an_upload_host_that_keeps_failing_is_tried_upload_retry_times(
    media: MediaFactory,
    start_emulator: StartEmulator,
    flaky_front: FlakyFrontFactory,
    tmp_path: Path,
) -> None:
    front = flaky_front()
    server = start_emulator(public_url=front.url)
    front.target = server.root_url
    front.fail("POST", "/_emulator/oss")
    image = media.image(width=640, height=480)
    with (
        httpx.Client(timeout=30) as http,
        temp_stager(server, tmp_path / "up.json", http) as stager,
        pytest.raises(StorageError, match=f"{UPLOAD_RETRY.attempts} attempts") as caught,
    ):
        stager.stage(image)
    assert caught.value.retryable
    assert front.count("POST", "/_emulator/oss") == UPLOAD_RETRY.attempts
    assert not (tmp_path / "up.json").exists()  # nothing recorded as uploaded


def test_oss_url_without_the_resolve_header_is_refused(
    media: MediaFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    with httpx.Client(timeout=30) as http, temp_stager(emulator, tmp_path / "u.json", http) as st:
        staged = st.stage(media.image())
    with api_client(emulator) as client:
        answer = client.post(SUBMIT, json=reference_job(emulator, staged))
    assert answer.status_code == 400
    assert "OssResourceResolve" in answer.text


def test_settings_without_a_bucket_choose_temporary_storage(
    media: MediaFactory, emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path))
    settings = Settings(api_key=TEST_KEY, http_base_url=emulator.base_url)
    stager = open_stager(settings)
    try:
        assert isinstance(stager, DashScopeTempStager)
        staged = stager.stage(media.image(width=640, height=480))
    finally:
        stager.close()
    assert staged.needs_oss_resolve
    assert (tmp_path / "dashscope-uploads.json").is_file()
    assert TEST_KEY not in (tmp_path / "dashscope-uploads.json").read_text()


def test_a_wrong_key_stops_staging_with_a_dashscope_error(
    media: MediaFactory, emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path))
    settings = Settings(api_key="sk-wrong-key", http_base_url=emulator.base_url)
    with open_stager(settings) as stager, pytest.raises(DashScopeError) as caught:
        stager.stage(media.image(width=640, height=480))
    assert caught.value.status == 401
    assert "sk-wrong-key" not in str(caught.value)

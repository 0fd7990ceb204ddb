"""The official `dashscope` 2.0.2 SDK, unchanged, against the emulator.

Whatever the SDK sends (its deprecated `extend_prompt`, its headers, its upload of
local files to temporary storage), the emulator must treat as the service does, and
the SDK must read every answer. Pointed at the emulator through
`dashscope.base_http_api_url`, as users point it at a region.
"""

from __future__ import annotations

import time
from pathlib import Path

import dashscope
import pytest
from dashscope import VideoSynthesis

from tests.conftest import FileServer
from tests.fixtures_emulator import TEST_KEY, StartEmulator, emulator_state
from tests.media import MediaFactory
from vaceflow.emulator import EmulatorServer

MODEL = "wan2.1-vace-plus"


@pytest.fixture
def sdk_emulator(start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    server = start_emulator(latency=0.3, concurrency=1)
    monkeypatch.setattr(dashscope, "base_http_api_url", server.base_url)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", server.base_url)
    return server


@pytest.fixture(scope="module")
def video_url(media: MediaFactory, file_server: FileServer) -> str:
    return file_server.url(media.video(width=320, height=240, fps=24, seconds=1.0))


def submit_outpainting(video_url: str, api_key: str = TEST_KEY) -> object:
    return VideoSynthesis.async_call(
        model=MODEL,
        prompt="An elegant woman plays the violin.",
        extra_input={"function": "video_outpainting", "video_url": video_url},
        api_key=api_key,
        top_scale=1.5,
        bottom_scale=1.5,
        prompt_extend=False,
    )


def test_async_call_fetch_and_wait(sdk_emulator: EmulatorServer, video_url: str) -> None:
    submitted = submit_outpainting(video_url)
    assert submitted.status_code == 200, submitted  # type: ignore[attr-defined]
    task_id = submitted.output.task_id  # type: ignore[attr-defined]
    assert submitted.output.task_status == "PENDING"  # type: ignore[attr-defined]
    fetched = VideoSynthesis.fetch(task_id, api_key=TEST_KEY)
    assert fetched.output.task_status in ("PENDING", "RUNNING", "SUCCEEDED")
    done = VideoSynthesis.wait(submitted, api_key=TEST_KEY)  # type: ignore[arg-type]
    assert done.status_code == 200
    assert done.output.task_status == "SUCCEEDED"
    assert done.output.video_url.startswith(sdk_emulator.root_url + "/_emulator/results/")
    assert done.usage.video_count == 1
    assert done.usage.video_duration == 1
    task = emulator_state(sdk_emulator)["tasks"][0]
    assert task["body"]["input"]["extend_prompt"] is True, "the SDK sends its deprecated flag"
    assert task["body"]["parameters"] == {
        "top_scale": 1.5,
        "bottom_scale": 1.5,
        "prompt_extend": False,
    }
    assert any("extend_prompt" in note for note in task["notes"])
    assert task["queries"] >= 2


def test_cancel_pending_and_refuse_running(sdk_emulator: EmulatorServer, video_url: str) -> None:
    first = submit_outpainting(video_url)
    second = submit_outpainting(video_url)
    while VideoSynthesis.fetch(first, api_key=TEST_KEY).output.task_status == "PENDING":  # type: ignore[arg-type]
        time.sleep(0.1)
    cancelled = VideoSynthesis.cancel(second, api_key=TEST_KEY)  # type: ignore[arg-type]
    refused = VideoSynthesis.cancel(first, api_key=TEST_KEY)  # type: ignore[arg-type]
    assert cancelled.status_code == 200
    assert refused.status_code == 400
    assert refused.code == "UnsupportedOperation"
    assert VideoSynthesis.fetch(second, api_key=TEST_KEY).output.task_status == "CANCELED"  # type: ignore[arg-type]
    VideoSynthesis.wait(first, api_key=TEST_KEY)  # type: ignore[arg-type]


def test_errors_reach_the_sdk_with_code_and_request_id(
    sdk_emulator: EmulatorServer, video_url: str
) -> None:
    wrong_key = submit_outpainting(video_url, api_key="sk-wrong")
    assert wrong_key.status_code == 401  # type: ignore[attr-defined]
    assert wrong_key.code == "InvalidApiKey"  # type: ignore[attr-defined]
    assert wrong_key.request_id  # type: ignore[attr-defined]
    bad = VideoSynthesis.async_call(
        model=MODEL,
        prompt="x",
        extra_input={"function": "video_repainting", "video_url": video_url},
        api_key=TEST_KEY,
    )
    assert bad.status_code == 400
    assert bad.code == "InvalidParameter"
    assert "parameters" in bad.message
    assert emulator_state(sdk_emulator)["tasks"] == []


def test_list_reads_back_the_tasks(sdk_emulator: EmulatorServer, video_url: str) -> None:
    submitted = submit_outpainting(video_url)
    VideoSynthesis.wait(submitted, api_key=TEST_KEY)  # type: ignore[arg-type]
    listed = VideoSynthesis.list(api_key=TEST_KEY, status="SUCCEEDED", page_size=5)
    assert listed.status_code == 200
    assert listed.output["total"] == 1
    assert listed.output["page_size"] == 5
    assert listed.output["data"][0]["task_id"] == submitted.output.task_id  # type: ignore[attr-defined]


def test_the_sdk_uploads_a_local_file_to_temporary_storage(
    sdk_emulator: EmulatorServer, media: MediaFactory
) -> None:
    image: Path = media.image(width=640, height=480, fmt="png")
    submitted = VideoSynthesis.async_call(
        model=MODEL,
        prompt="A dog wearing sunglasses skateboarding on the street.",
        first_frame_url=str(image),
        extra_input={"function": "video_extension"},
        api_key=TEST_KEY,
    )
    assert submitted.status_code == 200, submitted
    done = VideoSynthesis.wait(submitted, api_key=TEST_KEY)
    assert done.output.task_status == "SUCCEEDED", done
    sent = emulator_state(sdk_emulator)["tasks"][0]["body"]["input"]["first_frame_url"]
    assert sent.startswith("oss://dashscope-instant/")
    assert sent.endswith("/" + image.name)

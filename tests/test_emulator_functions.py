"""The provider's five reference requests, run on the emulator end to end.

Each body is the reference's own (same prompt and parameters) with its URLs pointed at
media served on loopback; it must end SUCCEEDED with a playable MP4 of the documented
shape. A broken copy of each must end FAILED with the documented code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import SUBMIT_PATH, TEST_KEY, api_client, wait_final
from tests.media import MediaFactory
from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.limits import OUTPUT
from vaceflow.media.probe import probe

MODEL = "wan2.1-vace-plus"
Url = Callable[[Path], str]


def reference_bodies(media: MediaFactory, url: Url) -> dict[str, dict[str, Any]]:
    """The five curl bodies of the reference, media swapped for small local files."""
    video = url(media.video(width=640, height=360, fps=24, seconds=2.0))
    return {
        "image_reference": {
            "model": MODEL,
            "input": {
                "function": "image_reference",
                "prompt": "In the video, a girl gracefully emerges from a misty, ancient forest.",
                "ref_images_url": [
                    url(media.image(width=480, height=640, fmt="png")),
                    url(media.image(width=800, height=450, fmt="jpg")),
                ],
            },
            "parameters": {"prompt_extend": True, "obj_or_bg": ["obj", "bg"], "size": "1280*720"},
        },
        "video_repainting": {
            "model": MODEL,
            "input": {
                "function": "video_repainting",
                "prompt": "The video shows a black steampunk-style car driven by a gentleman.",
                "video_url": video,
            },
            "parameters": {"prompt_extend": False, "control_condition": "depth"},
        },
        "video_edit": {
            "model": MODEL,
            "input": {
                "function": "video_edit",
                "prompt": "The video shows a Parisian-style French cafe where a lion sips coffee.",
                "mask_image_url": url(media.mask_image(width=640, height=360)),
                "video_url": video,
                "mask_frame_id": 1,
            },
            "parameters": {"prompt_extend": False, "mask_type": "tracking", "expand_ratio": 0.05},
        },
        "video_extension": {
            "model": MODEL,
            "input": {
                "function": "video_extension",
                "prompt": "A dog wearing sunglasses skateboarding on the street, 3D cartoon.",
                "first_clip_url": url(media.video(width=640, height=360, fps=24, seconds=1.5)),
            },
            "parameters": {"prompt_extend": False},
        },
        "video_outpainting": {
            "model": MODEL,
            "input": {
                "function": "video_outpainting",
                "prompt": "An elegant woman passionately plays the violin.",
                "video_url": url(media.video(width=320, height=240, fps=24, seconds=2.0)),
            },
            "parameters": {
                "prompt_extend": False,
                "top_scale": 1.5,
                "bottom_scale": 1.5,
                "left_scale": 1.5,
                "right_scale": 1.5,
            },
        },
    }


EXPECTED: dict[str, tuple[int, int, float]] = {
    # function: (width, height, seconds), per the provider's output rules
    "image_reference": (1280, 720, OUTPUT.fixed_seconds),
    "video_repainting": (640, 360, 2.0),
    "video_edit": (640, 360, 2.0),
    "video_extension": (640, 360, OUTPUT.fixed_seconds),
    "video_outpainting": (640, 480, 2.0),
}


def broken(media: MediaFactory, url: Url, function: str, body: dict[str, Any]) -> tuple[str, str]:
    """Break `body` in place the way a user might; returns (code, field it names)."""
    inp = body["input"]
    if function == "image_reference":
        inp["ref_images_url"][0] = url(media.image(width=200, height=200, name="small"))
        return "InvalidParameter", "input.ref_images_url[0]"
    if function == "video_repainting":
        inp["video_url"] = url(media.video(width=640, height=360, fps=10, seconds=2.0))
        return "InvalidParameter", "input.video_url"
    if function == "video_edit":
        inp["mask_image_url"] = url(media.mask_image(width=320, height=240))
        return "InvalidParameter", "input.mask_image_url"
    if function == "video_extension":
        inp["first_clip_url"] = url(media.text("not-a-clip.mp4"))
        return "InvalidParameter.DataInspection", "input.first_clip_url"
    inp["video_url"] = url(media.root / "gone.mp4")
    return "InvalidURL", "input.video_url"


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[EmulatorServer]:
    """One emulator for the module: these tests only submit and read their own tasks."""
    config = EmulatorConfig(api_key=TEST_KEY, latency=0.2, submit_qps=0)
    with EmulatorServer(config) as server:
        yield server


@pytest.mark.parametrize("function", list(EXPECTED))
def test_reference_body_succeeds_with_documented_output(
    module_emulator: EmulatorServer,
    media: MediaFactory,
    file_server: FileServer,
    tmp_path: Path,
    function: str,
) -> None:
    body = reference_bodies(media, file_server.url)[function]
    with api_client(module_emulator) as api:
        submitted = api.post(SUBMIT_PATH, json=body)
        assert submitted.status_code == 200, submitted.text
        final = wait_final(api, submitted.json()["output"]["task_id"])
    out = final["output"]
    assert out["task_status"] == "SUCCEEDED", out
    video = tmp_path / "result.mp4"
    video.write_bytes(httpx.get(out["video_url"]).raise_for_status().content)
    info = probe(video)
    width, height, seconds = EXPECTED[function]
    assert info.is_mp4
    assert info.codec == OUTPUT.codec
    assert info.fps == pytest.approx(OUTPUT.fps, abs=0.5)
    assert not info.has_audio
    assert (info.width, info.height) == (width, height)
    assert info.duration == pytest.approx(seconds, abs=0.1)
    assert final["usage"] == {
        "video_duration": round(seconds),
        "video_ratio": f"{width}*{height}",
        "video_count": 1,
    }
    assert ("actual_prompt" in out) is bool(body["parameters"].get("prompt_extend"))
    with av.open(str(video)) as container:  # playable: every frame decodes
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == info.frame_count == round(seconds * OUTPUT.fps)


@pytest.mark.parametrize("function", list(EXPECTED))
def test_broken_copy_fails_with_documented_code(
    module_emulator: EmulatorServer,
    media: MediaFactory,
    file_server: FileServer,
    function: str,
) -> None:
    body = copy.deepcopy(reference_bodies(media, file_server.url)[function])
    code, field = broken(media, file_server.url, function, body)
    with api_client(module_emulator) as api:
        submitted = api.post(SUBMIT_PATH, json=body)
        assert submitted.status_code == 200, submitted.text
        out = wait_final(api, submitted.json()["output"]["task_id"])["output"]
    assert (out["task_status"], out["code"]) == ("FAILED", code), out
    assert field in out["message"]
    assert "video_url" not in out

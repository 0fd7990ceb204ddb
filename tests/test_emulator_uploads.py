"""The provider's temporary storage: upload policy, form upload, oss:// references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures_emulator import (
    SUBMIT_PATH,
    TEST_KEY,
    StartEmulator,
    advance_clock,
    api_client,
    emulator_state,
    wait_final,
)
from tests.media import MediaFactory
from vaceflow.emulator import EmulatorServer

MODEL = "wan2.1-vace-plus"
POLICY_FIELDS = {
    "policy",
    "signature",
    "upload_dir",
    "upload_host",
    "expire_in_seconds",
    "max_file_size_mb",
    "capacity_limit_mb",
    "oss_access_key_id",
    "x_oss_object_acl",
    "x_oss_forbid_overwrite",
}


def get_policy(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/uploads", params={"action": "getPolicy", "model": MODEL})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def upload(policy: dict[str, Any], path: Path, **override: str) -> tuple[httpx.Response, str]:
    """What the SDK's OssUtils.upload sends."""
    key = f"{policy['upload_dir']}/{path.name}"
    form = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": key,
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "video/mp4",
        **override,
    }
    with path.open("rb") as f:
        response = httpx.post(policy["upload_host"], data=form, files={"file": f})
    return response, f"oss://{key}"


def outpainting(url: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "input": {"function": "video_outpainting", "prompt": "a violinist", "video_url": url},
    }


@pytest.fixture(scope="module")
def clip(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=24, seconds=1.0)


def test_policy_needs_the_key(emulator: EmulatorServer) -> None:
    with api_client(emulator, key=None) as api:
        response = api.get("/uploads", params={"action": "getPolicy", "model": MODEL})
    assert response.status_code == 401


def test_upload_then_submit_oss_reference(emulator: EmulatorServer, clip: Path) -> None:
    with api_client(emulator) as api:
        policy = get_policy(api)
        assert set(policy) == POLICY_FIELDS
        assert policy["upload_host"] == emulator.root_url + "/_emulator/oss"
        response, oss_url = upload(policy, clip)
        assert response.status_code == 200
        refused = api.post(SUBMIT_PATH, json=outpainting(oss_url))
        accepted = api.post(
            SUBMIT_PATH,
            json=outpainting(oss_url),
            headers={"X-DashScope-OssResourceResolve": "enable"},
        )
        out = wait_final(api, accepted.json()["output"]["task_id"])["output"]
    assert refused.status_code == 400
    assert refused.json()["code"] == "InvalidURL"
    assert out["task_status"] == "SUCCEEDED", out
    assert httpx.get(out["video_url"]).content[4:8] == b"ftyp"


def test_oss_uploads_are_checked_like_oss(emulator: EmulatorServer, clip: Path) -> None:
    with api_client(emulator) as api:
        policy = get_policy(api)
    forged, _ = upload(policy, clip, Signature="bm90IGEgc2lnbmF0dXJl")
    elsewhere, _ = upload(policy, clip, key="dashscope-instant/someone-else/x.mp4")
    first, _ = upload(policy, clip)
    overwrite, _ = upload(policy, clip)
    assert forged.status_code == 403
    assert b"SignatureDoesNotMatch" in forged.content
    assert elsewhere.status_code == 403
    assert first.status_code == 200
    assert overwrite.status_code == 409
    assert TEST_KEY not in str(policy)


def test_an_unknown_or_expired_oss_file_fails_the_task(
    emulator: EmulatorServer, clip: Path
) -> None:
    headers = {"X-DashScope-OssResourceResolve": "enable"}
    with api_client(emulator) as api:
        _, oss_url = upload(get_policy(api), clip)
        advance_clock(emulator, 48 * 3600 + 1)
        expired = api.post(SUBMIT_PATH, json=outpainting(oss_url), headers=headers)
        unknown = api.post(
            SUBMIT_PATH, json=outpainting("oss://dashscope-instant/none/x.mp4"), headers=headers
        )
        outs = [
            wait_final(api, r.json()["output"]["task_id"])["output"] for r in (expired, unknown)
        ]
    for out in outs:
        assert (out["task_status"], out["code"]) == ("FAILED", "InvalidURL")
        assert "input.video_url" in out["message"]
    assert len(emulator_state(emulator)["tasks"]) == 2


def test_public_url_names_where_others_reach_the_emulator(start_emulator: StartEmulator) -> None:
    server = start_emulator(public_url="http://emulator.internal:9000")
    with api_client(server) as api:
        assert get_policy(api)["upload_host"] == "http://emulator.internal:9000/_emulator/oss"

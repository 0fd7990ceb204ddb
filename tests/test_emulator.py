"""The emulator over real HTTP: the wire contract, leniencies, limits, lifecycle, faults.

Each test starts its own emulator on loopback and talks to it with plain httpx, as any
DashScope client would; what was submitted is read back from `/_emulator/tasks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import FileServer, free_port
from tests.fixtures_emulator import (
    SUBMIT_PATH,
    TEST_KEY,
    StartEmulator,
    advance_clock,
    api_client,
    emulator_state,
    submission_count,
    wait_final,
)
from tests.media import MediaFactory
from vaceflow.emulator import EmulatorServer
from vaceflow.limits import MAX_REF_IMAGES, MEDIA_RULES, PROMPT_MAX_CHARS, Role

MODEL = "wan2.1-vace-plus"


@pytest.fixture(scope="module")
def video_url(media: MediaFactory, file_server: FileServer) -> str:
    return file_server.url(media.video(width=320, height=240, fps=24, seconds=1.0))


@pytest.fixture(scope="module")
def image_url(media: MediaFactory, file_server: FileServer) -> str:
    return file_server.url(media.image(width=480, height=400))


def outpainting(url: str, **input_extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "input": {
            "function": "video_outpainting",
            "prompt": "a violinist",
            "video_url": url,
            **input_extra,
        },
        "parameters": {"top_scale": 1.5},
    }


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert (response.status_code, body.get("code")) == (status, code), body
    assert set(body) == {"code", "message", "request_id"}
    assert body["message"]
    assert body["request_id"]
    return body


# --- the submit gate ------------------------------------------------------------------


def test_accepted_submit_answers_pending_task(emulator: EmulatorServer, video_url: str) -> None:
    with api_client(emulator) as api:
        response = api.post(SUBMIT_PATH, json=outpainting(video_url))
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"output", "request_id"}
    assert body["output"]["task_status"] == "PENDING"
    assert len(body["output"]["task_id"]) == 36
    assert emulator_state(emulator)["tasks"][0]["task_id"] == body["output"]["task_id"]


@pytest.mark.parametrize(
    ("key", "message"), [(None, "No API-key"), ("sk-wrong", "Invalid API-key")]
)
def test_a_missing_or_wrong_key_is_401(
    emulator: EmulatorServer, video_url: str, key: str | None, message: str
) -> None:
    with api_client(emulator, key=key) as api:
        submit = api.post(SUBMIT_PATH, json=outpainting(video_url))
        query = api.get("/tasks/some-id")
    assert message in assert_error(submit, 401, "InvalidApiKey")["message"]
    assert_error(query, 401, "InvalidApiKey")
    assert submission_count(emulator) == 0


def test_the_key_is_never_echoed(emulator: EmulatorServer, video_url: str) -> None:
    with api_client(emulator, key=TEST_KEY + "x") as api:
        response = api.post(SUBMIT_PATH, json=outpainting(video_url))
    assert TEST_KEY not in response.text
    assert TEST_KEY not in repr(emulator) + repr(emulator.config)


def test_a_synchronous_call_is_refused(emulator: EmulatorServer, video_url: str) -> None:
    with api_client(emulator, async_header=False) as api:
        response = api.post(SUBMIT_PATH, json=outpainting(video_url))
    body = assert_error(response, 403, "AccessDenied")
    assert body["message"] == "current user api does not support synchronous calls"
    assert submission_count(emulator) == 0


@pytest.mark.parametrize(
    ("content", "code", "named"),
    [
        (b"{not json", "InvalidParameter", "JSON"),
        (b"[1, 2]", "InvalidParameter", "JSON object"),
        (b'{"input": {"prompt": "x"}}', "BadRequest.EmptyModel", "model"),
        (b'{"model": "wan2.1-vace-plus"}', "BadRequest.EmptyInput", "input"),
        (
            b'{"model": "wan2.1-vace-pro", "input": {"prompt": "x"}}',
            "InvalidParameter",
            "wan2.1-vace-pro",
        ),
        (
            b'{"model": "wanx2.1-vace-plus", "input": {"prompt": "x"}}',
            "InvalidParameter",
            "wanx2.1-vace-plus",
        ),
        (
            b'{"model": "wan2.1-vace-plus", "input": {"function": "video_magic", "prompt": "x"}}',
            "InvalidParameter",
            "input.function",
        ),
        (
            b'{"model": "wan2.1-vace-plus", "input": {"function": "video_repainting", '
            b'"prompt": "x", "video_url": "http://h/v.mp4"}}',
            "InvalidParameter",
            "parameters",
        ),
        (
            b'{"model": "wan2.1-vace-plus", "input": {"function": "video_outpainting", '
            b'"prompt": "x", "video_url": "http://h/v.mp4"}, "parameters": {"top_scale": 3}}',
            "InvalidParameter",
            "parameters.top_scale",
        ),
    ],
)
def test_bad_bodies_are_refused_naming_the_problem(
    emulator: EmulatorServer, content: bytes, code: str, named: str
) -> None:
    with api_client(emulator) as api:
        response = api.post(SUBMIT_PATH, content=content)
    assert named in assert_error(response, 400, code)["message"]
    assert submission_count(emulator) == 0


def test_model_not_exist_names_the_model(emulator: EmulatorServer, video_url: str) -> None:
    body = outpainting(video_url)
    body["model"] = "wanx2.1-vace-plus"
    with api_client(emulator) as api:
        message = assert_error(api.post(SUBMIT_PATH, json=body), 400, "InvalidParameter")["message"]
    assert message.startswith("Model not exist.")
    assert "wanx2.1-vace-plus" in message


def test_beijing_serves_its_own_model_name(start_emulator: StartEmulator, video_url: str) -> None:
    server = start_emulator(region="beijing")
    beijing, intl = outpainting(video_url), outpainting(video_url)
    beijing["model"] = "wanx2.1-vace-plus"
    with api_client(server) as api:
        assert api.post(SUBMIT_PATH, json=beijing).status_code == 200
        assert_error(api.post(SUBMIT_PATH, json=intl), 400, "InvalidParameter")


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1/视频.mp4", "non-ASCII"),
        ("ftp://127.0.0.1/v.mp4", "not an http(s)"),
        ("/tmp/local.mp4", "not an http(s)"),
        ("oss://dashscope-instant/x/v.mp4", "X-DashScope-OssResourceResolve"),
    ],
)
def test_bad_urls_are_refused_naming_the_field(
    emulator: EmulatorServer, url: str, named: str
) -> None:
    with api_client(emulator) as api:
        response = api.post(SUBMIT_PATH, json=outpainting(url))
    message = assert_error(response, 400, "InvalidURL")["message"]
    assert "input.video_url" in message
    assert named in message


def test_a_blocked_word_fails_inspection(emulator: EmulatorServer, video_url: str) -> None:
    body = outpainting(video_url)
    body["input"]["prompt"] = "a cat and a FORBIDDEN-WORD"
    with api_client(emulator) as api:
        assert_error(api.post(SUBMIT_PATH, json=body), 400, "DataInspectionFailed")
    assert submission_count(emulator) == 0


def test_unknown_routes_answer_the_error_shape(emulator: EmulatorServer) -> None:
    with api_client(emulator) as api:
        assert_error(api.get("/services/aigc/nothing-here"), 404, "NotFound")


# --- leniencies -------------------------------------------------------------------------


def test_sdk_extras_and_unknown_fields_are_ignored_and_noted(
    emulator: EmulatorServer, video_url: str
) -> None:
    body = outpainting(video_url, extend_prompt=True, negative_prompt="blur")
    body["parameters"]["resolution"] = "720P"
    with api_client(emulator) as api:
        response = api.post(SUBMIT_PATH, json=body)
        final = wait_final(api, response.json()["output"]["task_id"])
    assert final["output"]["task_status"] == "SUCCEEDED"
    task = emulator_state(emulator)["tasks"][0]
    assert task["body"] == body, "the body is recorded as received"
    notes = " | ".join(task["notes"])
    assert "input.extend_prompt" in notes
    assert "input.negative_prompt" in notes
    assert "parameters.resolution" in notes


def test_only_the_first_reference_images_are_kept(emulator: EmulatorServer, image_url: str) -> None:
    images = [image_url] * (MAX_REF_IMAGES + 2)
    body = {
        "model": MODEL,
        "input": {"function": "image_reference", "prompt": "a fox", "ref_images_url": images},
        "parameters": {"obj_or_bg": ["obj"] * len(images)},
    }
    with api_client(emulator) as api:
        response = api.post(SUBMIT_PATH, json=body)
    assert response.status_code == 200, response.text
    notes = emulator_state(emulator)["tasks"][0]["notes"]
    assert any(f"first {MAX_REF_IMAGES} of {len(images)}" in n for n in notes)


def test_a_long_prompt_is_cut_not_refused(emulator: EmulatorServer, video_url: str) -> None:
    body = outpainting(video_url)
    body["input"]["prompt"] = "a" * (PROMPT_MAX_CHARS + 50)
    with api_client(emulator) as api:
        response = api.post(SUBMIT_PATH, json=body)
        final = wait_final(api, response.json()["output"]["task_id"])
    assert final["output"]["task_status"] == "SUCCEEDED"
    assert final["output"]["orig_prompt"] == "a" * PROMPT_MAX_CHARS


def test_prompt_extend_adds_an_actual_prompt(emulator: EmulatorServer, video_url: str) -> None:
    with api_client(emulator) as api:
        plain = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()
        body = outpainting(video_url)
        body["parameters"]["prompt_extend"] = True
        extended = api.post(SUBMIT_PATH, json=body).json()
        plain_out = wait_final(api, plain["output"]["task_id"])["output"]
        extended_out = wait_final(api, extended["output"]["task_id"])["output"]
    assert "actual_prompt" not in plain_out
    assert extended_out["actual_prompt"].startswith("a violinist")
    assert extended_out["actual_prompt"] != extended_out["orig_prompt"]


# --- rate limits and concurrency ----------------------------------------------------------


def burst(call: Callable[[], httpx.Response], count: int) -> list[int]:
    """`count` calls at once (from threads), so they land within the same instant."""
    with ThreadPoolExecutor(count) as pool:
        return sorted(f.result().status_code for f in [pool.submit(call) for _ in range(count)])


def test_submits_past_the_rate_are_throttled(start_emulator: StartEmulator, video_url: str) -> None:
    server = start_emulator(submit_qps=2)
    with api_client(server) as api:
        statuses = burst(lambda: api.post(SUBMIT_PATH, json=outpainting(video_url)), 3)
        throttled = api.post(SUBMIT_PATH, json=outpainting(video_url))
    assert statuses == [200, 200, 429]
    body = assert_error(throttled, 429, "Throttling.RateQuota")
    assert body["message"] == "Requests rate limit exceeded, please try again later."
    state = emulator_state(server)
    assert len(state["tasks"]) == 2
    assert state["counters"]["throttled"] == {"submit": 2}


def test_calls_at_the_rate_are_never_throttled(start_emulator: StartEmulator) -> None:
    server = start_emulator(query_qps=10)
    with api_client(server) as api:
        statuses = []
        for _ in range(15):
            started = time.monotonic()
            statuses.append(api.get("/tasks/unknown").status_code)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
    assert statuses == [200] * 15


def test_each_endpoint_class_has_its_own_budget(start_emulator: StartEmulator) -> None:
    server = start_emulator(query_qps=3, list_qps=1)
    with api_client(server) as api:
        queries = burst(lambda: api.get("/tasks/x"), 4)
        lists = burst(lambda: api.get("/tasks"), 2)
    assert queries == [200, 200, 200, 429]
    assert lists == [200, 429]
    assert emulator_state(server)["counters"]["throttled"] == {"query": 1, "list": 1}


def test_never_more_than_concurrency_tasks_run(
    start_emulator: StartEmulator, video_url: str
) -> None:
    server = start_emulator(concurrency=2, latency=1.0, submit_qps=0)
    with api_client(server) as api:
        ids = [
            api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
            for _ in range(4)
        ]
        seen_running = 0
        while True:  # the list is one snapshot of every task
            statuses = [i["status"] for i in api.get("/tasks").json()["data"]]
            seen_running = max(seen_running, statuses.count("RUNNING"))
            if statuses.count("SUCCEEDED") == len(ids):
                break
            assert "FAILED" not in statuses
            time.sleep(0.1)
    assert seen_running <= 2
    assert emulator_state(server)["peak_running"] == 2


# --- cancel, expiry, signed URLs ------------------------------------------------------------


def test_only_a_pending_task_can_be_cancelled(
    start_emulator: StartEmulator, video_url: str
) -> None:
    server = start_emulator(concurrency=1, latency=2.0)
    with api_client(server) as api:
        first = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
        second = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
        while api.get(f"/tasks/{first}").json()["output"]["task_status"] != "RUNNING":
            time.sleep(0.05)
        cancelled = api.post(f"/tasks/{second}/cancel")
        refused = api.post(f"/tasks/{first}/cancel")
        unknown = api.post("/tasks/no-such-task/cancel")
        assert wait_final(api, first)["output"]["task_status"] == "SUCCEEDED"
        second_out = api.get(f"/tasks/{second}").json()["output"]
    assert cancelled.status_code == 200
    assert set(cancelled.json()) == {"request_id"}
    message = assert_error(refused, 400, "UnsupportedOperation")["message"]
    assert message == (
        "Failed to cancel the task, please confirm if the task is in PENDING status."
    )
    assert_error(unknown, 400, "UnsupportedOperation")
    assert second_out["task_status"] == "CANCELED"
    assert "scheduled_time" not in second_out, "a cancelled task never ran"


def test_succeeded_task_shape_and_signed_url(emulator: EmulatorServer, video_url: str) -> None:
    with api_client(emulator) as api:
        task_id = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
        body = wait_final(api, task_id)
    out = body["output"]
    assert out["task_status"] == "SUCCEEDED"
    for key in ("submit_time", "scheduled_time", "end_time"):
        assert time.strptime(out[key][:19], "%Y-%m-%d %H:%M:%S")
        assert len(out[key]) == len("2025-05-23 17:07:30.497")
    assert body["usage"] == {"video_duration": 1, "video_ratio": "320*360", "video_count": 1}
    url = httpx.URL(out["video_url"])
    assert url.path == f"/_emulator/results/{task_id}.mp4"
    assert set(url.params) == {"Expires", "Signature"}
    good = httpx.get(out["video_url"])
    assert good.status_code == 200
    assert good.content[4:8] == b"ftyp"
    forged = httpx.get(url.copy_set_param("Signature", "AAAA"))
    longer = httpx.get(url.copy_set_param("Expires", str(int(url.params["Expires"]) + 3600)))
    assert (forged.status_code, longer.status_code) == (403, 403)


def test_tasks_and_urls_expire_after_their_ttl(emulator: EmulatorServer, video_url: str) -> None:
    with api_client(emulator) as api:
        task_id = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
        video = wait_final(api, task_id)["output"]["video_url"]
        advance_clock(emulator, 24 * 3600 + 1)
        expired = api.get(f"/tasks/{task_id}")
        unknown = api.get("/tasks/0385dc79-5ff8-4d82-bcb6-xxxxxxxxxxxx")
    assert expired.status_code == 200
    assert set(expired.json()) == {"request_id", "output"}
    assert expired.json()["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}
    assert unknown.json()["output"]["task_status"] == "UNKNOWN"
    assert httpx.get(video).status_code == 403


def test_a_short_url_ttl_is_honoured(start_emulator: StartEmulator, video_url: str) -> None:
    server = start_emulator(url_ttl=600)
    with api_client(server) as api:
        task_id = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
        wait_final(api, task_id)
        advance_clock(server, 601)
        assert api.get(f"/tasks/{task_id}").json()["output"]["task_status"] == "UNKNOWN"


# --- inputs that cannot be fetched --------------------------------------------------------


def test_an_unreachable_input_fails_the_task_naming_the_field(
    emulator: EmulatorServer, file_server: FileServer
) -> None:
    missing = file_server.url(file_server.root / "no-such-file.mp4")
    refused = f"http://127.0.0.1:{free_port()}/v.mp4"
    with api_client(emulator) as api:
        ids = [
            api.post(SUBMIT_PATH, json=outpainting(url)).json()["output"]["task_id"]
            for url in (missing, refused)
        ]
        outs = [wait_final(api, i)["output"] for i in ids]
    for out in outs:
        assert (out["task_status"], out["code"]) == ("FAILED", "InvalidURL")
        assert "input.video_url" in out["message"]
    assert "404" in outs[0]["message"]


def test_an_oversized_input_is_not_downloaded_past_its_limit(
    start_emulator: StartEmulator, media: MediaFactory, file_server: FileServer
) -> None:
    big = media.root / "huge.png"
    if not big.exists():
        big.write_bytes(b"\x89PNG" + bytes(MEDIA_RULES[Role.REF_IMAGE].max_bytes + 1024))
    server = start_emulator(fetch_slack_bytes=0)
    body = {
        "model": MODEL,
        "input": {
            "function": "image_reference",
            "prompt": "a fox",
            "ref_images_url": [file_server.url(big)],
        },
    }
    with api_client(server) as api:
        task_id = api.post(SUBMIT_PATH, json=body).json()["output"]["task_id"]
        out = wait_final(api, task_id)["output"]
    assert (out["task_status"], out["code"]) == ("FAILED", "InvalidParameter")
    assert "input.ref_images_url[0]" in out["message"]
    assert "10 MB" in out["message"]


# --- the task list ------------------------------------------------------------------------


def test_list_filters_pages_and_shapes(
    start_emulator: StartEmulator, video_url: str, file_server: FileServer
) -> None:
    server = start_emulator(submit_qps=0)
    missing = file_server.url(file_server.root / "missing.mp4")
    with api_client(server) as api:
        ok = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
        bad = [
            api.post(SUBMIT_PATH, json=outpainting(missing)).json()["output"]["task_id"]
            for _ in range(2)
        ]
        for task_id in [ok, *bad]:
            wait_final(api, task_id)
        first = api.get("/tasks", params={"page_size": 2}).json()
        second = api.get("/tasks", params={"page_size": 2, "page_no": 2}).json()
        failed = api.get("/tasks", params={"status": "FAILED"}).json()
        other_model = api.get("/tasks", params={"model_name": "wanx2.1-vace-plus"}).json()
        capped = api.get("/tasks", params={"page_size": 500}).json()
        long_window = api.get(
            "/tasks", params={"start_time": "20250101000000", "end_time": "20250102000001"}
        )
        old_window = api.get(
            "/tasks", params={"start_time": "20250101000000", "end_time": "20250101120000"}
        ).json()
        bad_time = api.get("/tasks", params={"start_time": "2025-01-01"})
    assert set(first) == {"request_id", "data", "total", "total_page", "page_no", "page_size"}
    assert (first["total"], first["total_page"], first["page_no"], first["page_size"]) == (
        3,
        2,
        1,
        2,
    )
    assert len(first["data"]) == 2
    assert len(second["data"]) == 1
    assert {i["task_id"] for i in first["data"] + second["data"]} == {ok, *bad}
    item = next(i for i in first["data"] + second["data"] if i["task_id"] == ok)
    assert "task_status" not in item
    assert item["status"] == "SUCCEEDED"
    assert item["model_name"] == MODEL
    assert item["gmt_create"] <= item["start_time"] <= item["end_time"]
    for key in (
        "api_key_id",
        "caller_uid",
        "caller_parent_id",
        "region",
        "user_api_unique_key",
        "request_id",
    ):
        assert item[key]
    assert TEST_KEY not in str(item)
    assert {i["task_id"] for i in failed["data"]} == set(bad)
    assert other_model["total"] == 0
    assert capped["page_size"] == 100
    assert_error(long_window, 400, "InvalidParameter")
    assert old_window["total"] == 0
    assert_error(bad_time, 400, "InvalidParameter")


def test_a_running_task_has_no_end_time_in_the_list(
    start_emulator: StartEmulator, video_url: str
) -> None:
    server = start_emulator(latency=2.0)
    with api_client(server) as api:
        task_id = api.post(SUBMIT_PATH, json=outpainting(video_url)).json()["output"]["task_id"]
        while api.get(f"/tasks/{task_id}").json()["output"]["task_status"] != "RUNNING":
            time.sleep(0.05)
        item = api.get("/tasks").json()["data"][0]
    assert item["status"] == "RUNNING"
    assert "start_time" in item
    assert "end_time" not in item

"""Each fault kind alone, at rate 1: what a client sees and what the emulator recorded."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import (
    SUBMIT_PATH,
    StartEmulator,
    api_client,
    emulator_state,
    set_latency,
    wait_final,
)
from tests.media import MediaFactory


@pytest.fixture(scope="module")
def body(media: MediaFactory, file_server: FileServer) -> dict[str, Any]:
    url = file_server.url(media.video(width=320, height=240, fps=24, seconds=1.0))
    return {
        "model": "wan2.1-vace-plus",
        "input": {"function": "video_outpainting", "prompt": "a violinist", "video_url": url},
    }


@pytest.mark.parametrize(("kind", "status"), [("error_500", 500), ("error_503", 503)])
def test_server_errors_come_before_any_effect(
    start_emulator: StartEmulator, body: dict[str, Any], kind: str, status: int
) -> None:
    server = start_emulator(fault_rate=1.0, faults={kind})
    with api_client(server) as api:
        submit = api.post(SUBMIT_PATH, json=body)
        query = api.get("/tasks/x")
    for response in (submit, query):
        assert response.status_code == status
        assert set(response.json()) == {"code", "message", "request_id"}
    assert submit.json()["code"] == ("InternalError" if status == 500 else "ServiceUnavailable")
    state = emulator_state(server)
    assert state["tasks"] == []
    assert state["counters"]["faults"] == {kind: 2}


def test_no_faults_at_rate_zero(start_emulator: StartEmulator, body: dict[str, Any]) -> None:
    server = start_emulator(fault_rate=0.0, latency=0.1)
    with api_client(server) as api:
        task_id = api.post(SUBMIT_PATH, json=body).raise_for_status().json()["output"]["task_id"]
        assert wait_final(api, task_id)["output"]["task_status"] == "SUCCEEDED"
    assert emulator_state(server)["counters"]["faults"] == {}


@pytest.mark.parametrize("creates", [1.0, 0.0])
def test_a_dropped_submit_is_a_transport_error_that_may_have_created_a_task(
    start_emulator: StartEmulator, body: dict[str, Any], creates: float
) -> None:
    server = start_emulator(fault_rate=1.0, faults={"drop"}, drop_creates_task=creates)
    with api_client(server) as api, pytest.raises(httpx.TransportError):
        api.post(SUBMIT_PATH, json=body)
    state = emulator_state(server)
    if creates:
        assert len(state["tasks"]) == 1
        assert state["tasks"][0]["response_dropped"] is True
        assert state["counters"]["faults"]["drop_submit_created"] == 1
    else:
        assert state["tasks"] == []
        assert state["counters"]["faults"]["drop_submit_lost"] == 1


def test_dropped_submits_are_decided_by_the_seed(
    start_emulator: StartEmulator, body: dict[str, Any]
) -> None:
    def created_tasks(seed: int) -> int:
        server = start_emulator(fault_rate=1.0, faults={"drop"}, seed=seed, submit_qps=0)
        with api_client(server) as api:
            for _ in range(8):
                with pytest.raises(httpx.TransportError):
                    api.post(SUBMIT_PATH, json=body)
        state = emulator_state(server)
        faults = state["counters"]["faults"]
        assert faults["drop"] == 8
        assert faults.get("drop_submit_created", 0) + faults.get("drop_submit_lost", 0) == 8
        assert all(t["response_dropped"] for t in state["tasks"])
        assert faults.get("drop_submit_created", 0) == len(state["tasks"])
        return len(state["tasks"])

    first, again = created_tasks(11), created_tasks(11)
    assert first == again
    assert 0 < first < 8, "with the default share, some dropped submits made a task"


def test_a_dropped_query_is_a_transport_error(
    start_emulator: StartEmulator, body: dict[str, Any]
) -> None:
    server = start_emulator(fault_rate=1.0, faults={"drop"})
    with api_client(server) as api, pytest.raises(httpx.RemoteProtocolError):
        api.get("/tasks/x")


def test_a_slow_answer_outlasts_a_short_client_timeout(
    start_emulator: StartEmulator, body: dict[str, Any]
) -> None:
    server = start_emulator(fault_rate=1.0, faults={"slow"}, slow_seconds=3.0)
    with api_client(server) as api, pytest.raises(httpx.ReadTimeout):
        api.get("/tasks/x", timeout=0.3)
    assert emulator_state(server)["counters"]["faults"] == {"slow": 1}


def test_slow_answers_still_arrive(start_emulator: StartEmulator) -> None:
    server = start_emulator(fault_rate=1.0, faults={"slow"}, slow_seconds=0.2)
    with api_client(server) as api:
        response = api.get("/tasks/x")
    assert response.json()["output"]["task_status"] == "UNKNOWN"


def test_a_task_failure_ends_failed_internal_error_algo(
    start_emulator: StartEmulator, body: dict[str, Any]
) -> None:
    server = start_emulator(fault_rate=1.0, faults={"task_failure"})
    with api_client(server) as api:
        task_id = api.post(SUBMIT_PATH, json=body).raise_for_status().json()["output"]["task_id"]
        out = wait_final(api, task_id)["output"]
    assert (out["task_status"], out["code"]) == ("FAILED", "InternalError.Algo")
    assert out["message"]
    assert "video_url" not in out


def test_armed_submit_faults_hit_the_next_submits_in_order_and_the_list_shows_every_task(
    start_emulator: StartEmulator, body: dict[str, Any]
) -> None:
    """answer_lost: the task is made, its answer never comes; lost: nothing is made;
    hang: the task is made and answered late. The task list shows every task made, with
    its creation time, whether or not its submitter heard back."""
    server = start_emulator(
        submit_qps=0, latency=30, submit_faults=("answer_lost",), hang_seconds=0.2
    )
    armed = httpx.post(server.root_url + "/_emulator/faults", json={"submit": ["lost", "hang"]})
    assert armed.json() == {"submit": ["answer_lost", "lost", "hang"]}
    assert httpx.post(server.root_url + "/_emulator/faults", json={"submit": ["x"]}).is_error
    with api_client(server) as api:
        for _ in ("answer_lost", "lost"):
            with pytest.raises(httpx.TransportError):
                api.post(SUBMIT_PATH, json=body)
        hung = api.post(SUBMIT_PATH, json=body)  # answered 0.2 s late
        clean = api.post(SUBMIT_PATH, json=body).raise_for_status()
        listed = api.get("/tasks").raise_for_status().json()
    state = emulator_state(server)
    assert state["counters"]["faults"] == {
        "submit_answer_lost": 1,
        "submit_lost": 1,
        "submit_hang": 1,
    }
    made = [t["task_id"] for t in state["tasks"]]
    assert len(made) == 3  # answer_lost, hang, clean
    assert [t["response_dropped"] for t in state["tasks"]] == [True, False, False]
    assert {hung.json()["output"]["task_id"], clean.json()["output"]["task_id"]} < set(made)
    assert {item["task_id"] for item in listed["data"]} == set(made)
    assert all(isinstance(item["gmt_create"], int) for item in listed["data"])


def test_tasks_held_running_end_once_the_latency_is_lowered(
    start_emulator: StartEmulator, body: dict[str, Any]
) -> None:
    """A test holds tasks on the service (an hour's latency) and lets them end when it
    chooses, the running ones too, whatever the machine's speed."""
    server = start_emulator(submit_qps=0, latency=3600)
    with api_client(server) as api:
        task_id = api.post(SUBMIT_PATH, json=body).raise_for_status().json()["output"]["task_id"]
        while emulator_state(server)["running"] < 1:
            time.sleep(0.05)
        assert api.get(f"/tasks/{task_id}").json()["output"]["task_status"] == "RUNNING"
        assert httpx.post(server.root_url + "/_emulator/latency").is_error  # no seconds
        set_latency(server, 0)
        out = wait_final(api, task_id)["output"]
    assert out["task_status"] == "SUCCEEDED"

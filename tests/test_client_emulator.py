"""The client against the local emulator over real HTTP: every function end to end,
every error class, throttling, faults, paging, and what the "service" was billed for.

What the emulator received is read back from `/_emulator/tasks`: a test passes only
when the submissions the emulator recorded are exactly the ones the user meant.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import (
    TEST_KEY,
    StartEmulator,
    emulator_state,
    set_latency,
    submission_count,
)
from tests.media import MediaFactory
from vaceflow.client import AsyncClient, Client, RetryPolicy
from vaceflow.emulator import EmulatorServer, FaultKind
from vaceflow.errors import DashScopeError, DashScopeTransportError
from vaceflow.jobs import Function, parse_job
from vaceflow.media.probe import probe
from vaceflow.responses import TaskResponse, TaskStatus

PATIENT = RetryPolicy(attempts=12, base=0.1, cap=1.0)


def client_for(server: EmulatorServer, **options: Any) -> Client:
    return Client(**{"api_key": TEST_KEY, "base_url": server.base_url, "retry": PATIENT, **options})


def finish(client: Client, task_id: str, timeout: float = 120) -> TaskResponse:
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(task_id)
        if task.status.is_final:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task.status}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def urls(media: MediaFactory, file_server: FileServer) -> dict[str, str]:
    """Small inputs every function accepts (320x240, 24 fps, 1 s; images >= 360 px)."""
    size = {"width": 320, "height": 240}
    return {
        "video": file_server.url(media.video(**size, fps=24, seconds=1.0)),
        "image": file_server.url(media.image(width=480, height=400)),
        "mask_image": file_server.url(media.mask_image(**size)),
        "mask_video": file_server.url(media.mask_video(**size, fps=24, seconds=1.0)),
    }


def jobs(urls: dict[str, str]) -> dict[Function, dict[str, Any]]:
    """One body per function; the model is left to the client (it follows the region)."""

    def job(function: str, parameters: dict[str, Any] | None = None, **inputs: Any) -> Any:
        return {
            "input": {"function": function, "prompt": f"a test of {function}", **inputs},
            "parameters": parameters or {},
        }

    return {
        Function.IMAGE_REFERENCE: job(
            "image_reference",
            {"obj_or_bg": ["obj"], "size": "960*960"},
            ref_images_url=[urls["image"]],
        ),
        Function.VIDEO_REPAINTING: job(
            "video_repainting", {"control_condition": "depth"}, video_url=urls["video"]
        ),
        Function.VIDEO_EDIT: job(
            "video_edit", video_url=urls["video"], mask_video_url=urls["mask_video"]
        ),
        Function.VIDEO_EXTENSION: job("video_extension", first_clip_url=urls["video"]),
        Function.VIDEO_OUTPAINTING: job(
            "video_outpainting", {"left_scale": 1.5}, video_url=urls["video"]
        ),
    }


# --- the five functions ----------------------------------------------------------------------


def test_each_function_runs_to_succeeded(
    start_emulator: StartEmulator, urls: dict[str, str], tmp_path: Path
) -> None:
    server = start_emulator(submit_qps=0)
    bodies = jobs(urls)
    with client_for(server) as client:
        submitted = {f: client.submit(parse_job(b)).output.task_id for f, b in bodies.items()}
        done = {f: finish(client, task_id) for f, task_id in submitted.items()}
        for function, task in done.items():
            assert task.status is TaskStatus.SUCCEEDED, (function, task.output)
            assert task.output.video_url
            assert task.usage is not None
            assert task.usage.video_count == 1
        result = httpx.get(done[Function.VIDEO_OUTPAINTING].output.video_url or "", timeout=30)
    state = emulator_state(server)
    recorded = {t["task_id"]: t for t in state["tasks"]}
    assert set(recorded) == set(submitted.values()), "exactly one submission per job"
    for function, task_id in submitted.items():
        assert recorded[task_id]["function"] == function.value
        assert recorded[task_id]["body"]["model"] == "wan2.1-vace-plus"
    out = tmp_path / "out.mp4"
    out.write_bytes(result.raise_for_status().content)
    info = probe(out)
    assert info.codec == "h264"
    assert info.duration is not None
    assert info.duration <= 5.0 + 0.1


def test_beijing_client_names_the_beijing_model(
    start_emulator: StartEmulator, urls: dict[str, str]
) -> None:
    server = start_emulator(region="beijing")
    with client_for(server, region="beijing") as client:
        task = finish(client, client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING]).output.task_id)
    assert task.status is TaskStatus.SUCCEEDED
    [recorded] = emulator_state(server)["tasks"]
    assert recorded["body"]["model"] == "wanx2.1-vace-plus"


def test_the_async_client_end_to_end(start_emulator: StartEmulator, urls: dict[str, str]) -> None:
    """Three submits at once on one running slot: the task the service runs cannot be
    cancelled, a queued one can, the other queued one runs after it; the list has all."""
    server = start_emulator(submit_qps=0, concurrency=1, latency=3600)  # held until told
    body = jobs(urls)[Function.VIDEO_OUTPAINTING]

    async def scenario() -> tuple[TaskStatus, TaskStatus, list[str], DashScopeError]:
        async with AsyncClient(TEST_KEY, base_url=server.base_url, retry=PATIENT) as client:
            async with anyio.create_task_group() as group:
                ids: list[str] = []

                async def submit() -> None:
                    ids.append((await client.submit(body)).output.task_id)

                for _ in range(3):
                    group.start_soon(submit)
            while True:  # the answers' order is not the service's: ask it which runs
                statuses = {i: (await client.get(i)).status for i in ids}
                if TaskStatus.RUNNING in statuses.values():
                    break
                await anyio.sleep(0.05)
            running = next(i for i, status in statuses.items() if status is TaskStatus.RUNNING)
            after, cancelled = [i for i in ids if i != running]
            await client.cancel(cancelled)
            with pytest.raises(DashScopeError) as refused:
                await client.cancel(running)
            set_latency(server, 0)
            while not (await client.get(after)).status.is_final:
                await anyio.sleep(0.1)
            listed = [item.task_id async for item in client.list_all(page_size=1)]
            return (
                (await client.get(after)).status,
                (await client.get(cancelled)).status,
                listed,
                refused.value,
            )

    after, cancelled, listed, refused = anyio.run(scenario)
    assert after is TaskStatus.SUCCEEDED
    assert cancelled is TaskStatus.CANCELED
    assert refused.code == "UnsupportedOperation"
    assert refused.status == 400
    assert sorted(listed) == sorted(t["task_id"] for t in emulator_state(server)["tasks"])
    assert len(listed) == 3


# --- errors through the client -----------------------------------------------------------------


def test_a_wrong_key_is_401_and_never_retried(
    emulator: EmulatorServer, urls: dict[str, str]
) -> None:
    with client_for(emulator, api_key="sk-wrong-key") as client:
        with pytest.raises(DashScopeError) as submit:
            client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING])
        with pytest.raises(DashScopeError) as get:
            client.get("any")
    for caught in (submit, get):
        assert (caught.value.status, caught.value.code) == (401, "InvalidApiKey")
        assert caught.value.request_id
        assert "sk-wrong-key" not in str(caught.value)
    assert submission_count(emulator) == 0


def test_a_refused_parameter_names_its_field(
    emulator: EmulatorServer, urls: dict[str, str]
) -> None:
    body = jobs(urls)[Function.VIDEO_OUTPAINTING]
    body["input"]["video_url"] = "http://127.0.0.1/视频.mp4"
    with client_for(emulator) as client, pytest.raises(DashScopeError) as caught:
        client.submit(body)
    assert caught.value.status == 400
    assert caught.value.code == "InvalidURL"
    assert "input.video_url" in caught.value.message
    assert submission_count(emulator) == 0


def test_an_unknown_task_reads_unknown(emulator: EmulatorServer) -> None:
    with client_for(emulator) as client:
        task = client.get("0385dc79-0000-0000-0000-000000000000")
    assert task.status is TaskStatus.UNKNOWN
    assert task.status.is_final


def test_a_failed_task_carries_its_code(
    start_emulator: StartEmulator, urls: dict[str, str]
) -> None:
    server = start_emulator(fault_rate=1.0, faults=[FaultKind.TASK_FAILURE])
    with client_for(server) as client:
        task = finish(client, client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING]).output.task_id)
    assert task.status is TaskStatus.FAILED
    assert task.output.code == "InternalError.Algo"
    assert task.output.message
    assert task.output.video_url is None


def test_an_input_the_service_cannot_fetch_fails_the_task(
    emulator: EmulatorServer, file_server: FileServer
) -> None:
    body = jobs(
        {"video": file_server.url(file_server.root / "missing.mp4")}
        | dict.fromkeys(("image", "mask_image", "mask_video"), "http://h/x")
    )[Function.VIDEO_OUTPAINTING]
    with client_for(emulator) as client:
        task = finish(client, client.submit(body).output.task_id)
    assert task.status is TaskStatus.FAILED
    assert task.output.code


# --- throttling and faults: what was billed ------------------------------------------------------


def test_throttled_submits_are_resent_and_each_job_is_billed_once(
    start_emulator: StartEmulator, urls: dict[str, str]
) -> None:
    server = start_emulator(submit_qps=1)
    body = jobs(urls)[Function.VIDEO_OUTPAINTING]
    with client_for(server) as client:
        ids = [client.submit(body).output.task_id for _ in range(3)]
    state = emulator_state(server)
    assert state["counters"]["throttled"].get("submit", 0) >= 1, "the limit was really hit"
    assert sorted(t["task_id"] for t in state["tasks"]) == sorted(ids)
    assert len(set(ids)) == 3


def test_throttled_reads_are_retried(start_emulator: StartEmulator, urls: dict[str, str]) -> None:
    server = start_emulator(query_qps=4, list_qps=1)
    with client_for(server) as client:
        task_id = client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING]).output.task_id
        statuses = [client.get(task_id).status for _ in range(7)]
        pages = [client.list(page_size=10).total for _ in range(2)]
    throttled = emulator_state(server)["counters"]["throttled"]
    assert throttled.get("query", 0) >= 1
    assert throttled.get("list", 0) >= 1
    assert all(
        s in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SUCCEEDED) for s in statuses
    )
    assert pages == [1, 1]


@pytest.mark.parametrize("fault", [FaultKind.ERROR_500, FaultKind.ERROR_503])
def test_a_server_error_on_submit_raises_after_one_try(
    start_emulator: StartEmulator, urls: dict[str, str], fault: FaultKind
) -> None:
    server = start_emulator(fault_rate=1.0, faults=[fault])
    with client_for(server) as client, pytest.raises(DashScopeError) as caught:
        client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING])
    assert caught.value.status in (500, 503)
    state = emulator_state(server)
    assert state["counters"]["faults"] == {fault.value: 1}, "sent exactly once"
    assert state["tasks"] == []


def test_a_dropped_submit_is_not_resent_even_when_it_made_a_task(
    start_emulator: StartEmulator, urls: dict[str, str]
) -> None:
    server = start_emulator(fault_rate=1.0, faults=[FaultKind.DROP], drop_creates_task=1.0)
    with client_for(server) as client, pytest.raises(DashScopeTransportError) as caught:
        client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING])
    assert caught.value.sent is True
    assert submission_count(server) == 1, "one task, billed once; the caller must look it up"


def test_reads_ride_out_a_flaky_service(
    start_emulator: StartEmulator, urls: dict[str, str]
) -> None:
    server = start_emulator(
        fault_rate=0.4,
        faults=[FaultKind.ERROR_500, FaultKind.ERROR_503, FaultKind.DROP],
        seed=3,
        drop_creates_task=0.0,
        submit_qps=0,
    )
    accepted: list[str] = []
    failures = 0
    with client_for(server) as client:
        while len(accepted) < 2:
            try:
                accepted.append(
                    client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING]).output.task_id
                )
            except DashScopeError:
                failures += 1
                assert failures < 30
        finals = [finish(client, task_id).status for task_id in accepted]
    state = emulator_state(server)
    assert finals == [TaskStatus.SUCCEEDED] * 2
    assert sum(state["counters"]["faults"].values()) > failures, "reads were hit too"
    assert sorted(t["task_id"] for t in state["tasks"]) == sorted(accepted)


# --- paging and temporary storage ---------------------------------------------------------------


def test_list_all_walks_every_page(start_emulator: StartEmulator, urls: dict[str, str]) -> None:
    server = start_emulator(submit_qps=0, latency=5.0, concurrency=1)
    with client_for(server) as client:
        ids = {
            client.submit(jobs(urls)[Function.VIDEO_OUTPAINTING]).output.task_id for _ in range(5)
        }
        first = client.list(page_size=2)
        listed = [item.task_id for item in client.list_all(page_size=2)]
        pending = client.list(status=TaskStatus.PENDING, page_size=10)
        other = client.list(model_name="wanx2.1-vace-plus")
    assert (first.total, first.total_page, len(first.data)) == (5, 3, 2)
    assert sorted(listed) == sorted(ids)
    assert {i.status for i in pending.data} == {TaskStatus.PENDING}
    assert other.total == 0


def test_upload_policy_then_an_oss_input_runs(
    emulator: EmulatorServer, media: MediaFactory
) -> None:
    video = media.video(width=320, height=240, fps=24, seconds=1.0)
    with client_for(emulator) as client:
        policy = client.get_upload_policy()
        form = policy.form_fields("in.mp4")
        uploaded = httpx.post(
            policy.upload_host,
            data=form,
            files={"file": ("in.mp4", video.read_bytes())},
            timeout=30,
        )
        assert uploaded.status_code == 200, uploaded.text
        body = jobs(
            {"video": policy.oss_url("in.mp4")}
            | dict.fromkeys(("image", "mask_image", "mask_video"), "http://h/x")
        )[Function.VIDEO_OUTPAINTING]
        task = finish(client, client.submit(body).output.task_id)
    assert task.status is TaskStatus.SUCCEEDED, task.output


# --- the rate budget: spent by the client on every request ---------------------------------


class CountingBudget:
    """Lets every call through and counts the slots asked for, by kind."""

    def __init__(self, order: list[str] | None = None) -> None:
        self.spent: Counter[str] = Counter()
        self.order = order if order is not None else []
        self._lock = threading.Lock()

    def acquire(self, kind: str) -> None:
        with self._lock:
            self.spent[kind] += 1
            self.order.append(kind)


class CountingTransport(httpx.HTTPTransport):
    """The requests that really went on the wire, by the budget's kinds."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            kind = "cancel" if path.endswith("/cancel") else "submit"
        else:
            kind = {"tasks": "list", "uploads": "uploads"}.get(path.rsplit("/", 1)[-1], "query")
        self.sent[kind] += 1
        return super().handle_request(request)


def test_every_request_on_the_wire_spends_the_budget_resends_included(
    start_emulator: StartEmulator, urls: dict[str, str]
) -> None:
    server = start_emulator(latency=60, concurrency=1, query_qps=2, submit_qps=1)
    budget, wire = CountingBudget(), CountingTransport()
    body = jobs(urls)[Function.VIDEO_OUTPAINTING]
    with client_for(server, budget=budget, transport=wire) as client:
        _running, queued = (client.submit(body).output.task_id for _ in range(2))
        for _ in range(6):
            client.get(queued)
        client.list(page_size=10)
        client.cancel(queued)
        client.get_upload_policy()
    throttled = emulator_state(server)["counters"]["throttled"]
    assert throttled.get("query", 0) >= 1, "no read was refused and sent again"
    assert wire.sent["query"] > 6
    assert wire.sent["uploads"] == 1  # the upload policy is not one of the account's limits
    assert budget.spent == {kind: n for kind, n in wire.sent.items() if kind != "uploads"}


def test_the_submit_slot_is_taken_before_the_caller_marks_the_request_sent(
    emulator: EmulatorServer, urls: dict[str, str]
) -> None:
    order: list[str] = []
    with client_for(emulator, budget=CountingBudget(order)) as client:
        client.submit(
            jobs(urls)[Function.VIDEO_OUTPAINTING], before_send=lambda: order.append("sending")
        )
    assert order == ["submit", "sending"]


def test_the_services_client_spends_the_services_budget(tmp_path: Path) -> None:
    from vaceflow.services import Services
    from vaceflow.settings import Settings

    budget = CountingBudget()
    settings = Settings(api_key=TEST_KEY, catalog_url=f"sqlite:///{tmp_path / 'c.db'}")
    with Services.from_settings(settings, budget=budget) as svc:
        assert svc.client.budget is budget

"""`TaskWatcher.wait` on one task against the emulator over real HTTP: results, failures,
faults, deadlines, cancelling, and what a wait costs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import TEST_KEY, StartEmulator, emulator_state
from tests.media import MediaFactory
from vaceflow.client import Client, RetryPolicy
from vaceflow.emulator import EmulatorServer, FaultKind
from vaceflow.errors import DashScopeError, TaskFailed, WaitCancelled, WaitTimeout
from vaceflow.limits import AccountLimits
from vaceflow.ratebudget import LocalRateBudget, RateBudget
from vaceflow.responses import TaskResponse, TaskStatus
from vaceflow.waiting import OnPoll, TaskWatcher
from vaceflow.waiting.watcher import POLL_BACKOFF

QUICK_BACKOFF = RetryPolicy(attempts=1_000, base=0.2, cap=1.0)


class Unlimited:
    """A budget that lets everything through: for tests that want the server to refuse."""

    def acquire(self, kind: str) -> None:
        pass


@pytest.fixture(scope="module")
def clip(media: MediaFactory) -> Path:
    """The smallest input the emulator renders quickly."""
    return media.video(width=320, height=240, fps=16, seconds=1.0)


def repaint(clip_url: str) -> dict[str, object]:
    return {
        "input": {"function": "video_repainting", "prompt": "a fox", "video_url": clip_url},
        "parameters": {"control_condition": "depth"},
    }


def client_for(
    server: EmulatorServer, retry: RetryPolicy | None = None, *, budget: RateBudget | None = None
) -> Client:
    """A client spending `budget` (by default one at the account's limits)."""
    return Client(
        TEST_KEY, base_url=server.base_url, retry=retry, budget=budget or LocalRateBudget()
    )


def wait_for_task(
    client: Client,
    task_id: str,
    *,
    timeout: float | None = None,
    expected: float | None = None,
    on_poll: OnPoll | None = None,
    cancel_event: threading.Event | None = None,
    backoff: RetryPolicy = POLL_BACKOFF,
) -> TaskResponse:
    """One task through a watcher of its own (as one job in a process)."""
    with TaskWatcher(client, backoff=backoff) as watcher:
        return watcher.wait(
            task_id, expected=expected, timeout=timeout, on_poll=on_poll, cancel=cancel_event
        )


def submit(server: EmulatorServer, url: str) -> str:
    """Submit until accepted (an emulator injecting faults may refuse a submit)."""
    with client_for(server) as client:
        for _ in range(20):
            try:
                return client.submit(repaint(url)).output.task_id
            except DashScopeError:
                continue
    raise AssertionError("the emulator never accepted the job")


def test_follows_a_task_to_succeeded(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(latency=1.0)
    task_id = submit(server, file_server.url(clip))
    seen: list[tuple[TaskStatus, int]] = []
    with client_for(server) as client:
        task = wait_for_task(
            client,
            task_id,
            expected=1.0,
            on_poll=lambda status, elapsed, polls: seen.append((status, polls)),
        )
    assert task.status is TaskStatus.SUCCEEDED
    assert task.output.video_url
    assert seen[-1] == (TaskStatus.SUCCEEDED, len(seen))
    assert [p for _, p in seen] == list(range(1, len(seen) + 1))
    record = next(t for t in emulator_state(server)["tasks"] if t["task_id"] == task_id)
    assert record["queries"] == len(seen)  # one query per poll reported, no hidden ones


def test_a_failed_task_raises_with_its_code(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(fault_rate=1.0, faults=frozenset({FaultKind.TASK_FAILURE}))
    task_id = submit(server, file_server.url(clip))
    with client_for(server) as client, pytest.raises(TaskFailed) as caught:
        wait_for_task(client, task_id, timeout=60)
    assert caught.value.status is TaskStatus.FAILED
    assert caught.value.code == "InternalError.Algo"
    assert caught.value.task_id == task_id


def test_the_wait_survives_500_503_and_dropped_connections(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    faults = frozenset({FaultKind.ERROR_500, FaultKind.ERROR_503, FaultKind.DROP})
    server = start_emulator(latency=3.0, fault_rate=0.6, faults=faults, seed=11)
    task_id = submit(server, file_server.url(clip))
    # A client that never retries by itself: every fault reaches the wait.
    with client_for(server, retry=RetryPolicy.never()) as client:
        task = wait_for_task(client, task_id, expected=3.0, backoff=QUICK_BACKOFF)
    assert task.status is TaskStatus.SUCCEEDED
    injected = emulator_state(server)["counters"]["faults"]
    assert injected.get("error_500", 0) + injected.get("error_503", 0) + injected.get("drop", 0) > 0


def test_the_wait_survives_429s(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(latency=3.0, query_qps=0.4)
    task_id = submit(server, file_server.url(clip))
    with client_for(server, retry=RetryPolicy.never(), budget=Unlimited()) as client:
        task = wait_for_task(client, task_id, backoff=QUICK_BACKOFF)
    assert task.status is TaskStatus.SUCCEEDED
    assert emulator_state(server)["counters"]["throttled"].get("query", 0) > 0


def test_a_budget_at_the_account_limit_draws_no_429(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(latency=3.0, query_qps=0.4)
    task_id = submit(server, file_server.url(clip))
    budget = LocalRateBudget(AccountLimits(query_per_second=0.4))
    with client_for(server, retry=RetryPolicy.never(), budget=budget) as client:
        task = wait_for_task(client, task_id)
    assert task.status is TaskStatus.SUCCEEDED
    assert emulator_state(server)["counters"]["throttled"].get("query", 0) == 0


def test_the_deadline_raises_wait_timeout_keeping_the_task_id(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(latency=60.0)
    task_id = submit(server, file_server.url(clip))
    with client_for(server) as client, pytest.raises(WaitTimeout) as caught:
        wait_for_task(client, task_id, timeout=2.5)
    assert caught.value.task_id == task_id
    assert caught.value.status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    assert task_id in str(caught.value)
    assert not isinstance(caught.value, TaskFailed)  # the task goes on: nothing failed


def test_cancel_event_cancels_a_pending_task(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(latency=60.0, concurrency=1)
    url = file_server.url(clip)
    running, queued = submit(server, url), submit(server, url)
    stop = threading.Event()

    def stop_when_pending(status: TaskStatus, elapsed: float, polls: int) -> None:
        if status is TaskStatus.PENDING:
            stop.set()

    with client_for(server) as client, pytest.raises(WaitCancelled) as caught:
        wait_for_task(client, queued, cancel_event=stop, on_poll=stop_when_pending)
    assert caught.value.task_canceled
    assert caught.value.status is TaskStatus.CANCELED
    states = {t["task_id"]: t["status"] for t in emulator_state(server)["tasks"]}
    assert states == {running: "RUNNING", queued: "CANCELED"}


def test_cancel_event_leaves_a_running_task_running(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(latency=60.0)
    task_id = submit(server, file_server.url(clip))
    stop = threading.Event()

    def stop_when_running(status: TaskStatus, elapsed: float, polls: int) -> None:
        if status is TaskStatus.RUNNING:
            stop.set()

    with client_for(server) as client, pytest.raises(WaitCancelled) as caught:
        wait_for_task(client, task_id, cancel_event=stop, on_poll=stop_when_running)
    assert not caught.value.task_canceled
    assert caught.value.status is TaskStatus.RUNNING
    assert "not cancelled" in str(caught.value)
    states = {t["task_id"]: t["status"] for t in emulator_state(server)["tasks"]}
    assert states == {task_id: "RUNNING"}


def test_a_wrong_key_is_not_retried(start_emulator: StartEmulator) -> None:
    server = start_emulator()
    with (
        Client("sk-wrong", base_url=server.base_url, budget=LocalRateBudget()) as client,
        pytest.raises(DashScopeError) as caught,
    ):
        wait_for_task(client, "any-task", timeout=30)
    assert caught.value.status == 401

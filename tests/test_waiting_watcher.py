"""`TaskWatcher` against the emulator: a batch followed by the list, not by per-task polling."""

from __future__ import annotations

from concurrent.futures import wait
from pathlib import Path

import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import TEST_KEY, StartEmulator, emulator_state
from tests.media import MediaFactory
from vaceflow.client import Client
from vaceflow.errors import TaskFailed, WaitTimeout
from vaceflow.limits import AccountLimits
from vaceflow.ratebudget import LocalRateBudget
from vaceflow.responses import TaskStatus
from vaceflow.waiting import PollSchedule, TaskWatcher, sdk_interval

FAST = PollSchedule(dense=1.0)


@pytest.fixture(scope="module")
def clip(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=16, seconds=1.0)


def repaint(url: str, n: int) -> dict[str, object]:
    return {
        "input": {"function": "video_repainting", "prompt": f"fox {n}", "video_url": url},
        "parameters": {"control_condition": "depth"},
    }


def sdk_poll_count(seconds: float) -> int:
    """How many queries the SDK's `wait()` makes on a task that takes `seconds`."""
    count, now = 1, 0.0
    while now < seconds:
        now += sdk_interval(now)
        count += 1
    return count


def test_a_batch_of_32_draws_no_429_and_about_one_query_per_task(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    limits = AccountLimits(query_per_second=5, list_per_second=5, submit_per_second=1000)
    server = start_emulator(
        latency=2.0, concurrency=8, submit_qps=0, query_qps=5, list_qps=5, seed=3
    )
    url = file_server.url(clip)
    with Client(TEST_KEY, base_url=server.base_url, budget=LocalRateBudget(limits)) as client:
        ids = [client.submit(repaint(url, n)).output.task_id for n in range(32)]
        with TaskWatcher(client, schedule=FAST) as watcher:
            futures = {task_id: watcher.watch(task_id, expected=2.0) for task_id in ids}
            done, _ = wait(futures.values(), timeout=240)
            assert len(done) == len(ids)
            results = {task_id: f.result() for task_id, f in futures.items()}
    assert all(r.status is TaskStatus.SUCCEEDED and r.output.video_url for r in results.values())

    state = emulator_state(server)
    assert state["counters"]["throttled"] == {}
    tasks = [t for t in state["tasks"] if t["task_id"] in futures]
    queries = sum(t["queries"] for t in tasks)
    assert queries <= 1.25 * len(ids)
    sdk = sum(sdk_poll_count(t["end_time"] - t["submit_time"]) for t in tasks)
    assert queries <= sdk / 4, (queries, sdk)


def test_a_task_the_list_cannot_show_falls_back_to_its_own_gets(
    start_emulator: StartEmulator,
) -> None:
    server = start_emulator()
    with (
        Client(TEST_KEY, base_url=server.base_url, budget=LocalRateBudget()) as client,
        TaskWatcher(client, grace=1.0) as watcher,
    ):
        future = watcher.watch("no-such-task")
        with pytest.raises(TaskFailed) as caught:
            future.result(timeout=60)
    assert caught.value.status is TaskStatus.UNKNOWN
    assert caught.value.task_id == "no-such-task"
    assert emulator_state(server)["counters"]["queries"] == 1


def test_wait_times_out_and_can_resume(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    server = start_emulator(latency=4.0)
    with Client(TEST_KEY, base_url=server.base_url, budget=LocalRateBudget()) as client:
        task_id = client.submit(repaint(file_server.url(clip), 0)).output.task_id
        with TaskWatcher(client, schedule=FAST) as watcher:
            with pytest.raises(WaitTimeout) as caught:
                watcher.wait(task_id, timeout=1.5)
            assert not isinstance(caught.value, TaskFailed)
            assert caught.value.task_id == task_id
            assert caught.value.status in (TaskStatus.PENDING, TaskStatus.RUNNING)
            assert watcher.wait(task_id, timeout=60).status is TaskStatus.SUCCEEDED


def test_the_same_task_watched_twice_shares_one_future(start_emulator: StartEmulator) -> None:
    server = start_emulator()
    with (
        Client(TEST_KEY, base_url=server.base_url, budget=LocalRateBudget()) as client,
        TaskWatcher(client, schedule=FAST) as watcher,
    ):
        first, second = watcher.watch("t-1"), watcher.watch("t-1")
        assert first is second
        watcher.close()
        assert first.cancelled()
        with pytest.raises(RuntimeError):
            watcher.watch("t-2")


def test_sdk_poll_count_helper() -> None:
    # 0, 1, 2, 4, 6, 8, 12 -> a 10 s task costs the SDK 7 queries.
    assert sdk_poll_count(10) == 7

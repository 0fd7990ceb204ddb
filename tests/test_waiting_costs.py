"""What waiting costs on real emulator runs: calls counted by the service, and when the
end was noticed in the service's own clock (never our wall time).

One task is followed by `get`s alone, at the schedule's pace: the look before its end
came inside the dense window around the expected end, so the end was noticed within
the schedule's dense interval. Several tasks cost one list call a tick, whatever their
number, and one `get` each for the result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import TEST_KEY, StartEmulator, emulator_state
from tests.media import MediaFactory
from tests.test_waiting_watcher import repaint, sdk_poll_count
from vaceflow.catalog import Catalog
from vaceflow.client import Client
from vaceflow.jobs import parse_job
from vaceflow.limits import AccountLimits
from vaceflow.ratebudget import LocalRateBudget
from vaceflow.responses import TaskResponse, TaskStatus
from vaceflow.waiting import PollSchedule, TaskWatcher

SCHEDULE = PollSchedule()
CST = timezone(timedelta(hours=8))
"""The service's timestamps are China Standard Time."""


@pytest.fixture(scope="module")
def clip(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=16, seconds=1.0)


def ran_at_each_query(task: dict[str, Any]) -> list[float]:
    """Seconds the task had run at each query (the service's clock)."""
    return [t - task["scheduled_time"] for t in task["queried_at"]]


def test_one_task_costs_a_few_gets_and_its_end_is_noticed_within_the_dense_window(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    latency = 20.0
    server = start_emulator(latency=latency)
    seen: list[tuple[TaskStatus, int]] = []
    with Client(TEST_KEY, base_url=server.base_url, budget=LocalRateBudget()) as client:
        task_id = client.submit(repaint(file_server.url(clip), 0)).output.task_id
        with TaskWatcher(client, schedule=SCHEDULE) as watcher:
            done = watcher.wait(
                task_id, expected=latency, on_poll=lambda s, _, n: seen.append((s, n))
            )
    assert done.status is TaskStatus.SUCCEEDED

    state = emulator_state(server)
    task = next(t for t in state["tasks"] if t["task_id"] == task_id)
    assert state["counters"].get("lists", 0) == 0  # one task: a get is the cheaper call
    assert task["queries"] == len(seen) == seen[-1][1]  # every call was a look, none hidden
    ran = ran_at_each_query(task)
    ended = task["end_time"] - task["scheduled_time"]
    before, after = [r for r in ran if r < ended], [r for r in ran if r >= ended]
    assert len(after) == 1  # the first look after the end saw it
    assert before[-1] >= latency - SCHEDULE.dense / SCHEDULE.approach  # in the dense window
    starts = task["scheduled_time"] - task["submit_time"]  # the watch began at the submit
    planned = SCHEDULE.looks(
        ends=task["end_time"] - task["submit_time"], expected=latency, starts=starts
    )
    assert task["queries"] <= len(planned) + 1  # the schedule's own count (a late tick aside)
    assert task["queries"] < sdk_poll_count(task["end_time"] - task["submit_time"])


def test_many_tasks_cost_one_list_a_tick_and_one_get_each(
    start_emulator: StartEmulator, file_server: FileServer, clip: Path
) -> None:
    latency, count = 10.0, 6
    server = start_emulator(latency=latency, concurrency=count, submit_qps=0)
    url = file_server.url(clip)
    budget = LocalRateBudget(AccountLimits(submit_per_second=1000))  # submitted at once
    with Client(TEST_KEY, base_url=server.base_url, budget=budget) as client:
        ids = [client.submit(repaint(url, n)).output.task_id for n in range(count)]
        with TaskWatcher(client, schedule=SCHEDULE) as watcher:
            futures = [watcher.watch(task_id, expected=latency) for task_id in ids]
            results = [f.result(timeout=120) for f in futures]
            lists = watcher.list_calls
    assert all(r.status is TaskStatus.SUCCEEDED for r in results)

    state = emulator_state(server)
    tasks = [t for t in state["tasks"] if t["task_id"] in ids]
    assert [t["queries"] for t in tasks] == [1] * count  # a get only for each result
    assert state["counters"]["lists"] == lists
    last = max(tasks, key=lambda t: t["end_time"])
    planned = SCHEDULE.looks(
        ends=last["end_time"] - min(t["submit_time"] for t in tasks),
        expected=latency,
        starts=last["scheduled_time"] - last["submit_time"],
    )
    assert lists <= len(planned) + 1  # the ticks of one task, not one per task


def test_the_catalog_expects_the_run_time_not_the_time_queued(tmp_path: Path) -> None:
    """`median_run_seconds`: the service's RUNNING start to its end, per function."""
    job = parse_job(repaint("https://in.example/a.mp4", 0))
    base = datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC)

    def at(seconds: float) -> str:
        moment = (base + timedelta(seconds=seconds)).astimezone(CST)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    with Catalog(f"sqlite:///{tmp_path / 'c.db'}").upgrade() as catalog:
        for n, (queued, ran) in enumerate([(100, 30), (5, 40), (50, 35)]):
            job_id = catalog.claim(f"{n}" * 64, job).id
            assert catalog.begin_submit(job_id, "worker", 60)
            catalog.record_submitted(job_id, f"task-{n}", "req")
            start, end = at(queued), at(queued + ran)
            catalog.record_status(job_id, _task(f"task-{n}", "RUNNING", scheduled_time=start))
            catalog.record_status(
                job_id, _task(f"task-{n}", "SUCCEEDED", scheduled_time=start, end_time=end)
            )
        assert catalog.median_run_seconds() == {"video_repainting": pytest.approx(35)}


def _task(task_id: str, status: str, **times: str) -> TaskResponse:
    output = {"task_id": task_id, "task_status": status, **times}
    return TaskResponse.model_validate({"request_id": "r", "output": output})

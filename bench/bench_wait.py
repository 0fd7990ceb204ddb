"""What waiting costs, beside the official SDK: calls per job and the lag to notice the end.

Part 1, one job: on one emulator per task length (300 s and 600 s RUNNING, run at the
same time), each task is followed by four waiters that start together:

- `vaceflow`: a `TaskWatcher` told the expected run time, as a catalog that has seen
  tasks of this kind tells it (`Catalog.median_run_seconds`), at the default
  `VACEFLOW_STATUS_INTERVAL` (5 s);
- `vaceflow, 15 s`: the same at `VACEFLOW_STATUS_INTERVAL=15`;
- `vaceflow, nothing seen`: no expected time (a catalog's first task of a function);
- `sdk`: dashscope 2.0.2's `VideoSynthesis.wait()`.

Calls are the service's own count: each vaceflow waiter follows one task, so each of
its looks is one `get`; the SDK's are the task's queries less vaceflow's. The lag is
from the emulator's `end_time` to the waiter returning.

Part 2, many jobs (first, so its renders do not load part 1): `--batch` tasks in
flight on an emulator enforcing the account's 20 queries/s, all followed by one
`TaskWatcher`: calls per job, peak rate of each kind of call, 429s, lag.

    .venv/bin/python bench/bench_wait.py [--jobs 3] [--lengths 300 600] [--batch 200]

About 11 minutes (the longest task, plus part 2). Writes
bench/results/bench_wait-<UTC time>.json and prints a table.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import http.server
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import Any

from _common import emulator_tasks, make_clip, write_results
from dashscope import VideoSynthesis

from vaceflow.client import Client
from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.limits import AccountLimits
from vaceflow.ratebudget import LocalRateBudget
from vaceflow.responses import TaskListResponse, TaskResponse, TaskStatus
from vaceflow.waiting import PollSchedule, TaskWatcher

KEY = "sk-bench-wait"
OURS: dict[str, tuple[PollSchedule, bool]] = {
    "vaceflow": (PollSchedule(dense=5.0), True),
    "vaceflow, 15 s": (PollSchedule(dense=15.0), True),
    "vaceflow, nothing seen": (PollSchedule(dense=5.0), False),
}
"""Waiter name -> (schedule, told the expected run time)."""
SIDES = [*OURS, "sdk"]


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def job(url: str, n: int) -> dict[str, Any]:
    return {
        "input": {"function": "video_repainting", "prompt": f"bench {n}", "video_url": url},
        "parameters": {"control_condition": "depth"},
    }


class Counting:
    """The client, with the moment of every status query and list call recorded (once it
    is answered: the client's rate budget may hold a call back before it leaves)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.gets: list[float] = []
        self.lists: list[float] = []
        self._lock = threading.Lock()

    def get(self, task_id: str) -> TaskResponse:
        answer = self._client.get(task_id)
        with self._lock:
            self.gets.append(time.monotonic())
        return answer

    def cancel(self, task_id: str) -> None:
        self._client.cancel(task_id)

    def list(self, **query: Any) -> TaskListResponse:
        answer = self._client.list(**query)
        with self._lock:
            self.lists.append(time.monotonic())
        return answer


def peak_rate(stamps: list[float]) -> int:
    """Most calls in any one-second window."""
    stamps = sorted(stamps)
    return max((bisect.bisect_left(stamps, t + 1.0) - i for i, t in enumerate(stamps)), default=0)


# --- part 1: one task, four waiters -----------------------------------------------------------


def budget() -> LocalRateBudget:
    """The account's query and list rates; submits as fast as this emulator takes them."""
    return LocalRateBudget(AccountLimits(submit_per_second=1000))


def follow(
    client: Client, base_url: str, task_id: str, offset: float, latency: float
) -> dict[str, Any]:
    """Every waiter starts `offset` s after the submit (as a busy worker would)."""
    time.sleep(offset)
    seen: dict[str, float] = {}
    looks: dict[str, int] = dict.fromkeys(OURS, 0)

    def ours(name: str) -> None:
        schedule, informed = OURS[name]

        def count(status: TaskStatus, elapsed: float, n: int) -> None:
            looks[name] = n

        with TaskWatcher(client, schedule=schedule) as watcher:
            done = watcher.wait(task_id, expected=latency if informed else None, on_poll=count)
        assert done.status is TaskStatus.SUCCEEDED, done
        seen[name] = time.time()

    def sdk() -> None:
        done = VideoSynthesis.wait(task_id, api_key=KEY, base_address=base_url)
        assert done.output.task_status == "SUCCEEDED", done
        seen["sdk"] = time.time()

    threads = [threading.Thread(target=ours, args=(name,)) for name in OURS]
    threads.append(threading.Thread(target=sdk))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"task_id": task_id, "seen": seen, "looks": looks}


def one_length(base: str, jobs: int, latency: float, seed: int) -> list[dict[str, Any]]:
    config = EmulatorConfig(api_key=KEY, latency=latency, concurrency=jobs, submit_qps=0, seed=1)
    rng = random.Random(seed)
    with (
        EmulatorServer(config) as server,
        Client(KEY, base_url=server.base_url, budget=budget()) as client,
    ):
        ids = [client.submit(job(base + "/clip.mp4", n)).output.task_id for n in range(jobs)]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            offsets = [rng.uniform(0, 2) for _ in ids]
            runs = list(
                pool.map(
                    functools.partial(follow, client, server.base_url, latency=latency),
                    ids,
                    offsets,
                )
            )
        tasks = emulator_tasks(server)
    rows: list[dict[str, Any]] = []
    for run in runs:
        record = tasks[run["task_id"]]
        sides = {**run["looks"], "sdk": record["queries"] - sum(run["looks"].values())}
        for side, calls in sides.items():
            rows.append(
                {
                    "latency": latency,
                    "side": side,
                    "task_id": run["task_id"],
                    "run_seconds": record["end_time"] - record["scheduled_time"],
                    "calls": calls,
                    "lag": run["seen"][side] - record["end_time"],
                }
            )
    return rows


def part_one(base: str, jobs: int, lengths: list[float]) -> list[dict[str, Any]]:
    """Every length at once: the run takes as long as the longest task."""
    with ThreadPoolExecutor(max_workers=len(lengths)) as pool:
        parts = pool.map(lambda ls: one_length(base, jobs, ls[1], ls[0]), enumerate(lengths))
        return [row for part in parts for row in part]


# --- part 2: a batch through one watcher ----------------------------------------------------


def part_two(base: str, batch: int, latency: float, concurrency: int) -> dict[str, Any]:
    config = EmulatorConfig(
        api_key=KEY,
        latency=latency,
        concurrency=concurrency,
        submit_qps=0,
        query_qps=20,
        list_qps=20,
        seed=2,
    )
    with (
        EmulatorServer(config) as server,
        Client(KEY, base_url=server.base_url, budget=budget()) as client,
    ):
        counting = Counting(client)
        seen: dict[str, float] = {}
        started = time.monotonic()
        with TaskWatcher(counting) as watcher:
            futures = {}
            for n in range(batch):
                task_id = client.submit(job(base + "/clip.mp4", n)).output.task_id
                future = watcher.watch(task_id, expected=latency)
                future.add_done_callback(lambda _, t=task_id: seen.__setitem__(t, time.time()))
                futures[task_id] = future
            wait_all(futures.values())
            failed = sum(1 for f in futures.values() if f.exception() is not None)
        makespan = time.monotonic() - started
        tasks = emulator_tasks(server)
    counters = tasks.pop("_counters")
    ours = [tasks[t] for t in futures]
    lags = [seen[t["task_id"]] - t["end_time"] for t in ours]
    calls = len(counting.gets) + len(counting.lists)
    return {
        "jobs": batch,
        "latency": latency,
        "emulator_concurrency": concurrency,
        "failed": failed,
        "makespan_s": round(makespan, 1),
        "calls_per_job": round(calls / batch, 2),
        "get_calls": len(counting.gets),
        "list_calls": len(counting.lists),
        "peak_get_rate": peak_rate(counting.gets),
        "peak_list_rate": peak_rate(counting.lists),
        "throttled_429": counters["throttled"],
        "lag_median_s": round(statistics.median(lags), 2),
        "lag_max_s": round(max(lags), 2),
    }


# --- report -----------------------------------------------------------------------------------


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for latency in sorted({r["latency"] for r in rows}):
        for side in SIDES:
            sel = [r for r in rows if r["latency"] == latency and r["side"] == side]
            summary.append(
                {
                    "latency": latency,
                    "side": side,
                    "jobs": len(sel),
                    "calls_per_job": statistics.mean(r["calls"] for r in sel),
                    "calls_max": max(r["calls"] for r in sel),
                    "lag_median_s": statistics.median(r["lag"] for r in sel),
                    "lag_max_s": max(r["lag"] for r in sel),
                }
            )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="tasks per length in part 1")
    parser.add_argument(
        "--lengths", type=float, nargs="+", default=[300.0, 600.0], help="seconds RUNNING"
    )
    parser.add_argument("--batch", type=int, default=200, help="tasks in flight in part 2")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-wait-") as tmp:
        folder = Path(tmp)
        make_clip(folder)
        httpd, base = serve(folder)
        try:
            batch = part_two(base, args.batch, latency=10.0, concurrency=50) if args.batch else {}
            rows = part_one(base, args.jobs, args.lengths)
        finally:
            httpd.shutdown()

    summary = summarize(rows)
    print(f"\nPart 1: one task followed four ways at once ({args.jobs} tasks per length)")
    print(
        f"{'task':>6} {'waiter':<24} {'calls/job':>9} {'calls max':>9} "
        f"{'lag median':>10} {'lag max':>8}"
    )
    for s in summary:
        print(
            f"{s['latency']:>5.0f}s {s['side']:<24} {s['calls_per_job']:>9.1f} "
            f"{s['calls_max']:>9} {s['lag_median_s']:>9.2f}s {s['lag_max_s']:>7.2f}s"
        )
    if batch:
        print(f"\nPart 2: {batch['jobs']} tasks in flight, one TaskWatcher, 20 queries/s")
        for key, value in batch.items():
            print(f"  {key:<22} {value}")
    out = write_results(
        "bench_wait",
        {"lengths": args.lengths, "part1": summary, "part1_rows": rows, "part2": batch},
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

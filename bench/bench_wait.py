"""How well vaceflow waits, against the emulator: polls per job, noticing lag, 429s.

Part 1 follows the same emulator tasks (RUNNING 20 s and 60 s) three ways at once:
`wait_for_task` told the typical duration, `wait_for_task` without it, and the official
SDK's `VideoSynthesis.wait()`. For each: queries per job and the lag between the
emulator's end_time and the moment the waiter returned.

Part 2 puts 200 tasks in flight on an emulator enforcing the account's 20 queries/s
and follows them all with one `TaskWatcher`: queries per job, peak query rate, 429s.

    .venv/bin/python bench/bench_wait.py [--jobs 3] [--batch 200] [--quick]

Writes bench/results/bench_wait-<UTC time>.json and prints a table.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import http.server
import json
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dashscope
from _common import RESULTS, emulator_tasks, make_clip
from dashscope import VideoSynthesis

from vaceflow.client import Client
from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.ratebudget import LocalRateBudget
from vaceflow.responses import TaskListResponse, TaskResponse
from vaceflow.waiting import TaskWatcher, wait_for_task

KEY = "sk-bench-wait"


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
    """The client, with the moment of every status query and list call recorded."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.gets: list[float] = []
        self.lists: list[float] = []
        self._lock = threading.Lock()

    def get(self, task_id: str) -> TaskResponse:
        with self._lock:
            self.gets.append(time.monotonic())
        return self._client.get(task_id)

    def cancel(self, task_id: str) -> None:
        self._client.cancel(task_id)

    def list(self, **query: Any) -> TaskListResponse:
        with self._lock:
            self.lists.append(time.monotonic())
        return self._client.list(**query)


def peak_rate(stamps: list[float]) -> int:
    """Most calls in any one-second window."""
    stamps = sorted(stamps)
    return max((bisect.bisect_left(stamps, t + 1.0) - i for i, t in enumerate(stamps)), default=0)


# --- part 1: one task, three waiters --------------------------------------------------------


def follow_three_ways(
    client: Client, task_id: str, offset: float, *, latency: float
) -> dict[str, Any]:
    """All three waiters start `offset` s after the submit (as a busy worker would), so
    that tasks end at different points of the poll cycles, alike for every waiter."""
    time.sleep(offset)
    seen: dict[str, float] = {}
    polls = {"vaceflow": 0, "vaceflow_uninformed": 0}
    budget = LocalRateBudget()

    def ours(name: str, expected: float | None) -> None:
        def count(status: object, elapsed: float, n: int) -> None:
            polls[name] = n

        wait_for_task(client, task_id, budget=budget, expected=expected, on_poll=count)
        seen[name] = time.time()

    def sdk() -> None:
        done = VideoSynthesis.wait(task_id, api_key=KEY)
        assert done.output.task_status == "SUCCEEDED", done
        seen["sdk"] = time.time()

    threads = [
        threading.Thread(target=ours, args=("vaceflow", latency)),
        threading.Thread(target=ours, args=("vaceflow_uninformed", None)),
        threading.Thread(target=sdk),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"task_id": task_id, "latency": latency, "seen": seen, "polls": polls}


def part_one(base: str, jobs: int, latencies: list[float]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rng = random.Random(5)
    for latency in latencies:
        config = EmulatorConfig(
            api_key=KEY, latency=latency, concurrency=jobs, submit_qps=0, seed=1
        )
        with EmulatorServer(config) as server, Client(KEY, base_url=server.base_url) as client:
            dashscope.base_http_api_url = server.base_url
            ids = [client.submit(job(base + "/clip.mp4", n)).output.task_id for n in range(jobs)]
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                offsets = [rng.uniform(0, 5) for _ in ids]
                follow = functools.partial(follow_three_ways, client, latency=latency)
                runs = list(pool.map(follow, ids, offsets))
            tasks = emulator_tasks(server)
        for run in runs:
            record = tasks[run["task_id"]]
            total = record["queries"]
            ours = run["polls"]
            sides = {**ours, "sdk": total - sum(ours.values())}
            for side, count in sides.items():
                rows.append(
                    {
                        "latency": latency,
                        "side": side,
                        "task_id": run["task_id"],
                        "run_seconds": record["end_time"] - record["submit_time"],
                        "polls": count,
                        "lag": run["seen"][side] - record["end_time"],
                    }
                )
    return rows


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
    with EmulatorServer(config) as server, Client(KEY, base_url=server.base_url) as client:
        counting = Counting(client)
        seen: dict[str, float] = {}
        started = time.monotonic()
        with TaskWatcher(counting, budget=LocalRateBudget()) as watcher:
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
    return {
        "jobs": batch,
        "latency": latency,
        "emulator_concurrency": concurrency,
        "failed": failed,
        "makespan_s": round(makespan, 1),
        "get_queries": sum(t["queries"] for t in ours),
        "queries_per_job": sum(t["queries"] for t in ours) / batch,
        "list_calls": len(counting.lists),
        "peak_query_rate": peak_rate(counting.gets),
        "peak_list_rate": peak_rate(counting.lists),
        "throttled_429": counters["throttled"],
        "lag_median_s": round(statistics.median(lags), 2),
        "lag_max_s": round(max(lags), 2),
    }


# --- report -----------------------------------------------------------------------------------


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for latency in sorted({r["latency"] for r in rows}):
        for side in ("vaceflow", "vaceflow_uninformed", "sdk"):
            sel = [r for r in rows if r["latency"] == latency and r["side"] == side]
            summary.append(
                {
                    "latency": latency,
                    "side": side,
                    "jobs": len(sel),
                    "polls_per_job": statistics.mean(r["polls"] for r in sel),
                    "lag_median_s": statistics.median(r["lag"] for r in sel),
                    "lag_max_s": max(r["lag"] for r in sel),
                }
            )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="tasks per latency in part 1")
    parser.add_argument("--batch", type=int, default=200, help="tasks in flight in part 2")
    parser.add_argument("--quick", action="store_true", help="latencies 5 s and 10 s")
    args = parser.parse_args()
    latencies = [5.0, 10.0] if args.quick else [20.0, 60.0]

    with tempfile.TemporaryDirectory(prefix="bench-wait-") as tmp:
        folder = Path(tmp)
        make_clip(folder)
        httpd, base = serve(folder)
        try:
            rows = part_one(base, args.jobs, latencies)
            batch = part_two(base, args.batch, latency=latencies[0] / 2, concurrency=50)
        finally:
            httpd.shutdown()

    summary = summarize(rows)
    print(f"\nPart 1: one task followed three ways ({args.jobs} tasks per latency)")
    print(f"{'latency':>8} {'waiter':<20} {'polls/job':>10} {'lag median':>11} {'lag max':>8}")
    for s in summary:
        print(
            f"{s['latency']:>7.0f}s {s['side']:<20} {s['polls_per_job']:>10.1f} "
            f"{s['lag_median_s']:>10.2f}s {s['lag_max_s']:>7.2f}s"
        )
    print(f"\nPart 2: {batch['jobs']} tasks in flight, one TaskWatcher, emulator at 20 queries/s")
    for key, value in batch.items():
        print(f"  {key:<22} {value}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"bench_wait-{stamp}.json"
    out.write_text(
        json.dumps(
            {"latencies": latencies, "part1": summary, "part1_rows": rows, "part2": batch},
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

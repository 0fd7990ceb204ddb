"""A batch through `vace_batch`: makespan beside the ideal, and tasks at once (issue 8 §7).

For each N, one batch of distinct jobs (distinct prompts over one 320x240 1 s clip, so
conform is cheap and staging stores the clip once) runs through `vace_batch` with
`max_in_flight=N` against an emulator that runs N tasks at once, each RUNNING L s
(the account's request rate limits kept). Prefect: a local `prefect server start`
this script starts, so the in-flight bound is the Prefect global concurrency limit
production uses. Reported per N: makespan beside the ideal ceil(jobs/N) x L (ratio),
the tasks running at once sampled from `/_emulator/tasks` every 0.5 s (max, mean),
how long a slot freed by an ended task stayed empty until the next submission,
submissions, status queries and list calls, 429s, failures.

    .venv/bin/python bench/bench_batch.py [--jobs 100] [--latency 5] [--n 2 5 10] [--quick]

--quick: 20 jobs. Writes bench/results/bench_batch-<UTC time>.json and prints a table.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    emulator_tasks,
    make_clip,
    prefect_server,
    repaint_body,
    seaweedfs,
    vaceflow_env,
    warm_up_flow,
    write_results,
)

from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.stack.seaweedfs import SeaweedFS

KEY = "sk-bench-batch"
SAMPLE_SECONDS = 0.5


class RunningSampler:
    """Reads the emulator's `running` count every 0.5 s in a thread until stopped."""

    def __init__(self, server: EmulatorServer) -> None:
        self._url = server.root_url + "/_emulator/tasks"
        self._stop = threading.Event()
        self.samples: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(SAMPLE_SECONDS):
                self.samples.append(int(client.get(self._url).json()["running"]))

    def __enter__(self) -> RunningSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def refill_gaps(tasks: list[dict[str, Any]]) -> list[float]:
    """For each task that ended while others waited to be submitted: seconds until the
    next submission, i.e. how long the freed slot stayed empty (noticing the end,
    collecting, the in-flight slot hand-over, staging and submitting the next job)."""
    submits = sorted(t["submit_time"] for t in tasks)
    gaps = []
    for end in (t["end_time"] for t in tasks if t["end_time"] is not None):
        after = bisect.bisect_left(submits, end)
        if after < len(submits):
            gaps.append(submits[after] - end)
    return gaps


def one_batch(
    n: int, jobs: int, latency: float, clip: Path, s3: SeaweedFS, folder: Path, interval: float
) -> dict[str, Any]:
    from flows.batch import vace_batch
    from tasks.runtime import reset_services
    from vaceflow.jobs import parse_job

    config = EmulatorConfig(api_key=KEY, latency=latency, concurrency=n, seed=n)
    with EmulatorServer(config) as server:
        env = vaceflow_env(
            emulator=server, key=KEY, s3=s3, data=folder / f"data-{n}", status_interval=interval
        )
        os.environ.update(env)
        reset_services()
        batch = [
            parse_job(repaint_body(f"bench batch N={n} #{i}: a fox in the snow", str(clip)))
            for i in range(jobs)
        ]
        try:
            start = time.monotonic()
            with RunningSampler(server) as sampler:
                outcomes = vace_batch(batch, max_in_flight=n, timeout_minutes=30)
            makespan = time.monotonic() - start
        finally:
            reset_services()
        state = emulator_tasks(server)
    counters = state.pop("_counters")
    gaps = refill_gaps(list(state.values()))
    ideal = math.ceil(jobs / n) * latency
    samples = sampler.samples
    return {
        "n": n,
        "jobs": jobs,
        "latency_s": latency,
        "ok": sum(o.ok for o in outcomes),
        "failed": [o.error for o in outcomes if not o.ok][:3],
        "makespan_s": round(makespan, 1),
        "ideal_s": ideal,
        "ratio": round(makespan / ideal, 3),
        "running_max": max(samples, default=0),
        "running_mean": round(statistics.mean(samples), 2) if samples else 0.0,
        "running_samples": len(samples),
        "refill_gap_median_s": round(statistics.median(gaps), 2) if gaps else None,
        "refill_gap_max_s": round(max(gaps), 2) if gaps else None,
        "submissions": counters.get("submissions", 0),
        "queries": counters.get("queries", 0),
        "lists": counters.get("lists", 0),
        "throttled_429": counters.get("throttled", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--latency", type=float, default=5.0, help="L: seconds RUNNING")
    parser.add_argument("--n", type=int, nargs="+", default=[2, 5, 10], help="concurrencies")
    parser.add_argument("--quick", action="store_true", help="20 jobs")
    parser.add_argument(
        "--status-interval", type=float, default=5.0, help="VACEFLOW_STATUS_INTERVAL (s)"
    )
    args = parser.parse_args()
    jobs = 20 if args.quick else args.jobs

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp)
        clip = make_clip(folder)
        (folder / "s3").mkdir()
        (folder / "prefect").mkdir()
        with seaweedfs(folder / "s3") as s3, prefect_server(folder / "prefect") as api:
            os.environ["PREFECT_API_URL"] = api
            os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
            warm = warm_up_flow(clip, s3, folder, key=KEY, interval=args.status_interval)
            print(f"warm-up flow run (untimed): {warm:.1f}s", flush=True)
            for n in args.n:
                row = one_batch(
                    n, jobs, args.latency, clip, s3, folder, interval=args.status_interval
                )
                print(f"  N={n}: {row['makespan_s']}s (ideal {row['ideal_s']:g}s)", flush=True)
                rows.append(row)
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)  # before the server goes

    print(
        f"\nvace_batch, {jobs} jobs, L={args.latency:g}s, emulator concurrency = max_in_flight"
        f" = N; Prefect: local `prefect server start`; "
        f"VACEFLOW_STATUS_INTERVAL={args.status_interval:g}s"
    )
    print(
        f"{'N':>3} {'ok':>4} {'makespan':>9} {'ideal':>7} {'ratio':>6} {'run max':>7} "
        f"{'run mean':>8} {'refill gap':>10} {'queries':>7} {'lists':>6} {'429s':>5}"
    )
    for r in rows:
        print(
            f"{r['n']:>3} {r['ok']:>4} {r['makespan_s']:>8.1f}s {r['ideal_s']:>6.0f}s "
            f"{r['ratio']:>6.2f} {r['running_max']:>7} {r['running_mean']:>8.2f} "
            f"{r['refill_gap_median_s'] or 0:>9.2f}s "
            f"{r['queries']:>7} {r['lists']:>6} {sum(r['throttled_429'].values()):>5}"
        )
    out = write_results(
        "bench_batch",
        {
            "prefect": "local prefect server start (SQLite)",
            "status_interval": args.status_interval,
            "warm_up_s": warm,
            "rows": rows,
        },
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

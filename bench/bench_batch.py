"""`vaceflow batch` against an account that runs 2 tasks at once: the span beside the
ideal, and how long a slot freed by an ended task stays idle (issue 13 §4).

One run of `vaceflow batch FILE --json` (a process of its own, as a user starts it)
per in-flight bound: the default (the account's running slots plus one queued behind
each) and `--max-in-flight 2` (the running limit alone, the old default). FILE holds
`--jobs` distinct jobs (distinct prompts over one small clip); the emulator runs 2 at
once, each RUNNING `--latency` s, with the account's request rate limits. Prefect: a
local `prefect server start` this script starts and names (PREFECT_API_URL), so the
in-flight bound is the global concurrency limit a team shares; a data folder
(catalog) of each run's own, so its first tasks are followed knowing nothing.

Reported per bound, from the emulator's own times: the span (first submit to last
end) and the command's wall time, each beside the ideal ceil(jobs / 2) x latency;
idle slot time (after each task that ended while others were still to run: the
seconds until the next task began RUNNING, i.e. a slot left empty), mean and total;
calls made; 429s.

    .venv/bin/python bench/bench_batch.py [--jobs 20] [--latency 30] [--bounds 4 2]

About 12 minutes with the defaults. Writes bench/results/bench_batch-<UTC time>.json
and prints a table.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import emulator_tasks, flow_stack, repaint_body, vaceflow_env, write_results

from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.limits import ACCOUNT
from vaceflow.stack.seaweedfs import SeaweedFS

KEY = "sk-bench-batch"
REPO = Path(__file__).resolve().parents[1]
VACEFLOW = str(REPO / ".venv" / "bin" / "vaceflow")
RUNNING = ACCOUNT.concurrent_tasks


def idle_gaps(tasks: list[dict[str, Any]]) -> list[float]:
    """After each task that ended while another was still to start: the seconds until
    the next task began RUNNING (the slot it freed, left empty)."""
    starts = sorted(t["scheduled_time"] for t in tasks if t["scheduled_time"] is not None)
    gaps = []
    for end in sorted(t["end_time"] for t in tasks if t["end_time"] is not None):
        after = bisect.bisect_left(starts, end)
        if after < len(starts):
            gaps.append(starts[after] - end)
    return gaps


def one_batch(
    bound: int | None,
    jobs: int,
    latency: float,
    clip: Path,
    s3: SeaweedFS,
    folder: Path,
    api: str,
) -> dict[str, Any]:
    name = f"bound-{bound or 'default'}"
    bodies = [repaint_body(f"{name} #{i}: a fox in the snow", str(clip)) for i in range(jobs)]
    file = folder / f"{name}.json"
    file.write_text(json.dumps({"jobs": bodies}))
    config = EmulatorConfig(api_key=KEY, latency=latency, concurrency=RUNNING, seed=jobs)
    with EmulatorServer(config) as server:
        env = environment(server, s3, folder / f"data-{name}", api)
        args = [VACEFLOW, "batch", str(file), "--json"]
        if bound is not None:
            args += ["--max-in-flight", str(bound)]
        started = time.time()
        done = subprocess.run(args, env=env, cwd=folder, capture_output=True, text=True)
        wall = time.time() - started
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        state = emulator_tasks(server)
    counters = state.pop("_counters")
    tasks = list(state.values())
    outcomes = json.loads(done.stdout)
    gaps = idle_gaps(tasks)
    ideal = math.ceil(jobs / RUNNING) * latency
    span = max(t["end_time"] for t in tasks) - min(t["submit_time"] for t in tasks)
    return {
        "bound": bound or ACCOUNT.in_flight,
        "default": bound is None,
        "jobs": jobs,
        "latency_s": latency,
        "ok": sum(o["ok"] for o in outcomes),
        "ideal_s": ideal,
        "span_s": round(span, 1),
        "span_ratio": round(span / ideal, 3),
        "wall_s": round(wall, 1),
        "wall_ratio": round(wall / ideal, 3),
        "to_first_submit_s": round(min(t["submit_time"] for t in tasks) - started, 2),
        "idle_mean_s": round(statistics.mean(gaps), 2) if gaps else 0.0,
        "idle_total_s": round(sum(gaps), 1),
        "idle_max_s": round(max(gaps), 2) if gaps else 0.0,
        "submissions": counters.get("submissions", 0),
        "queries": counters.get("queries", 0),
        "lists": counters.get("lists", 0),
        "throttled_429": counters.get("throttled", {}),
    }


def environment(server: EmulatorServer, s3: SeaweedFS, data: Path, api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VACEFLOW_"))}
    ours = vaceflow_env(emulator=server, key=KEY, s3=s3, data=data, status_interval=5)
    return env | ours | {"PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=30.0, help="seconds RUNNING")
    parser.add_argument(
        "--bounds",
        type=int,
        nargs="+",
        default=[0, RUNNING],
        help="--max-in-flight values (0: the default)",
    )
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with flow_stack("bench-batch") as stack:
        folder, clip, s3, api = stack.folder, stack.clip, stack.s3, stack.api
        (folder / "warm").mkdir()  # a first batch pays the cold caches, untimed
        warm = one_batch(None, 2, 1.0, clip, s3, folder / "warm", api)
        print(f"warm-up batch (untimed): {warm['wall_s']} s", flush=True)
        for bound in args.bounds:
            row = one_batch(bound or None, args.jobs, args.latency, clip, s3, folder, api)
            print(f"  bound {row['bound']}: span {row['span_s']} s, wall {row['wall_s']} s")
            rows.append(row)

    print(
        f"\n`vaceflow batch`, {args.jobs} jobs, {args.latency:g} s tasks, {RUNNING} running at "
        "the account; Prefect: local `prefect server start`"
    )
    print(
        f"{'in flight':>9} {'ok':>3} {'span':>7} {'ratio':>6} {'wall':>7} {'ratio':>6} "
        f"{'idle mean':>9} {'idle total':>10} {'calls':>6} {'429s':>5}"
    )
    for r in rows:
        label = f"{r['bound']}{' (default)' if r['default'] else ''}"
        print(
            f"{label:>9} {r['ok']:>3} {r['span_s']:>6.1f}s {r['span_ratio']:>6.3f} "
            f"{r['wall_s']:>6.1f}s {r['wall_ratio']:>6.3f} {r['idle_mean_s']:>8.2f}s "
            f"{r['idle_total_s']:>9.1f}s {r['queries'] + r['lists']:>6} "
            f"{sum(r['throttled_429'].values()):>5}"
        )
    out = write_results("bench_batch", {"warm_up": warm, "rows": rows})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

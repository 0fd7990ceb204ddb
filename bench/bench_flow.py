"""The whole `vace_job` flow beside the official SDK, on the same staged input (issue 7 §10).

Each pair starts both sides at the same moment on one emulator (RUNNING 20 s, and 60 s
unless --quick): vaceflow runs `vace_job` (prepare, claim, stage, submit, wait,
collect, record) against a local `prefect server start` this script starts; the SDK
does `VideoSynthesis.async_call` + `wait` + a plain httpx download of the video. The
input clip is staged on a SeaweedFS of the run's own before each pair (untimed) and
the SDK gets its presigned URL; vaceflow gets the same file as a local path, so its
staging finds the object already there (and deletes it after success, as in
production). Reported per side: wall time per job and the flow/SDK ratio (goal: the
flow within 15 % of the SDK), status queries per job (the emulator's per-task
counter) plus the list calls made while the job ran (vaceflow's watcher follows tasks
by listing), and the lag between the emulator's end_time and each side noticing.
VACEFLOW_STATUS_INTERVAL is the production default (5 s) unless --status-interval.

    .venv/bin/python bench/bench_flow.py [--jobs 3] [--quick] [--status-interval 5]

Writes bench/results/bench_flow-<UTC time>.json and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import dashscope
import httpx
from _common import emulator_tasks, flow_stack, repaint_body, vaceflow_env, warm_up_flow
from _common import write_results as write
from dashscope import VideoSynthesis

from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.regions import Region
from vaceflow.stack.seaweedfs import SeaweedFS
from vaceflow.storage.s3 import S3Store

KEY = "sk-bench-flow"


def stage_clip(clip: Path) -> tuple[str, str]:
    """Put the clip where vaceflow's staging will look for it; (key, presigned URL)."""
    from vaceflow.settings import Settings

    with S3Store.from_settings(Settings.load()) as store:
        staged = store.stage(clip)
    return staged.key, staged.url


class Noticed:
    """When each vaceflow job's wait first saw its task final (the progress listener)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, job_id: str, status: Any, elapsed: float, polls: int) -> None:
        if status.is_final:
            with self._lock:
                self.at.setdefault(job_id, time.time())


def run_sdk(prompt: str, url: str, out: Path, result: dict[str, Any]) -> None:
    start = time.monotonic()
    request = repaint_body(prompt, url)  # the very body vaceflow sends, in the SDK's terms
    extra = {k: v for k, v in request["input"].items() if k != "prompt"}
    submitted = VideoSynthesis.async_call(
        model=Region.SINGAPORE.model,
        prompt=prompt,
        extra_input=extra,
        api_key=KEY,
        **request["parameters"],
    )
    done = VideoSynthesis.wait(submitted, api_key=KEY)
    result["noticed"] = time.time()
    if done.output.task_status != "SUCCEEDED":
        raise RuntimeError(f"SDK task ended {done.output.task_status}: {done}")
    with httpx.stream("GET", done.output.video_url, timeout=60) as response:
        response.raise_for_status()
        with out.open("wb") as f:
            for chunk in response.iter_bytes():
                f.write(chunk)
    result["wall"] = time.monotonic() - start
    result["task_id"] = done.output.task_id


def run_flow(prompt: str, clip: Path, result: dict[str, Any], noticed: Noticed) -> None:
    from flows.job import vace_job
    from tasks.runtime import open_runtime
    from vaceflow.jobs import parse_job

    start = time.monotonic()
    with open_runtime(listener=noticed):  # the run's services, and who hears its looks
        state = vace_job(parse_job(repaint_body(prompt, str(clip))), return_state=True)
    result["wall"] = time.monotonic() - start
    record = state.result()
    result["steps"] = step_times(state.state_details.flow_run_id, result["wall"])
    result["task_id"] = record.task_id
    result["job_id"] = record.id
    result["status"] = record.status.value


def step_times(flow_run_id: Any, wall: float) -> dict[str, float]:
    """Seconds per task of the flow run (from the Prefect API), and what is left:
    the orchestration around them (flow start and finish, gaps between tasks)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    steps: dict[str, float] = {}
    for run in runs:
        if run.start_time is None or run.end_time is None:
            continue
        name = run.name.split(" ")[0].split("-")[0]
        steps[name] = steps.get(name, 0.0) + (run.end_time - run.start_time).total_seconds()
    steps["outside tasks"] = wall - sum(steps.values())
    return steps


def run_pair(
    n: int, latency: float, clip: Path, url: str, folder: Path, noticed: Noticed
) -> dict[str, dict[str, Any]]:
    prompt = f"bench flow {latency:g}s #{n}: a calm lake at dawn"
    sides: dict[str, dict[str, Any]] = {"sdk": {}, "vaceflow": {}}
    threads = [
        threading.Thread(target=run_sdk, args=(prompt, url, folder / f"sdk-{n}.mp4", sides["sdk"])),
        threading.Thread(target=run_flow, args=(prompt, clip, sides["vaceflow"], noticed)),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for side, got in sides.items():
        if "wall" not in got:
            raise RuntimeError(f"the {side} side of pair {n} failed (see above)")
    sides["vaceflow"]["noticed"] = noticed.at.get(sides["vaceflow"]["job_id"])
    return sides


def one_latency(
    latency: float, jobs: int, clip: Path, s3: SeaweedFS, folder: Path, interval: float
) -> list[dict[str, Any]]:
    config = EmulatorConfig(api_key=KEY, latency=latency, concurrency=2, seed=1)
    rows: list[dict[str, Any]] = []
    with EmulatorServer(config) as server:
        data = folder / f"data-{latency:g}"
        os.environ.update(
            vaceflow_env(emulator=server, key=KEY, s3=s3, data=data, status_interval=interval)
        )
        dashscope.base_http_api_url = server.base_url
        noticed = Noticed()
        for n in range(jobs):
            key, url = stage_clip(clip)
            lists_before = emulator_tasks(server)["_counters"].get("lists", 0)
            sides = run_pair(n, latency, clip, url, folder, noticed)
            state = emulator_tasks(server)
            lists = state["_counters"].get("lists", 0) - lists_before
            for side, got in sides.items():
                task = state[got["task_id"]]
                rows.append(
                    {
                        "latency": latency,
                        "pair": n,
                        "side": side,
                        "task_id": got["task_id"],
                        "input_key": key,
                        "input_url": "presigned" if side == "sdk" else "local path",
                        "wall_s": got["wall"],
                        "task_s": task["end_time"] - task["submit_time"],
                        "queries": task["queries"],
                        "lists": lists if side == "vaceflow" else 0,
                        "lag_s": (got["noticed"] or float("nan")) - task["end_time"],
                        "steps": got.get("steps", {}),
                    }
                )
            print(
                f"  {latency:g}s pair {n}: sdk {sides['sdk']['wall']:.1f}s, "
                f"vaceflow {sides['vaceflow']['wall']:.1f}s",
                flush=True,
            )
    return rows


def mean_steps(rows: list[dict[str, Any]]) -> dict[str, float]:
    names = {name for r in rows for name in r["steps"]}
    return {n: statistics.mean(r["steps"].get(n, 0.0) for r in rows) for n in sorted(names)}


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for latency in sorted({r["latency"] for r in rows}):
        at = [r for r in rows if r["latency"] == latency]
        by_side = {s: [r for r in at if r["side"] == s] for s in ("sdk", "vaceflow")}
        ratios = [
            v["wall_s"] / s["wall_s"]
            for s, v in zip(by_side["sdk"], by_side["vaceflow"], strict=True)
        ]
        for side, sel in by_side.items():
            summary.append(
                {
                    "latency": latency,
                    "side": side,
                    "jobs": len(sel),
                    "wall_mean_s": statistics.mean(r["wall_s"] for r in sel),
                    "queries_per_job": statistics.mean(r["queries"] for r in sel),
                    "lists_per_job": statistics.mean(r["lists"] for r in sel),
                    "lag_median_s": statistics.median(r["lag_s"] for r in sel),
                    "lag_max_s": max(r["lag_s"] for r in sel),
                    "ratio_to_sdk": statistics.mean(ratios) if side == "vaceflow" else 1.0,
                    "ratio_max": max(ratios) if side == "vaceflow" else 1.0,
                    "steps_mean_s": mean_steps(sel),
                }
            )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="pairs per latency")
    parser.add_argument("--quick", action="store_true", help="latency 20 s only")
    parser.add_argument(
        "--status-interval", type=float, default=5.0, help="VACEFLOW_STATUS_INTERVAL (s)"
    )
    args = parser.parse_args()
    latencies = [20.0] if args.quick else [20.0, 60.0]

    with flow_stack("bench-flow") as stack:
        folder, clip, s3 = stack.folder, stack.clip, stack.s3
        os.environ["PREFECT_API_URL"] = stack.api
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        warm = warm_up_flow(clip, s3, folder, key=KEY, interval=args.status_interval)
        print(f"warm-up flow run (untimed): {warm:.1f}s", flush=True)
        rows: list[dict[str, Any]] = []
        for latency in latencies:
            rows += one_latency(latency, args.jobs, clip, s3, folder, args.status_interval)
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # before the server goes

    summary = summarize(rows)
    print(
        f"\nvace_job flow vs the official SDK, {args.jobs} pairs per latency, side by side; "
        f"Prefect: local `prefect server start`; VACEFLOW_STATUS_INTERVAL={args.status_interval:g}s"
    )
    print(
        f"{'latency':>8} {'side':<9} {'wall mean':>10} {'ratio':>6} {'ratio max':>9} "
        f"{'queries/job':>11} {'lists/job':>9} {'lag median':>10} {'lag max':>8}"
    )
    for s in summary:
        print(
            f"{s['latency']:>7.0f}s {s['side']:<9} {s['wall_mean_s']:>9.1f}s "
            f"{s['ratio_to_sdk']:>6.3f} {s['ratio_max']:>9.3f} {s['queries_per_job']:>11.1f} "
            f"{s['lists_per_job']:>9.1f} {s['lag_median_s']:>9.2f}s {s['lag_max_s']:>7.2f}s"
        )
    for s in summary:
        if s["steps_mean_s"]:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in s["steps_mean_s"].items())
            print(f"  vaceflow {s['latency']:g}s, seconds per step: {parts}")
    out = write(
        "bench_flow",
        {
            "prefect": "local prefect server start (SQLite)",
            "status_interval": args.status_interval,
            "latencies": latencies,
            "warm_up_s": warm,
            "summary": summary,
            "rows": rows,
        },
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

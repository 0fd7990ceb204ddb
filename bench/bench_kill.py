"""Kill a `vaceflow run` at a random moment of its first seconds, run the same command
again, and count what a user would: jobs left stranded (exit 5) and jobs paid twice.

Each trial is a job of its own (its own prompt): `vaceflow run` in a session of its own,
SIGKILLed as a whole process group at a moment drawn uniformly from the start to a
little past its submit (measured first, on an untimed run), then the same command
again to its end. Both counts must be 0. The row each kill left (its status) shows
where the kills landed.

    python bench/bench_kill.py [--runs 20] [--seed N] [--submit-timeout S] [--prefect]

Without `--prefect` the runs name no Prefect server (a user's default: the steps run
without a flow around them); with it they name a server: the command takes its slot
there and submits, then hands the job to the `vace_job` flow.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from _common import (
    emulator_tasks,
    make_clip,
    prefect_server,
    seaweedfs,
    vaceflow_env,
    write_results,
)

from vaceflow.catalog import Catalog
from vaceflow.emulator import EmulatorConfig, EmulatorServer

VACEFLOW = str(Path(sys.executable).parent / "vaceflow")
KEY = "sk-bench-kill"


def command(clip: Path, prompt: str) -> list[str]:
    return [VACEFLOW, "run", "video_outpainting", "--prompt", prompt, "--video", str(clip)]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def submissions(server: EmulatorServer, prompt: str) -> int:
    tasks = emulator_tasks(server)
    return sum(
        1
        for key, t in tasks.items()
        if key != "_counters" and t["body"]["input"]["prompt"] == prompt
    )


def row_status(prompt: str) -> str:
    with Catalog.from_settings() as catalog:
        rows = [r for r in catalog.list_jobs(limit=None) if r.prompt == prompt]
    return rows[0].status.value if rows else "no row"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--latency", type=float, default=3.0, help="seconds a task runs")
    parser.add_argument(
        "--submit-timeout", type=float, default=5.0, help="VACEFLOW_SUBMIT_TIMEOUT for the runs"
    )
    parser.add_argument("--prefect", action="store_true", help="runs through a Prefect server")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="vaceflow-bench-kill-"))
    clip = make_clip(folder)
    log = folder / "runs.log"
    config = EmulatorConfig(api_key=KEY, latency=args.latency, concurrency=2, submit_qps=0)
    with (
        seaweedfs(folder / "s3") as s3,
        prefect_server(folder) if args.prefect else nullcontext(None) as api,
        EmulatorServer(config) as server,
    ):
        env = vaceflow_env(
            emulator=server, key=KEY, s3=s3, data=folder / "data", status_interval=2
        ) | {
            "VACEFLOW_SUBMIT_TIMEOUT": f"{args.submit_timeout:g}",
            "VACEFLOW_RECONCILE_MARGIN": "2",
        }
        os.environ.update(env)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        if api:
            full_env["PREFECT_API_URL"] = api

        # How long a run takes to reach its submit: the kills spread over that, and past it.
        began = time.monotonic()
        calibration = start(command(clip, "calibration"), full_env, log)
        while submissions(server, "calibration") == 0 and calibration.poll() is None:
            time.sleep(0.05)
        to_submit = time.monotonic() - began
        calibration.wait(timeout=600)

        trials: list[dict[str, Any]] = []
        for n in range(args.runs):
            prompt = f"killed run {n}"
            cmd = command(clip, prompt)
            at = rng.uniform(0.0, to_submit * 1.3)
            proc = start(cmd, full_env, log)
            time.sleep(at)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            left = row_status(prompt)
            paid_before = submissions(server, prompt)
            again = time.monotonic()
            rerun = start(cmd, full_env, log)
            code = rerun.wait(timeout=900)
            trials.append(
                {
                    "kill_at": round(at, 2),
                    "left": left,
                    "paid_at_kill": paid_before,
                    "rerun_exit": code,
                    "rerun_seconds": round(time.monotonic() - again, 1),
                    "submissions": submissions(server, prompt),
                }
            )
            print(trials[-1], flush=True)

    stranded = sum(t["rerun_exit"] == 5 for t in trials)
    doubled = sum(t["submissions"] > 1 for t in trials)
    failed = sum(t["rerun_exit"] not in (0, 5) for t in trials)
    summary = {
        "runs": len(trials),
        "through_prefect": args.prefect,
        "seconds_to_submit": round(to_submit, 2),
        "stranded_exit_5": stranded,
        "paid_twice": doubled,
        "other_failures": failed,
        "kills_left": dict(Counter(t["left"] for t in trials)),
        "paid_at_kill": dict(Counter(t["paid_at_kill"] for t in trials)),
    }
    print(summary)
    print("results:", write_results("kill", {"summary": summary, "trials": trials}))
    if stranded or doubled or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""`vaceflow run` beside the official SDK on the same emulator task: wall time, and the
seconds from the command's start to its submit request (issue 13 §3).

Every side is a process of its own, as a user starts it (each pays its interpreter's
start and its imports), on one emulator (RUNNING 20 s, nothing queued):

- `run, no server`: `vaceflow run video_repainting --video clip.mp4 ... --json` with no
  Prefect server named (the same steps without Prefect);
- `run, server`: the same command with PREFECT_API_URL naming a local `prefect server
  start` this script starts (the `vace_job` flow, as a team runs it);
- `sdk`: a script doing what the SDK's README does: `VideoSynthesis.async_call`,
  `wait`, then an httpx download of the video.

The input needs no conforming (H.264, 16 fps, its index in front). vaceflow stages it
on a SeaweedFS of the run's own; the SDK gets the same file's presigned URL there.
Each vaceflow side has its own catalog, which has seen one task of the function (an
untimed first run, which also warms the file cache for every side). Rounds run the
sides one after the other, in a rotating order, so none pays for another's start on
two cores. Time to submit: the emulator's `submit_time` less the moment the process
was started. Also reported: `python -X importtime` of the no-server run, summed by
top-level package (Prefect must be absent).

    .venv/bin/python bench/bench_run.py [--rounds 3] [--latency 20]

Writes bench/results/bench_run-<UTC time>.json and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import emulator_tasks, prefect_server, seaweedfs, vaceflow_env, write_results

from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.media.ffmpeg import run_ffmpeg
from vaceflow.regions import Region
from vaceflow.stack.seaweedfs import SeaweedFS
from vaceflow.storage.s3 import S3Store

KEY = "sk-bench-run"
REPO = Path(__file__).resolve().parents[1]
VACEFLOW = str(REPO / ".venv" / "bin" / "vaceflow")
SIDES = ("run, no server", "run, server", "sdk")
SDK_SCRIPT = """
import sys, httpx, dashscope
from dashscope import VideoSynthesis
base, key, model, url, prompt, out = sys.argv[1:]
dashscope.base_http_api_url = base
task = VideoSynthesis.async_call(
    model=model, prompt=prompt, api_key=key, control_condition="depth",
    extra_input={"function": "video_repainting", "video_url": url},
)
done = VideoSynthesis.wait(task, api_key=key)
assert done.output.task_status == "SUCCEEDED", done
with httpx.stream("GET", done.output.video_url, timeout=60) as response:
    response.raise_for_status()
    with open(out, "wb") as f:
        for chunk in response.iter_bytes():
            f.write(chunk)
print(done.output.task_id)
"""


def make_input(folder: Path) -> Path:
    """A 1 s 320x240 16 fps H.264 clip with its index in front: nothing to conform."""
    clip = folder / "ready.mp4"
    run_ffmpeg(
        [
            *("-f", "lavfi", "-i", "testsrc2=s=320x240:r=16:d=1"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-movflags", "+faststart", str(clip)),
        ],
        what="making the bench input",
    )
    return clip


def presigned(clip: Path, env: dict[str, str]) -> str:
    from vaceflow.settings import Settings

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with S3Store.from_settings(Settings.load()) as store:
            return store.stage(clip).url
    finally:
        os.environ.clear()
        os.environ.update(saved)


def clean_env(extra: dict[str, str], home: Path) -> dict[str, str]:
    """This environment without Prefect's or vaceflow's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VACEFLOW_"))}
    return env | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"} | extra


def run_side(
    side: str, args: list[str], env: dict[str, str], cwd: Path, server: EmulatorServer
) -> dict[str, Any]:
    before = {t for t in emulator_tasks(server) if t != "_counters"}
    started = time.time()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.time() - started
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    tasks = emulator_tasks(server)
    (task_id,) = {t for t in tasks if t != "_counters"} - before
    task = tasks[task_id]
    return {
        "side": side,
        "wall_s": wall,
        "to_submit_s": task["submit_time"] - started,
        "after_end_s": started + wall - task["end_time"],
        "task_s": task["end_time"] - task["submit_time"],
        "queries": task["queries"],
        "task_id": task_id,
    }


def import_times(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """`python -X importtime` of one run: seconds by top-level package, and the total."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _CLI, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    by_package: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, raw = line.split("|")
        name = raw.strip()
        if not cumulative.strip().isdigit() or len(raw) - len(raw.lstrip()) > 1:
            continue  # the header, or nested: counted in its top-level import
        by_package[name.split(".")[0]] += int(cumulative.strip()) / 1e6
    top = dict(sorted(by_package.items(), key=lambda kv: -kv[1])[:8])
    return {"total_s": round(sum(by_package.values()), 2), "top_s": top}


_CLI = "import sys; from vaceflow.cli import main; sys.argv = ['vaceflow', *sys.argv[1:]]; main()"


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sdk = statistics.mean(r["wall_s"] for r in rows if r["side"] == "sdk")
    out = []
    for side in SIDES:
        sel = [r for r in rows if r["side"] == side]
        wall = statistics.mean(r["wall_s"] for r in sel)
        out.append(
            {
                "side": side,
                "runs": len(sel),
                "wall_mean_s": round(wall, 2),
                "ratio_to_sdk": round(wall / sdk, 3),
                "to_submit_mean_s": round(statistics.mean(r["to_submit_s"] for r in sel), 2),
                "to_submit_max_s": round(max(r["to_submit_s"] for r in sel), 2),
                "after_end_mean_s": round(statistics.mean(r["after_end_s"] for r in sel), 2),
                "queries_mean": statistics.mean(r["queries"] for r in sel),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=20.0, help="seconds RUNNING")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        folder = Path(tmp)
        clip = make_input(folder)
        for sub in ("s3", "prefect", "home-plain", "home-server", "sdk"):
            (folder / sub).mkdir()
        config = EmulatorConfig(api_key=KEY, latency=args.latency, concurrency=4, seed=1)
        with (
            seaweedfs(folder / "s3") as s3,
            prefect_server(folder / "prefect") as api,
            EmulatorServer(config) as server,
        ):
            envs = sides_env(server, s3, folder, api)

            def command(side: str, prompt: str) -> list[str]:
                if side == "sdk":  # staged again (untimed): vaceflow deletes what it used
                    url = presigned(clip, envs["run, no server"])
                    out = str(folder / "sdk" / f"{len(rows)}.mp4")
                    model = Region.SINGAPORE.model
                    return [sys.executable, "-c", SDK_SCRIPT, server.base_url, KEY, model, url,
                            prompt, out]  # fmt: skip
                return [VACEFLOW, "run", "video_repainting", "--prompt", prompt, "--video",
                        str(clip), "--control-condition", "depth", "--json"]  # fmt: skip

            for side in SIDES[:2]:  # the catalog's first task of the function, untimed
                run_side(side, command(side, f"warm-up {side}"), envs[side], folder, server)
            print("warm-up done", flush=True)
            for n in range(args.rounds):
                order = SIDES[n % 3 :] + SIDES[: n % 3]
                for side in order:
                    row = run_side(
                        side, command(side, f"round {n} {side}"), envs[side], folder, server
                    )
                    rows.append(row | {"round": n})
                    print(
                        f"  round {n} {side:<15} wall {row['wall_s']:5.1f}s, "
                        f"submit after {row['to_submit_s']:4.2f}s",
                        flush=True,
                    )
            imports = import_times(
                command("run, no server", "import times")[1:], envs["run, no server"], folder
            )
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)

    summary = summarize(rows)
    print(
        f"\n`vaceflow run` beside the SDK, {args.rounds} rounds, {args.latency:g} s tasks, "
        "each side a process of its own"
    )
    print(
        f"{'side':<16} {'wall mean':>9} {'ratio':>6} {'to submit':>9} {'max':>6} "
        f"{'after end':>9} {'queries':>7}"
    )
    for s in summary:
        print(
            f"{s['side']:<16} {s['wall_mean_s']:>8.1f}s {s['ratio_to_sdk']:>6.3f} "
            f"{s['to_submit_mean_s']:>8.2f}s {s['to_submit_max_s']:>5.2f}s "
            f"{s['after_end_mean_s']:>8.2f}s {s['queries_mean']:>7.1f}"
        )
    print(f"\nimports of the no-server run: {imports['total_s']} s; by package: {imports['top_s']}")
    out = write_results(
        "bench_run",
        {"latency": args.latency, "summary": summary, "rows": rows, "imports": imports},
    )
    print(f"\nwrote {out}")


def sides_env(
    server: EmulatorServer, s3: SeaweedFS, folder: Path, api: str
) -> dict[str, dict[str, str]]:
    """Each vaceflow side with a data folder (catalog) of its own."""
    plain = vaceflow_env(
        emulator=server, key=KEY, s3=s3, data=folder / "data-plain", status_interval=5
    )
    served = vaceflow_env(
        emulator=server, key=KEY, s3=s3, data=folder / "data-server", status_interval=5
    )
    return {
        "run, no server": clean_env(plain, folder / "home-plain"),
        "run, server": clean_env(served | {"PREFECT_API_URL": api}, folder / "home-server"),
        "sdk": clean_env({}, folder / "home-plain"),
    }


if __name__ == "__main__":
    main()

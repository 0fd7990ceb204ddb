"""Helpers the bench scripts share: a small clip, the emulator's record, the stack a
flow needs (a Prefect server, SeaweedFS), the environment pointing vaceflow at them, how
a started process is stopped, and where results go. Each script stays runnable alone:
`python bench/bench_x.py`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from vaceflow.emulator import EmulatorConfig, EmulatorServer
from vaceflow.media.ffmpeg import run_ffmpeg
from vaceflow.stack.prefect_server import api_answers, server_command, server_env
from vaceflow.stack.processes import free_ports, wait_until
from vaceflow.stack.seaweedfs import SeaweedFS

__all__ = [
    "RESULTS",
    "FlowStack",
    "emulator_tasks",
    "flow_stack",
    "make_clip",
    "prefect_server",
    "repaint_body",
    "seaweedfs",
    "stop_child",
    "vaceflow_env",
    "warm_up_flow",
    "write_results",
]

RESULTS = Path(__file__).resolve().parent / "results"


def make_clip(folder: Path, name: str = "clip.mp4", *, seconds: float = 1) -> Path:
    """A 320x240 16 fps H.264 clip: valid for every video role, cheap to conform."""
    clip = folder / name
    run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"testsrc2=s=320x240:r=16:d={seconds}"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)),
        ],
        what="making the bench clip",
    )
    return clip


def repaint_body(prompt: str, video: str) -> dict[str, Any]:
    """A video_repainting request: the cheapest function to check and render."""
    return {
        "input": {"function": "video_repainting", "prompt": prompt, "video_url": video},
        "parameters": {"control_condition": "depth"},
    }


def emulator_tasks(server: EmulatorServer) -> dict[str, dict[str, Any]]:
    """The emulator's tasks by id, plus its counters under `_counters`."""
    state = httpx.get(server.root_url + "/_emulator/tasks", timeout=30).json()
    return {t["task_id"]: t for t in state["tasks"]} | {"_counters": state["counters"]}


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port (SQLite in `home`); yields its API URL."""
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/api"
    with (home / "prefect-server.log").open("wb") as log:
        proc = subprocess.Popen(
            server_command(port),
            env=server_env(os.environ, home, None),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until(
                lambda: api_answers(url),
                timeout=300,
                alive=lambda: proc.poll() is None,
                what="the Prefect server",
            )
            yield url
        finally:
            stop_child(proc, timeout=20)


def stop_child(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Ask a process this script started to end; kill it after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def seaweedfs(folder: Path) -> Iterator[SeaweedFS]:
    """A `weed mini` of this run's own, with throwaway keys."""
    weed = SeaweedFS(
        folder,
        bucket="vaceflow-bench",
        access_key=f"BENCH{secrets.token_hex(6).upper()}",
        secret_key=secrets.token_urlsafe(24),
    )
    with weed:
        yield weed


@dataclass(frozen=True)
class FlowStack:
    """What a flow bench runs on (`flow_stack`)."""

    folder: Path
    """A scratch folder of the run's own, removed at the end."""
    clip: Path
    """`make_clip`'s clip, in `folder`."""
    s3: SeaweedFS
    api: str
    """The Prefect server's API URL."""


@contextmanager
def flow_stack(name: str) -> Iterator[FlowStack]:
    """A scratch folder with the bench clip, a SeaweedFS and a Prefect server of its own."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        folder = Path(tmp)
        clip = make_clip(folder)
        (folder / "s3").mkdir()
        (folder / "prefect").mkdir()
        with seaweedfs(folder / "s3") as s3, prefect_server(folder / "prefect") as api:
            yield FlowStack(folder, clip, s3, api)


def vaceflow_env(
    *, emulator: EmulatorServer, key: str, s3: SeaweedFS, data: Path, status_interval: float
) -> dict[str, str]:
    """The variables that point vaceflow's settings at this run's emulator and S3."""
    return {
        "DASHSCOPE_API_KEY": key,
        "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
        "VACEFLOW_DATA_DIR": str(data),
        "VACEFLOW_STAGING": "s3",
        "VACEFLOW_S3_BUCKET": s3.bucket,
        "VACEFLOW_S3_PREFIX": "bench",
        "VACEFLOW_S3_ENDPOINT_URL": s3.endpoint,
        "VACEFLOW_S3_REGION": s3.region,
        "VACEFLOW_S3_ADDRESSING_STYLE": "path",
        "VACEFLOW_S3_ACCESS_KEY_ID": s3.access_key,
        "VACEFLOW_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "VACEFLOW_STATUS_INTERVAL": f"{status_interval:g}",
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """bench/results/<name>-<UTC time>.json (gitignored)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(payload, indent=2, default=str))
    return out


def warm_up_flow(clip: Path, s3: SeaweedFS, folder: Path, *, key: str, interval: float) -> float:
    """One untimed `vace_job` run first (its seconds returned): a process's first run
    pays Prefect's imports and client set-up, which a long-lived worker pays once."""
    from flows.job import vace_job
    from vaceflow.jobs import parse_job

    config = EmulatorConfig(api_key=key, latency=0.5, concurrency=2, seed=1)
    with EmulatorServer(config) as server:
        env = vaceflow_env(
            emulator=server, key=key, s3=s3, data=folder / "warm-up", status_interval=interval
        )
        os.environ.update(env)
        start = time.monotonic()
        vace_job(parse_job(repaint_body("bench warm-up", str(clip))))
        return time.monotonic() - start

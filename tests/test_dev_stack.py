"""`vaceflow dev up / status / down` as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.media import MediaFactory
from vaceflow.cli.running import EXIT
from vaceflow.settings import Settings
from vaceflow.stack.processes import is_running
from vaceflow.storage import S3Store

VACEFLOW = str(Path(sys.executable).parent / "vaceflow")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VACEFLOW, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture
def dev_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment with a data folder of its own and no outside credentials; the
    stack is always brought down afterwards."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DASHSCOPE_", "VACEFLOW_"))
    }
    env["VACEFLOW_DATA_DIR"] = str(tmp_path / "data")
    yield env
    run(["dev", "down"], env)


def exports(stdout: str) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in stdout.splitlines())
    return dict(p for p in pairs if len(p) == 2)


def test_up_status_down(
    dev_env: dict[str, str], media: MediaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = Path(dev_env["VACEFLOW_DATA_DIR"])
    first = run(["dev", "up"], dev_env)
    assert first.returncode == 0, first.stderr
    env = exports(first.stdout)
    assert env["DASHSCOPE_HTTP_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["VACEFLOW_S3_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert "VACEFLOW_CATALOG_URL" not in env  # solo: the catalog stays on SQLite
    # A local Prefect server (SQLite) that flows report to.
    assert httpx.get(f"{env['PREFECT_API_URL']}/health").json() is True
    assert (data / "env").stat().st_mode & 0o077 == 0  # keys inside: owner only
    state = json.loads((data / "stack.json").read_text())
    pids = (state["seaweed_pid"], state["emulator_pid"], state["prefect"]["pid"])
    assert (data / "seaweedfs").is_dir()

    status = run(["dev", "status"], dev_env)
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("answering") == 3
    assert env["DASHSCOPE_API_KEY"] not in status.stdout

    # Up again: the same stack, not a second one.
    second = run(["dev", "up"], dev_env)
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert exports(second.stdout) == env
    state = json.loads((data / "stack.json").read_text())
    assert (state["seaweed_pid"], state["emulator_pid"], state["prefect"]["pid"]) == pids

    # Every command reads the env file: staging lands in the stack's S3 ...
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(data))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DASHSCOPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load()
    with S3Store.from_settings(settings) as store:
        staged = store.stage(media.image(width=400, height=400))
    assert httpx.get(staged.url).status_code == 200
    # ... and the emulator takes the generated key, and only it.
    tasks = f"{env['DASHSCOPE_HTTP_BASE_URL']}/tasks/no-such-task"
    auth = {"Authorization": f"Bearer {env['DASHSCOPE_API_KEY']}"}
    assert httpx.get(tasks, headers=auth).json()["output"]["task_status"] == "UNKNOWN"
    assert httpx.get(tasks, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401

    down = run(["dev", "down"], dev_env)
    assert down.returncode == 0
    assert "seaweedfs" in down.stdout
    assert "emulator" in down.stdout
    assert "prefect" in down.stdout
    assert not is_running(pids[0], "weed mini")
    assert not is_running(pids[1], "emulator")
    assert not is_running(pids[2], "prefect")
    after = run(["dev", "status"], dev_env)
    assert after.returncode == 1
    assert after.stdout.count("stopped") == 3

    # A job run after `down` says so in two lines, with the command that fixes it.
    video = media.video(width=320, height=240, seconds=1)
    ran = run(["run", "video_outpainting", "--prompt", "wider", "--video", str(video)], dev_env)
    assert ran.returncode == EXIT["stack_down"], ran.stdout + ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr
    said, fix = ran.stderr.splitlines()
    port = state["prefect"]["port"]
    assert (
        said == f"error: the local stack is down (Prefect at 127.0.0.1:{port}: connection refused)"
    )
    assert fix.startswith("  start it: ")
    assert fix.endswith("vaceflow dev up")


def test_up_without_prefect(dev_env: dict[str, str]) -> None:
    started = run(["dev", "up", "--no-prefect"], dev_env)
    assert started.returncode == 0, started.stderr
    assert "PREFECT_API_URL" not in exports(started.stdout)
    status = run(["dev", "status"], dev_env)
    assert status.returncode == 0, status.stdout
    assert [line.split()[0] for line in status.stdout.splitlines()] == ["seaweedfs", "emulator"]

"""`vaceflow run` with no Prefect server: the same steps without Prefect, as a user runs
the command (a process of its own). It never imports Prefect (so never starts its
temporary server), pays once, records in the catalog, and a run killed while waiting
is resumed by the next one without paying again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests.fixtures_emulator import TEST_KEY, StartEmulator, emulator_state
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobRecord, JobStatus
from vaceflow.emulator import EmulatorServer
from vaceflow.media.probe import probe

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import sys
from vaceflow.cli import main
sys.argv = ["vaceflow", *sys.argv[1:]]
try:
    main()
finally:
    print("prefect imported" if "prefect" in sys.modules else "no prefect", file=sys.stderr)
"""


@pytest.fixture
def clip(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=16, seconds=1.0, name="plain")


def environment(server: EmulatorServer, tmp_path: Path) -> dict[str, str]:
    """This process's environment without any Prefect server, pointed at `server`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VACEFLOW_"))}
    return env | {
        "DASHSCOPE_API_KEY": TEST_KEY,
        "DASHSCOPE_HTTP_BASE_URL": server.base_url,
        "VACEFLOW_DATA_DIR": str(tmp_path / "data"),
        "VACEFLOW_STAGING": "dashscope",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),  # no profile naming a server
        "PYTHONPATH": str(REPO),
    }


def command(clip: Path, prompt: str) -> list[str]:
    return [sys.executable, "-c", CHILD, "run", "video_outpainting", "--prompt", prompt,
            "--video", str(clip), "--json"]  # fmt: skip


def run(env: dict[str, str], cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


def catalog(env: dict[str, str]) -> Catalog:
    return Catalog(f"sqlite:///{Path(env['VACEFLOW_DATA_DIR']) / 'catalog.db'}")


def submissions(server: EmulatorServer) -> int:
    return int(emulator_state(server)["counters"].get("submissions", 0))


def test_a_run_without_a_server_pays_once_records_and_never_imports_prefect(
    start_emulator: StartEmulator, clip: Path, tmp_path: Path
) -> None:
    server = start_emulator(latency=1.0)
    env = environment(server, tmp_path)
    first = run(env, tmp_path, command(clip, "wider, no server"))
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip().endswith("no prefect")
    record = JobRecord.model_validate(json.loads(first.stdout))
    assert record.status is JobStatus.SUCCEEDED
    assert record.output is not None
    assert probe(record.output.path or "").codec == "h264"
    assert submissions(server) == 1
    with catalog(env) as rows:
        assert [r.id for r in rows.list_jobs()] == [record.id]
        assert rows.get(record.id).task_id == record.task_id

    again = run(env, tmp_path, command(clip, "wider, no server"))
    assert again.returncode == 0, again.stderr
    assert JobRecord.model_validate(json.loads(again.stdout)).id == record.id
    assert submissions(server) == 1  # the cataloged result, no new payment


def test_a_run_killed_while_waiting_is_resumed_by_the_next(
    start_emulator: StartEmulator, clip: Path, tmp_path: Path
) -> None:
    server = start_emulator(latency=8.0)
    env = environment(server, tmp_path)
    args = command(clip, "wider, killed")
    proc = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(lambda: _task_id(env) is not None, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    killed = _task_id(env)
    assert submissions(server) == 1

    resumed = run(env, tmp_path, args)
    assert resumed.returncode == 0, resumed.stderr
    record = JobRecord.model_validate(json.loads(resumed.stdout))
    assert record.status is JobStatus.SUCCEEDED
    assert record.task_id == killed
    assert submissions(server) == 1


def _task_id(env: dict[str, str]) -> str | None:
    path = Path(env["VACEFLOW_DATA_DIR"]) / "catalog.db"
    if not path.is_file():
        return None
    try:
        with catalog(env) as rows:
            jobs = rows.list_jobs()
    except OperationalError:  # the run is still making its tables
        return None
    return jobs[0].task_id if jobs else None


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not check():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before its submit")
        if time.monotonic() > deadline:
            raise AssertionError("no task id recorded")
        time.sleep(0.1)

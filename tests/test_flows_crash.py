"""A run killed with SIGKILL and started again: the catalog row is the only memory.

Killed after the task id was written, the next run resumes that task: one submission,
one video. Killed between sending the submit and writing the task id (the one window
no ledger can close), the row reads `uncertain` once its lease runs out and no later
run pays again on a guess.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_flows import VaceEnv
from vaceflow.catalog import Catalog, JobRecord, JobStatus
from vaceflow.emulator import FaultKind
from vaceflow.jobs import parse_job
from vaceflow.media.probe import probe
from vaceflow.pipeline import JobUncertain
from vaceflow.samples import make_samples

MakeEnv = Callable[..., VaceEnv]
REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
import vaceflow.pipeline
vaceflow.pipeline.SUBMIT_LEASE_SECONDS = float(sys.argv[2])
from flows.job import vace_job
from vaceflow.jobs import parse_job
vace_job(parse_job(json.loads(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def body(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from vaceflow.cli.demo import demo_jobs

    bodies = demo_jobs(make_samples(tmp_path_factory.mktemp("crash-samples")))
    return next(b for b in bodies if b["input"]["function"] == "video_outpainting")


def _start(env: VaceEnv, body: dict[str, Any], lease: float = 120.0) -> subprocess.Popen[bytes]:
    log = (env.data.parent / "killed-run.log").open("ab")  # kept for a failing test
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(body), str(lease)],
        env=os.environ | env.env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _row(catalog: Catalog) -> JobRecord | None:
    rows = catalog.list_jobs()
    assert len(rows) <= 1
    return rows[0] if rows else None


def _wait_for(
    check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + 60
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


@pytest.mark.usefixtures("free_slots")
def test_killed_after_submission_resumes_the_same_task(
    vace_env: MakeEnv, body: dict[str, Any]
) -> None:
    from flows.job import vace_job

    env = vace_env(latency=6.0)
    catalog = Catalog.from_settings()
    proc = _start(env, body)
    try:
        _wait_for(lambda: bool((row := _row(catalog)) and row.task_id), "a task id", proc)
    finally:
        _kill(proc)
    killed = _row(catalog)
    assert killed is not None
    assert killed.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)
    assert env.submissions() == 1

    record = vace_job(parse_job(body))
    assert record.id == killed.id
    assert record.task_id == killed.task_id
    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1
    assert record.output is not None
    video = probe(record.output.path or "")
    assert (video.codec, round(video.fps or 0)) == ("h264", 30)
    assert video.duration
    assert hashlib.sha256(Path(video.path).read_bytes()).hexdigest() == record.output.sha256


@pytest.mark.usefixtures("free_slots")
def test_killed_before_the_task_id_is_written_is_uncertain(
    vace_env: MakeEnv, body: dict[str, Any]
) -> None:
    from flows.job import vace_job

    # Every answer comes 4 s late: the submit is in the service's hands, unanswered.
    env = vace_env(fault_rate=1.0, faults={FaultKind.SLOW}, slow_seconds=4.0)
    catalog = Catalog.from_settings()
    proc = _start(env, body, lease=3.0)
    try:
        _wait_for(
            lambda: bool((row := _row(catalog)) and row.status is JobStatus.SUBMITTING),
            "the submit lease",
            proc,
        )
        time.sleep(2.0)  # the request is on its way, or about to be
    finally:
        _kill(proc)
    _wait_for(
        lambda: bool((row := _row(catalog)) and row.status is JobStatus.UNCERTAIN),
        "the lease to run out",
    )
    row = _row(catalog)
    assert row is not None
    assert (row.task_id, row.attempts) == (None, 1)
    assert [r.id for r in catalog.uncertain()] == [row.id]

    seen = env.submissions()  # 0 or 1: whether it got there is what nobody can know
    with pytest.raises(JobUncertain, match="will not pay twice"):
        vace_job(parse_job(body))
    time.sleep(1.0)
    assert env.submissions() == seen

"""A `vaceflow run` killed at every step of its submit, then run again as its user would:
exit 0, the video, one submission at the emulator, no job left uncertain.

The kill lands exactly at each step through failpoints (`VACEFLOW_FAILPOINT`, see
`vaceflow.failpoints`); the one kill that cannot be a failpoint, during the request
itself, is made by the emulator holding its answer (`hang`) while the test kills the
run's whole process group. A stop that asks instead of killing (SIGTERM, SIGINT) lets
a request on the wire finish and its task id be written, and gives back a submit not
yet sent. Submits run with a 2 s timeout and a 1 s clock margin, so a window closes
within about 10 s (`VACEFLOW_SUBMIT_TIMEOUT`, `VACEFLOW_RECONCILE_MARGIN`).
"""

from __future__ import annotations

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
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobRecord, JobStatus
from vaceflow.media.probe import probe
from vaceflow.stack.prefect_server import without_prefect

MakeEnv = Callable[..., VaceEnv]
VACEFLOW = str(Path(sys.executable).parent / "vaceflow")
FAST_WINDOW = {"VACEFLOW_SUBMIT_TIMEOUT": "2", "VACEFLOW_RECONCILE_MARGIN": "1"}

pytestmark = pytest.mark.usefixtures("free_slots")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return MediaFactory(tmp_path_factory.mktemp("crash-media")).video(
        width=320, height=240, fps=16, seconds=1.0, name="crash-clip"
    )


def _start(
    env: VaceEnv, clip: Path, *, prefect: bool = False, **extra: str
) -> subprocess.Popen[bytes]:
    """`vaceflow run video_outpainting ...` in a session of its own (a process group
    the test can kill whole), its output kept beside the data folder. Without a Prefect
    server named, as a user with none runs it (the same submit, without a flow around
    it); `prefect=True` runs it through the `vace_job` flow on the session's server."""
    log = (env.data.parent / "runs.log").open("ab")
    log.write(f"\n--- run {extra} prefect={prefect}\n".encode())
    variables = {k: v for k, v in env.env.items() if prefect or not k.startswith("PREFECT_")}
    return subprocess.Popen(
        [
            VACEFLOW,
            "run",
            "video_outpainting",
            "--prompt",
            "widen the view",
            "--video",
            str(clip),
            "--left-scale",
            "1.25",
        ],
        env=without_prefect(os.environ) | variables | FAST_WINDOW | extra,
        cwd=env.data.parent,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _run(env: VaceEnv, clip: Path, *, prefect: bool = False, **extra: str) -> int:
    proc = _start(env, clip, prefect=prefect, **extra)
    try:
        return proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _row() -> JobRecord | None:
    rows = Catalog.from_settings().list_jobs(history=True)
    assert len(rows) <= 1
    return rows[0] if rows else None


def _wait_for(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not check():
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _assert_paid_once(env: VaceEnv) -> JobRecord:
    """What the user must see after the second run: one submission, one video."""
    assert env.submissions() == 1
    row = _row()
    assert row is not None
    assert (row.status, row.attempts) == (JobStatus.SUCCEEDED, 1)
    assert Catalog.from_settings().uncertain() == []
    assert row.output is not None
    video = probe(row.output.path or "")
    assert (video.codec, round(video.fps or 0)) == ("h264", 30)
    return row


# The row each kill leaves (what proves the kill landed where it was meant to), and
# how many submissions the service has by then.
STEPS: list[Any] = [
    pytest.param("submit.before_lease", JobStatus.STAGING, 0, id="before-the-lease"),
    pytest.param("submit.before_slot", JobStatus.SUBMITTING, 0, id="after-the-lease"),
    pytest.param("submit.before_send", JobStatus.SUBMITTING, 0, id="after-the-slot"),
    pytest.param("submit.sending", JobStatus.SENDING, 0, id="marked-not-sent"),
    pytest.param("submit.before_record", JobStatus.SENDING, 1, id="after-the-answer"),
    pytest.param("submit.after_record", JobStatus.SUBMITTED, 1, id="after-the-write"),
]


@pytest.mark.parametrize(("step", "left", "paid"), STEPS)
def test_a_run_killed_at_a_step_of_its_submit_is_finished_by_the_next_run(
    vace_env: MakeEnv, clip: Path, step: str, left: JobStatus, paid: int
) -> None:
    env = vace_env(latency=1.0)
    assert _run(env, clip, VACEFLOW_FAILPOINT=step) == -signal.SIGKILL
    killed = _row()
    assert killed is not None
    assert killed.status in (left, JobStatus.UNCERTAIN if left is JobStatus.SENDING else left)
    assert env.submissions() == paid

    assert _run(env, clip) == 0
    row = _assert_paid_once(env)
    assert row.id == killed.id
    if killed.task_id:
        assert row.task_id == killed.task_id


def test_a_run_killed_during_its_request_is_reconciled_by_the_next_run(
    vace_env: MakeEnv, clip: Path
) -> None:
    env = vace_env(latency=1.0, submit_faults=("hang",), hang_seconds=60)
    proc = _start(env, clip)
    try:
        _wait_for(lambda: env.submissions() == 1, "the service to have the task", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed = _row()
    assert killed is not None
    assert (killed.task_id, killed.status) == (None, JobStatus.SENDING)

    assert _run(env, clip) == 0
    row = _assert_paid_once(env)
    assert any("reconciled" in (e.note or "") for e in row.history)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stop_during_the_request_waits_for_the_task_id(
    vace_env: MakeEnv, clip: Path, sig: str
) -> None:
    # The signal comes the moment the row says `sending`; the answer a second later
    # (within the submit's 2 s timeout).
    env = vace_env(latency=1.0, submit_faults=("hang",), hang_seconds=1)
    assert _run(env, clip, prefect=True, VACEFLOW_FAILPOINT=f"submit.sending:{sig}") != 0
    stopped = _row()
    assert stopped is not None
    assert stopped.task_id is not None
    assert stopped.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)
    assert env.submissions() == 1

    assert _run(env, clip) == 0
    row = _assert_paid_once(env)
    assert row.task_id == stopped.task_id


def test_a_stop_before_the_request_gives_the_submit_back(vace_env: MakeEnv, clip: Path) -> None:
    env = vace_env(latency=1.0)
    assert _run(env, clip, prefect=True, VACEFLOW_FAILPOINT="submit.before_slot:SIGTERM") != 0
    stopped = _row()
    assert stopped is not None
    assert (stopped.status, stopped.attempts, stopped.task_id) == (JobStatus.NEW, 0, None)
    assert "stopped before sending" in (stopped.history[-1].note or "")
    assert env.submissions() == 0

    assert _run(env, clip) == 0
    _assert_paid_once(env)

"""`vaceflow run` with a Prefect server named, as a user runs it (a process of its own).

The command takes the job's in-flight slot on the server and submits before it imports
Prefect; the `vace_job` flow run, which the UI shows, then goes on from the recorded
task inside that same slot. So: one submission, the flow run made after the submit and
Completed, no stage or submit task in it, and the slot back on the server at the end,
even at an account that allows one job in flight (a second take would never come).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures_flows import VaceEnv
from tests.media import MediaFactory
from vaceflow.catalog import JobRecord, JobStatus
from vaceflow.media.probe import probe
from vaceflow.stack.prefect_server import without_prefect

MakeEnv = Callable[..., VaceEnv]
VACEFLOW = str(Path(sys.executable).parent / "vaceflow")

pytestmark = pytest.mark.usefixtures("free_slots")


def test_a_run_submits_first_then_its_flow_run_goes_on_in_the_same_slot(
    vace_env: MakeEnv, media: MediaFactory
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.exceptions import ObjectNotFound

    from tasks.runtime import RUNNING_LIMIT

    env = vace_env(latency=2.0)
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(RUNNING_LIMIT)  # made by the run
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="server-run")
    args = ["run", "video_outpainting", "--prompt", "widen", "--video", str(clip)]
    done = subprocess.run(
        [VACEFLOW, *args, "--left-scale", "1.25", "--json"],
        env=without_prefect(os.environ) | env.env | {"VACEFLOW_ACCOUNT__IN_FLIGHT": "1"},
        cwd=env.data.parent,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = JobRecord.model_validate(json.loads(done.stdout))
    assert record.status is JobStatus.SUCCEEDED
    assert record.output is not None
    assert probe(record.output.path or "").codec == "h264"
    assert env.submissions() == 1
    (task,) = env.tasks()
    assert record.flow_run_id

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(record.flow_run_id)
        assert run.state is not None
        assert run.state.is_completed()
        assert run.created is not None
        assert run.created.timestamp() > task["submit_time"]  # made after the submit
        steps = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
        names = {step.task_key.split("-")[0] for step in steps}
        assert {"wait", "collect", "record"} <= names
        assert not names & {"stage", "submit"}  # done before the flow run began
        limit = client.read_global_concurrency_limit_by_name(RUNNING_LIMIT)
        assert (limit.limit, limit.active_slots) == (1, 0)  # made by the run; given back
        logs = [
            log.message
            for log in client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200
            )
        ]
    assert any("submitted by the command" in line for line in logs)
    # Its last line is in the UI too: the command ends without the interpreter's teardown.
    assert any("Finished in state Completed" in line for line in logs)

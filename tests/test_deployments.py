"""Deployments as a user runs them: `vaceflow serve` in its own process against a real
Prefect server (and the emulator, SeaweedFS), a deployment started through the API, the
downstream deployment started by the job's event; `vaceflow deploy` on the team stack's
work pool, run by its process workers.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_flows import VaceEnv
from tests.fixtures_serve import (
    OUTPAINTING,
    VACEFLOW,
    clean_env,
    forget_deployments,
    prefect_client,
)
from tests.fixtures_serve import served as served  # the fixture
from tests.fixtures_team import TeamStack, vaceflow_cli
from vaceflow.catalog import Catalog, JobStatus
from vaceflow.samples import Samples, make_samples


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    return make_samples(tmp_path_factory.mktemp("samples"))


def outpainting_parameters(samples: Samples) -> dict[str, Any]:
    return {
        "prompt": "A cosy room around the screen.",
        "video": str(samples.video),
        "left_scale": 1.5,
    }


def finished_runs(api: str, flow_name: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with prefect_client(api) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [r for r in runs if r.state is not None and r.state.is_final()]


def run_deployment_sync(api: str, name: str, parameters: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        return run_deployment(name, parameters=parameters, timeout=300, poll_interval=1)


def test_the_watch_deployment_runs_on_a_schedule_over_the_inbox(
    served: tuple[VaceEnv, str], samples: Samples
) -> None:
    import json

    import yaml

    from flows.watch import WATCH_INTERVAL_SECONDS

    env, api = served
    with prefect_client(api) as client:
        deployment = client.read_deployment_by_name("watch/watch")
    [schedule] = deployment.schedules
    assert schedule.active
    assert schedule.schedule.interval.total_seconds() == WATCH_INTERVAL_SECONDS

    # A job file dropped in the data folder's inbox, and a run as the schedule starts
    # it (no parameters): the file is run once and filed under done/.
    inbox = env.data / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    body = {"input": {"function": "video_outpainting", "prompt": "wider", "video_url": "v.mp4"}}
    (inbox / "v.mp4").write_bytes(samples.video.read_bytes())
    (inbox / "wider.yaml").write_text(yaml.safe_dump(body))
    run = run_deployment_sync(api, "watch/watch", {})
    assert run.state is not None
    assert run.state.is_completed(), run.state
    sidecar = json.loads((inbox / "done" / "wider.yaml.result.json").read_text())
    assert [j["status"] for j in sidecar["jobs"]] == ["succeeded"]
    assert not (inbox / "wider.yaml").exists()
    assert env.submissions() == 1


def test_serve_runs_a_deployment_and_the_event_starts_the_downstream_one(
    served: tuple[VaceEnv, str], samples: Samples
) -> None:
    env, api = served
    run = run_deployment_sync(api, OUTPAINTING, outpainting_parameters(samples))

    assert run.state is not None
    assert run.state.is_completed(), run.state
    assert env.submissions() == 1
    job = Catalog.from_settings().find(flow_run_id=str(run.id))
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    assert job.function == "video_outpainting"

    deadline = time.monotonic() + 120
    while not (  # this job's downstream run (other tests' jobs may have their own)
        downstream := [
            r for r in finished_runs(api, "on_job_succeeded") if r.parameters["job_id"] == job.id
        ]
    ):
        assert time.monotonic() < deadline, "the downstream deployment never ran"
        time.sleep(1)
    (after,) = downstream
    assert after.state.is_completed(), after.state
    assert after.parameters["job_id"] == job.id
    assert after.parameters["output_uri"].startswith("s3://")
    note = (env.data / "notes" / f"{job.id}.md").read_text()
    assert job.id in note
    assert after.parameters["output_uri"] in note
    # Still one paid call: the downstream step only reads.
    assert env.submissions() == 1


@pytest.mark.parametrize("served", [{"latency": 60.0, "concurrency": 1}], indirect=True)
def test_cancelling_a_run_cancels_its_task_while_the_service_has_not_started_it(
    served: tuple[VaceEnv, str], samples: Samples
) -> None:
    """Cancel in the Prefect UI (here: through its API) a run whose task waits in the
    service's queue: the run's on_cancellation hook cancels the task, nothing is paid."""
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    env, api = served
    catalog = Catalog.from_settings()
    with prefect_client(api):
        runs = {
            prompt: run_deployment(
                OUTPAINTING,
                parameters=outpainting_parameters(samples) | {"prompt": prompt},
                timeout=0,
            )
            for prompt in ("one of two jobs", "the other job")
        }
    deadline = time.monotonic() + 180
    tasks: dict[str, str] = {}
    while len(tasks) < 2:  # both submitted: one RUNNING, one PENDING at the service
        assert time.monotonic() < deadline, f"not both submitted: {catalog.list_jobs()}"
        time.sleep(0.5)
        for prompt, run in runs.items():
            job = catalog.find(flow_run_id=str(run.id))
            if job is not None and job.task_id:
                tasks[prompt] = job.task_id

    def service_status(task_id: str) -> str:
        return next(t["status"] for t in env.tasks() if t["task_id"] == task_id)

    statuses = {prompt: service_status(task) for prompt, task in tasks.items()}
    assert sorted(statuses.values()) == ["PENDING", "RUNNING"]  # whichever came first runs
    queued = next(prompt for prompt, status in statuses.items() if status == "PENDING")
    running = next(prompt for prompt in tasks if prompt != queued)
    with prefect_client(api) as client:
        client.set_flow_run_state(runs[queued].id, Cancelling(), force=True)
        while service_status(tasks[queued]) != "CANCELED":
            assert time.monotonic() < deadline, "the queued task was never cancelled"
            time.sleep(0.5)
        while (state := client.read_flow_run(runs[queued].id).state) and not state.is_final():
            assert time.monotonic() < deadline, f"the run is still {state.type}"
            time.sleep(0.5)
        assert state is not None
        assert state.type is StateType.CANCELLED
    job = catalog.find(flow_run_id=str(runs[queued].id))
    assert job is not None
    assert job.service_status == "CANCELED"
    assert service_status(tasks[running]) in ("RUNNING", "SUCCEEDED")  # left alone
    assert env.submissions() == 2


def test_serve_refuses_without_a_prefect_server(tmp_path: Path) -> None:
    done = subprocess.run(
        [VACEFLOW, "serve"],
        env=clean_env(VACEFLOW_DATA_DIR=str(tmp_path / "empty")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "No Prefect server configured" in done.stderr


@pytest.mark.slow
@pytest.mark.team
def test_deploy_to_the_team_pool_runs_on_its_workers(
    team_stack: TeamStack, samples: Samples
) -> None:
    api = team_stack.prefect_api_url
    deployed = vaceflow_cli(["deploy", "--pool", team_stack.pool], team_stack.cli_env)
    try:
        assert deployed.returncode == 0, deployed.stderr
        assert f"video_outpainting/video-outpainting to pool {team_stack.pool!r}" in (
            deployed.stdout
        )
        run = run_deployment_sync(api, OUTPAINTING, outpainting_parameters(samples))
    finally:
        # The team stack outlives this test: left deployed, the watch deployment's
        # schedule and the downstream trigger would keep its workers busy under the
        # team-batch tests.
        forget_deployments(api)

    assert run.state is not None
    assert run.state.is_completed(), run.state
    with prefect_client(api) as client:
        ran = client.read_flow_run(run.id)
    assert ran.work_pool_name == team_stack.pool
    with Catalog(team_stack.catalog_url) as catalog:
        job = catalog.find(flow_run_id=str(run.id))
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    assert job.function == "video_outpainting"

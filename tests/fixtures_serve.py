"""`vaceflow serve` in its own process, as a user starts it, with a test's settings
(`vace_env`): the deployments of `deployments/` on the session's Prefect server.

Import `served` into a test module to use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_flows import VaceEnv

VACEFLOW = str(Path(sys.executable).parent / "vaceflow")
OUTPAINTING = "video_outpainting/video-outpainting"
DOWNSTREAM = "on_job_succeeded/on-job-succeeded"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any vaceflow, DashScope, AWS or Prefect setting."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DASHSCOPE_", "VACEFLOW_", "PREFECT_"))
    }
    return keep | extra


@contextmanager
def prefect_client(api: str) -> Iterator[Any]:
    """A sync Prefect client on `api`."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as c:
        yield c


def wait_for_deployment(api: str, name: str, proc: subprocess.Popen[bytes], log: Path) -> Any:
    """The deployment once `vaceflow serve` has registered it."""
    deadline = time.monotonic() + 180
    with prefect_client(api) as client:
        while True:
            assert proc.poll() is None, f"`vaceflow serve` died:\n{log.read_text()[-3000:]}"
            try:
                return client.read_deployment_by_name(name)
            except Exception:
                assert time.monotonic() < deadline, f"no {name}:\n{log.read_text()[-3000:]}"
                time.sleep(1)


@pytest.fixture
def served(
    vace_env: Callable[..., VaceEnv],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[VaceEnv, str]]:
    """(the test's VaceEnv, the Prefect API URL) with `vaceflow serve` running; the
    emulator's config may come as the fixture's parameter (`indirect=True`). Its runs
    may read local files in the session's temporary folder (VACEFLOW_ALLOWED_ROOTS),
    as an owner would share a media folder."""
    env = vace_env(**({"latency": 0.2} | getattr(request, "param", {})))
    env.env["VACEFLOW_ALLOWED_ROOTS"] = str(tmp_path_factory.getbasetemp())
    api = env.env["PREFECT_API_URL"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [VACEFLOW, "serve"],
            env=clean_env(**env.env),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # signals meant for the tests' process group skip it
        )
        try:
            wait_for_deployment(api, OUTPAINTING, proc, log)
            wait_for_deployment(api, DOWNSTREAM, proc, log)
            yield env, api
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            forget_deployments(api)


def forget_deployments(api: str) -> None:
    """Delete the served deployments with their triggers and scheduled runs: the session's
    server outlives this test, and a trigger left behind would schedule a downstream run
    for every job any later test finishes, for the next `serve` to start all at once."""
    with prefect_client(api) as client:
        for deployment in client.read_deployments():
            client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
            client.delete_deployment(deployment.id)

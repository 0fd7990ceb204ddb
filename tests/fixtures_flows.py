"""Fixtures for running the flows for real: a Prefect server, SeaweedFS, the emulator.

`prefect_api` is one `prefect server start` for the session (a real Prefect API);
`vace_env` points every setting of this process at a fresh emulator, the session's
SeaweedFS (a prefix of the test's own) and a data folder of the test's own, and gives
the environment a subprocess needs to run the same jobs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.fixtures_emulator import TEST_KEY, StartEmulator, emulator_state
from tests.fixtures_s3 import S3Server
from vaceflow.emulator import EmulatorServer
from vaceflow.stack.prefect_server import api_answers, server_command, server_env
from vaceflow.stack.processes import wait_until


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        server_command(port),
        env=server_env(os.environ, home, None, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: api_answers(url),
            timeout=120,
            alive=lambda: proc.poll() is None,
            what="the Prefect server",
        )
        yield url
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # before the server goes, not into a closed socket
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@dataclass
class VaceEnv:
    emulator: EmulatorServer
    s3: S3Server
    data: Path
    prefix: str
    env: dict[str, str] = field(default_factory=dict)

    def submissions(self) -> int:
        return int(emulator_state(self.emulator)["counters"].get("submissions", 0))

    def tasks(self) -> list[dict[str, Any]]:
        return list(emulator_state(self.emulator)["tasks"])

    def state(self) -> dict[str, Any]:
        return emulator_state(self.emulator)


@pytest.fixture
def vace_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    s3_server: S3Server,
    start_emulator: StartEmulator,
    prefect_api: str,
) -> Iterator[Callable[..., VaceEnv]]:
    """Factory: `vace_env(latency=..., **emulator_config)` -> a VaceEnv in effect;
    `environ={...}` changes or adds variables of the environment it makes."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    made: list[Any] = []

    def make(*, environ: dict[str, str] | None = None, **emulator_config: Any) -> VaceEnv:
        emulator = start_emulator(**({"latency": 0.5} | emulator_config))
        prefix = f"t-{secrets.token_hex(4)}"
        data = tmp_path / "vaceflow"
        env = {
            "DASHSCOPE_API_KEY": TEST_KEY,
            "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
            "VACEFLOW_DATA_DIR": str(data),
            "VACEFLOW_STAGING": "s3",
            "VACEFLOW_S3_BUCKET": s3_server.bucket,
            "VACEFLOW_S3_PREFIX": prefix,
            "VACEFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
            "VACEFLOW_S3_REGION": s3_server.region,
            "VACEFLOW_S3_ADDRESSING_STYLE": "path",
            "VACEFLOW_S3_ACCESS_KEY_ID": s3_server.access_key,
            "VACEFLOW_S3_SECRET_ACCESS_KEY": s3_server.secret_key,
            "VACEFLOW_STATUS_INTERVAL": "1",
            "PREFECT_API_URL": prefect_api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        } | (environ or {})
        for key, value in env.items():
            if not key.startswith("PREFECT_"):
                monkeypatch.setenv(key, value)
        return VaceEnv(emulator=emulator, s3=s3_server, data=data, prefix=prefix, env=env)

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        yield make
        made.clear()


@pytest.fixture
def free_slots(vace_env: Callable[..., VaceEnv]) -> Iterator[None]:
    """A killed run keeps its in-flight slot until Prefect's lease ends (10 min): drop
    the shared limit afterwards so later tests start from a fresh one."""
    yield
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from tasks.runtime import RUNNING_LIMIT

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(RUNNING_LIMIT)

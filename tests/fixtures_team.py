"""Fixtures that start the team stack (PostgreSQL, Prefect server, workers) on loopback.

`team_stack` is one `vaceflow dev up --team` for the session, run as a user runs it (the
CLI, in a temporary data folder): SeaweedFS, the emulator, PostgreSQL, a Prefect server
on it, the `vaceflow` process pool and two workers; about a minute on two busy cores.
At the end `vaceflow dev down` must leave none of its processes running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vaceflow.stack import ServiceStatus, StackState, status, stop_component
from vaceflow.stack.postgres import ensure_databases
from vaceflow.stack.prefect_server import pool_workers
from vaceflow.stack.processes import is_running
from vaceflow.stack.state import load, stack_env

VACEFLOW = str(Path(sys.executable).parent / "vaceflow")
WORKERS = 2
UP = ["dev", "up", "--team", "--workers", str(WORKERS), "--timeout", "180"]


def vaceflow_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VACEFLOW, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@dataclass(frozen=True)
class TeamStack:
    """What a test needs of the running team stack."""

    data_dir: Path
    cli_env: dict[str, str]
    """The environment the stack was started with (VACEFLOW_DATA_DIR set): run
    `vaceflow` commands with it."""

    @property
    def state(self) -> StackState:
        state = load(self.data_dir)
        assert state is not None
        return state

    @property
    def env(self) -> dict[str, str]:
        """The variables a worker (and so a flow) gets: PREFECT_API_URL, the catalog on
        PostgreSQL, the emulator's key, the S3 keys, the data folder."""
        return stack_env(self.state) | {"VACEFLOW_DATA_DIR": str(self.data_dir)}

    @property
    def prefect_api_url(self) -> str:
        assert self.state.prefect is not None
        return self.state.prefect.api_url

    @property
    def catalog_url(self) -> str:
        url = self.state.catalog_url
        assert url is not None
        return url

    @property
    def pool(self) -> str:
        return self.state.pool

    @property
    def workers(self) -> list[str]:
        return [w.name for w in self.state.workers]

    def worker_statuses(self) -> dict[str, str]:
        """name -> ONLINE / OFFLINE, as the Prefect server reports its pool."""
        return {n: w.status for n, w in pool_workers(self.prefect_api_url, self.pool).items()}

    def status(self) -> list[ServiceStatus]:
        return status(self.data_dir)

    def kill_worker(self, name: str, *, hard: bool = False) -> bool:
        """Stop one worker as a crash would (the rest keep running); `hard`: SIGKILL
        it and the flow runs it started, as a lost machine would."""
        return stop_component(self.data_dir, name, hard=hard)

    def revive(self) -> StackState:
        """`vaceflow dev up --team` again: restarts only what is dead (a killed worker).
        Through the CLI with the owner's environment, as a user runs it: a revived
        worker takes its trust settings (VACEFLOW_ALLOWED_ROOTS) from there, as its
        siblings did, not from the test process's."""
        again = vaceflow_cli(UP, self.cli_env)
        assert again.returncode == 0, again.stderr
        return self.state

    def create_database(self, name: str) -> str:
        """A new empty database on the stack's PostgreSQL; its SQLAlchemy URL."""
        db = self.state.postgres
        assert db is not None
        ensure_databases(db.port, db.password.get_secret_value(), (name,))
        return db.url(name)


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DASHSCOPE_", "VACEFLOW_", "PREFECT_"))
    }
    data = tmp_path_factory.mktemp("team") / "data"
    env["VACEFLOW_DATA_DIR"] = str(data)
    # The workers run jobs from the API: they may read the session's test media.
    env["VACEFLOW_ALLOWED_ROOTS"] = str(tmp_path_factory.getbasetemp())
    started = vaceflow_cli(UP, env)
    stack = TeamStack(data, env)
    try:
        assert started.returncode == 0, started.stderr
        yield stack
    finally:
        running = [(s.name, s.pid) for s in status(data) if s.running]
        down = vaceflow_cli(["dev", "down"], env)
        assert down.returncode == 0, down.stderr
        left = [name for name, pid in running if is_running(pid, "")]
        assert not left, f"still running after `vaceflow dev down`: {left}"

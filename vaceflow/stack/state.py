"""What `vaceflow dev up` started, kept in the data folder between commands.

`stack.json` holds pids, ports and generated keys (mode 0600); `env` holds the
variables every vaceflow command, worker and flow reads. Both are written whole
(temp file, then rename) and one `up`/`down` at a time holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from vaceflow.stack.postgres import database_url
from vaceflow.stack.seaweedfs import REGION, SeaweedPorts

__all__ = [
    "PostgresState",
    "PrefectState",
    "StackState",
    "WorkerState",
    "load",
    "locked",
    "save",
    "stack_env",
    "write_env",
]

BUCKET = "vaceflow"
PREFIX = "vaceflow"


class PostgresState(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int | None = None
    port: int
    password: SecretStr

    @property
    def marker(self) -> str:
        return f"-p {self.port} -k"

    def url(self, database: str, driver: str = "psycopg") -> str:
        return database_url(self.port, self.password.get_secret_value(), database, driver)


class PrefectState(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int | None = None
    port: int
    database: Literal["sqlite", "postgresql"] = "sqlite"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def marker(self) -> str:
        return f"server start --port {self.port} --host"


class WorkerState(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    pid: int | None = None

    def marker(self, pool: str) -> str:
        return f"--pool {pool} --type process --name {self.name}"


class StackState(BaseModel):
    """What `up` started; written to `stack.json`."""

    model_config = ConfigDict(frozen=True)

    seaweed_pid: int | None = None
    seaweed_ports: SeaweedPorts
    emulator_pid: int | None = None
    emulator_port: int
    api_key: SecretStr
    access_key: str
    secret_key: SecretStr
    bucket: str = BUCKET
    prefix: str = PREFIX
    started_at: datetime | None = None
    lifecycle: str = "not applied"
    prefect: PrefectState | None = None
    team: bool = False
    postgres: PostgresState | None = None
    """Prefect's database and the catalog's, run only in the team stack; kept when the
    stack goes back to solo, since the cluster on disk keeps the password."""
    pool: str = "vaceflow"
    workers: tuple[WorkerState, ...] = ()

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.seaweed_ports.s3}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def seaweed_marker(self) -> str:
        """In our SeaweedFS's command line and no other's (a reused pid is not ours)."""
        return f"-s3.port={self.seaweed_ports.s3} "

    @property
    def emulator_marker(self) -> str:
        return f"emulator --host 127.0.0.1 --port {self.emulator_port} "

    @property
    def catalog_url(self) -> str | None:
        return self.postgres.url("catalog") if self.team and self.postgres else None

    def without_pids(self) -> StackState:
        return self.model_copy(
            update={
                "seaweed_pid": None,
                "emulator_pid": None,
                "prefect": self.prefect and self.prefect.model_copy(update={"pid": None}),
                "postgres": self.postgres and self.postgres.model_copy(update={"pid": None}),
                "workers": tuple(w.model_copy(update={"pid": None}) for w in self.workers),
            }
        )


def stack_env(state: StackState) -> dict[str, str]:
    """The variables that point vaceflow (and boto3, the official SDK, Prefect) at the stack."""
    env = {
        "DASHSCOPE_API_KEY": state.api_key.get_secret_value(),
        "DASHSCOPE_HTTP_BASE_URL": f"{state.emulator_url}/api/v1",
        "VACEFLOW_STAGING": "s3",
        "VACEFLOW_S3_BUCKET": state.bucket,
        "VACEFLOW_S3_PREFIX": state.prefix,
        "VACEFLOW_S3_ENDPOINT_URL": state.s3_endpoint,
        "VACEFLOW_S3_REGION": REGION,
        "VACEFLOW_S3_ADDRESSING_STYLE": "path",
        "AWS_ACCESS_KEY_ID": state.access_key,
        "AWS_SECRET_ACCESS_KEY": state.secret_key.get_secret_value(),
    }
    if state.prefect is not None:
        env["PREFECT_API_URL"] = state.prefect.api_url
    if state.catalog_url is not None:
        env["VACEFLOW_CATALOG_URL"] = state.catalog_url
    return env


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """One `up`/`down` at a time per data folder (two `up`s must not make two stacks)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "stack.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _state_path(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def load(data_dir: Path) -> StackState | None:
    path = _state_path(data_dir)
    if not path.is_file():
        return None
    try:
        return StackState.model_validate_json(path.read_text())
    except ValueError:
        return None


def _private_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def save(data_dir: Path, state: StackState) -> None:
    data: dict[str, Any] = state.model_dump(mode="json")
    data["api_key"] = state.api_key.get_secret_value()
    data["secret_key"] = state.secret_key.get_secret_value()
    if state.postgres is not None:
        data["postgres"]["password"] = state.postgres.password.get_secret_value()
    _private_write(_state_path(data_dir), json.dumps(data, indent=2))


def write_env(data_dir: Path, state: StackState) -> None:
    lines = [f"{k}={v}" for k, v in stack_env(state).items()]
    _private_write(data_dir / "env", "\n".join(lines) + "\n")

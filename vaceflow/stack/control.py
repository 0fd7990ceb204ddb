"""`vaceflow dev up / down / status`: SeaweedFS and the emulator, side by side on loopback.

State lives in the data folder: `stack.json` (pids, ports, generated keys; mode 0600),
`env` (what every vaceflow command reads by default), `logs/`, and SeaweedFS's data
in `seaweedfs/`. `up` is idempotent: a stack whose processes still run and answer is
left alone; anything half-running is stopped and started again, on the same ports and
keys when they are still free, so URLs and env files stay valid across restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from vaceflow.errors import StackError, StorageError
from vaceflow.settings import Settings
from vaceflow.stack.processes import free_ports, is_running, log_tail, spawn, stop, wait_until
from vaceflow.stack.seaweedfs import (
    REGION,
    SeaweedPorts,
    find_weed,
    s3_answers,
    seaweed_command,
    seaweed_env,
)
from vaceflow.storage.s3 import S3Store, input_url_ttl

__all__ = ["ServiceStatus", "StackState", "down", "stack_env", "status", "up"]

log = logging.getLogger(__name__)

BUCKET = "vaceflow"
PREFIX = "vaceflow"


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


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    url: str
    running: bool
    answering: bool


def stack_env(state: StackState) -> dict[str, str]:
    """The variables that point vaceflow (and boto3, and the official SDK) at the stack."""
    return {
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


def up(data_dir: Path, *, timeout: float = 90.0) -> tuple[StackState, bool]:
    """Start what is not running; return the state and whether it all ran already."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        old = _load(data_dir)
        if old is not None and all(s.running and s.answering for s in _statuses(old)):
            _write_env(data_dir, old)
            return old, True
        if old is not None:
            _stop_all(old)
        state = _fresh_state(old)
        try:
            state = _start_seaweed(data_dir, state, timeout)
            _save(data_dir, state)
            state = _start_emulator(data_dir, state, timeout)
            state = state.model_copy(
                update={"started_at": datetime.now(UTC), "lifecycle": _apply_lifecycle(state)}
            )
        except BaseException:
            _stop_all(state)
            _save(data_dir, state.model_copy(update={"seaweed_pid": None, "emulator_pid": None}))
            raise
        _save(data_dir, state)
        _write_env(data_dir, state)
        return state, False


def down(data_dir: Path) -> list[str]:
    """Stop the stack's processes; data, keys and the env file stay for the next `up`."""
    with _locked(data_dir):
        state = _load(data_dir)
        if state is None:
            return []
        stopped = _stop_all(state)
        _save(data_dir, state.model_copy(update={"seaweed_pid": None, "emulator_pid": None}))
        return stopped


def status(data_dir: Path) -> list[ServiceStatus]:
    state = _load(data_dir)
    return [] if state is None else _statuses(state)


# --- starting -----------------------------------------------------------------------
def _fresh_state(old: StackState | None) -> StackState:
    """Keys kept from the last run; ports too, unless something else took them."""
    if old is not None:
        wanted = [*old.seaweed_ports.to_dict().values(), old.emulator_port]
        if all(_port_free(p) for p in wanted):
            return old.model_copy(update={"seaweed_pid": None, "emulator_pid": None})
        ports = free_ports(11)
        return old.model_copy(
            update={
                "seaweed_ports": SeaweedPorts(*ports[:10]),
                "emulator_port": ports[10],
                "seaweed_pid": None,
                "emulator_pid": None,
            }
        )
    ports = free_ports(11)
    return StackState(
        seaweed_ports=SeaweedPorts(*ports[:10]),
        emulator_port=ports[10],
        api_key=SecretStr(f"sk-local-{secrets.token_hex(16)}"),
        access_key=f"VACEFLOW{secrets.token_hex(6).upper()}",
        secret_key=SecretStr(secrets.token_urlsafe(30)),
    )


def _start_seaweed(data_dir: Path, state: StackState, timeout: float) -> StackState:
    store = data_dir / "seaweedfs"
    store.mkdir(parents=True, exist_ok=True)
    logfile = data_dir / "logs" / "seaweedfs.log"
    secret = state.secret_key.get_secret_value()
    pid = spawn(
        seaweed_command(find_weed(), store, state.bucket, state.seaweed_ports),
        log=logfile,
        env=seaweed_env(state.access_key, secret),
        cwd=data_dir,
    )
    state = state.model_copy(update={"seaweed_pid": pid})
    _wait(
        lambda: s3_answers(state.s3_endpoint, state.bucket, state.access_key, secret),
        pid,
        state.seaweed_marker,
        "SeaweedFS",
        logfile,
        timeout,
    )
    return state


def _start_emulator(data_dir: Path, state: StackState, timeout: float) -> StackState:
    """The emulator CLI in its own process; its key goes by environment, not argv (ps)."""
    logfile = data_dir / "logs" / "emulator.log"
    cmd = [
        sys.executable,
        "-c",
        "from vaceflow.cli import main; main()",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(state.emulator_port),
        "--data-dir",
        str(data_dir / "emulator"),
    ]
    env = dict(os.environ) | {"DASHSCOPE_API_KEY": state.api_key.get_secret_value()}
    pid = spawn(cmd, log=logfile, env=env, cwd=data_dir)
    state = state.model_copy(update={"emulator_pid": pid})
    _wait(
        lambda: _http_answers(state.emulator_url),
        pid,
        state.emulator_marker,
        "the emulator",
        logfile,
        timeout,
    )
    return state


def _wait(
    ready: Callable[[], bool], pid: int, marker: str, what: str, logfile: Path, timeout: float
) -> None:
    try:
        wait_until(ready, timeout=timeout, alive=lambda: is_running(pid, marker), what=what)
    except StackError as exc:
        raise StackError(f"{exc}; {logfile} ends:\n{log_tail(logfile)}") from None


def _apply_lifecycle(state: StackState) -> str:
    """Expire staged inputs after the longest a URL may live (rounded up to days)."""
    settings = Settings(
        s3_bucket=state.bucket,
        s3_prefix=state.prefix,
        s3_endpoint_url=state.s3_endpoint,
        s3_region=REGION,
        s3_addressing_style="path",
        s3_access_key_id=state.access_key,
        s3_secret_access_key=state.secret_key,
    )
    days = max(1, math.ceil(input_url_ttl(settings) / 86400))
    store = S3Store.from_settings(settings)
    try:
        store.expire_inputs_after(days)
    except StorageError as exc:
        log.warning("lifecycle rule not applied: %s", exc)
        return f"not supported here ({exc.code}): delete {state.prefix}/inputs/ yourself"
    finally:
        store.close()
    return f"{state.prefix}/inputs/ expires after {days} day(s)"


# --- looking --------------------------------------------------------------------------
def _statuses(state: StackState) -> list[ServiceStatus]:
    secret = state.secret_key.get_secret_value()
    seaweed_up = is_running(state.seaweed_pid, state.seaweed_marker)
    emulator_up = is_running(state.emulator_pid, state.emulator_marker)
    return [
        ServiceStatus(
            "seaweedfs",
            state.seaweed_pid,
            state.s3_endpoint,
            seaweed_up,
            seaweed_up and s3_answers(state.s3_endpoint, state.bucket, state.access_key, secret),
        ),
        ServiceStatus(
            "emulator",
            state.emulator_pid,
            f"{state.emulator_url}/api/v1",
            emulator_up,
            emulator_up and _http_answers(state.emulator_url),
        ),
    ]


def _http_answers(root: str) -> bool:
    try:
        httpx.get(f"{root}/_emulator/health", timeout=2.0)
    except httpx.HTTPError:
        return False
    return True


def _port_free(port: int) -> bool:
    """Free to listen on (as Go and uvicorn listen: SO_REUSEADDR, so TIME_WAIT is fine)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_all(state: StackState) -> list[str]:
    stopped = []
    if stop(state.emulator_pid, state.emulator_marker):
        stopped.append("emulator")
    if stop(state.seaweed_pid, state.seaweed_marker):
        stopped.append("seaweedfs")
    return stopped


# --- files ----------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
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


def _load(data_dir: Path) -> StackState | None:
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


def _save(data_dir: Path, state: StackState) -> None:
    data = state.model_dump(mode="json")
    data["api_key"] = state.api_key.get_secret_value()
    data["secret_key"] = state.secret_key.get_secret_value()
    _private_write(_state_path(data_dir), json.dumps(data, indent=2))


def _write_env(data_dir: Path, state: StackState) -> None:
    lines = [f"{k}={v}" for k, v in stack_env(state).items()]
    _private_write(data_dir / "env", "\n".join(lines) + "\n")

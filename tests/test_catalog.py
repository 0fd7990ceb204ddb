"""The catalog on real SQLite files: migrations, the submit protocol, secrets, exports, CLI."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from typer.testing import CliRunner

from vaceflow.catalog import (
    Catalog,
    CatalogConflict,
    InputRecord,
    JobNotFound,
    JobStatus,
    OutputRecord,
)
from vaceflow.catalog.database import MIGRATIONS, migration_sql
from vaceflow.catalog.export import CSV_COLUMNS, to_csv, to_json
from vaceflow.catalog.schema import Base
from vaceflow.cli import app
from vaceflow.identity import job_identity
from vaceflow.jobs import Job, parse_job
from vaceflow.limits import Role
from vaceflow.responses import TaskResponse

SHA = "ab" * 32


class Clock:
    """A clock the test moves by hand (leases and the 24 h task lifetime)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog(tmp_path: Path, clock: Clock) -> Iterator[Catalog]:
    with Catalog(f"sqlite:///{tmp_path / 'catalog.db'}", clock=clock).upgrade() as cat:
        yield cat


def outpainting(prompt: str = "widen the beach", url: str = "https://b.example/in.mp4") -> Job:
    return parse_job(
        {"input": {"function": "video_outpainting", "prompt": prompt, "video_url": url}}
    )


def task(task_id: str, status: str, **output: Any) -> TaskResponse:
    body: dict[str, Any] = {
        "request_id": "req-poll",
        "output": {"task_id": task_id, "task_status": status, **output},
    }
    if status == "SUCCEEDED":
        body["usage"] = {"video_duration": 5, "video_ratio": "1280*720", "video_count": 1}
    return TaskResponse.model_validate(body)


def claim(catalog: Catalog, prompt: str = "widen the beach") -> str:
    job = outpainting(prompt)
    return catalog.claim(job_identity(job, {Role.VIDEO: [SHA]}), job).id


# --- migrations -------------------------------------------------------------------------


def test_migrations_build_the_schema_from_an_empty_file_and_rerun_harmlessly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deep" / "folder" / "catalog.db"
    url = f"sqlite:///{path}"
    with Catalog(url).upgrade() as first:
        job_id = claim(first)
    with Catalog(url).upgrade().upgrade() as again:
        assert again.get(job_id).status is JobStatus.NEW
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"jobs", "job_events", "alembic_version"} <= tables
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_submit_left_under_the_old_protocol_reads_uncertain_after_the_upgrade(
    tmp_path: Path, clock: Clock
) -> None:
    """0001 had no `sending`: a row left `submitting` may have sent its request."""
    from vaceflow.catalog.database import create_catalog_engine, migrate

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = create_catalog_engine(url)
    migrate(engine, "0001")
    job_id, lease = "vf_oldsubmitting", clock.now + timedelta(seconds=120)
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, identity, function, model, prompt, parameters, request, "
            "inputs, status, attempts, submit_owner, submit_lease_until, created_at, "
            "updated_at) VALUES (?, ?, 'video_outpainting', 'wan2.1-vace-plus', 'p', '{}', "
            "'{}', '{}', 'submitting', 1, 'old-run', ?, ?, ?)",
            (job_id, "f" * 64, lease.strftime(stamp), *[clock.now.strftime(stamp)] * 2),
        )
    engine.dispose()
    with Catalog(url, clock=clock).upgrade() as catalog:
        assert catalog.get(job_id).status is JobStatus.SENDING
        clock.advance(121)
        row = catalog.get(job_id)
        assert (row.status, row.send_until) == (JobStatus.UNCERTAIN, lease)


def test_the_migration_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog(url).upgrade().close()
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_the_migrations_render_for_postgresql() -> None:
    """No server here (issue 8 brings one): the same scripts must at least compile to
    PostgreSQL DDL, with aware timestamps and JSON."""
    sql = migration_sql("postgresql://catalog@db.example/vaceflow")
    assert "CREATE TABLE jobs" in sql
    assert "CREATE TABLE job_events" in sql
    assert "created_at TIMESTAMP WITH TIME ZONE NOT NULL" in sql
    assert "parameters JSON NOT NULL" in sql
    assert "CONSTRAINT uq_jobs_identity UNIQUE (identity)" in sql
    assert "id SERIAL NOT NULL" in sql


def test_migration_scripts_ship_with_the_package() -> None:
    """Found by pyproject's package discovery (.py) and package-data (`**/*.mako`)."""
    setuptools = pytest.importorskip("setuptools")
    root = Path(__file__).resolve().parents[1]
    packages = setuptools.find_packages(str(root), include=["vaceflow*"])
    assert {"vaceflow.catalog.migrations", "vaceflow.catalog.migrations.versions"} <= set(packages)
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert MIGRATIONS.is_relative_to(root / "vaceflow")


# --- claim and the submit protocol -------------------------------------------------------


def test_claim_returns_one_row_per_identity(catalog: Catalog) -> None:
    first = claim(catalog)
    assert claim(catalog) == first
    other = claim(catalog, prompt="widen the sky")
    assert other != first
    assert other.startswith("vf_")
    assert len(other) == 15
    assert len(catalog.list_jobs()) == 2


def test_a_job_from_start_to_video(catalog: Catalog, clock: Clock) -> None:
    job_id = claim(catalog)
    expiry = clock.now + timedelta(hours=48)
    staged = catalog.record_staging(
        job_id,
        inputs={
            Role.VIDEO: [
                InputRecord(
                    source="/media/in.mov",
                    sha256=SHA,
                    staged_url="https://s3.example/bkt/in.mp4?X-Amz-Signature=x",
                    report={"actions": ["transcode"]},
                )
            ]
        },
        expires_at=expiry,
    )
    assert staged.status is JobStatus.STAGING
    assert staged.inputs_expire_at == expiry
    assert staged.inputs["video"][0].staged_url == "https://s3.example/bkt/in.mp4"

    assert catalog.begin_submit(job_id, "worker-1", lease_seconds=120)
    assert not catalog.begin_submit(job_id, "worker-2", lease_seconds=120, take_over=False)
    assert catalog.mark_sending(job_id, "worker-1", window_seconds=30)
    assert not catalog.begin_submit(job_id, "worker-2", lease_seconds=120)
    clock.advance(1)
    submitted = catalog.record_submitted(job_id, "task-1", "req-1")
    assert (submitted.status, submitted.task_id, submitted.attempts) == (
        JobStatus.SUBMITTED,
        "task-1",
        1,
    )
    assert catalog.find(task_id="task-1") == submitted

    clock.advance(30)
    catalog.record_status(job_id, task("task-1", "RUNNING", submit_time="2026-01-02 11:04:06.000"))
    clock.advance(30)
    assert catalog.record_status(job_id, task("task-1", "RUNNING")).status is JobStatus.RUNNING
    assert [j.id for j in catalog.in_flight()] == [job_id]

    clock.advance(60)
    done = catalog.record_status(
        job_id, task("task-1", "SUCCEEDED", end_time="2026-01-02 11:06:06.500")
    )
    assert done.status is JobStatus.SUCCEEDED
    assert done.cost == pytest.approx(0.5)
    assert done.duration_seconds == pytest.approx(120)
    assert [j.id for j in catalog.in_flight()] == [job_id], "succeeded but not collected"

    collected = catalog.record_output(
        job_id, OutputRecord(path="/out/v.mp4", sha256=SHA, probe={"width": 1280})
    )
    assert collected.output is not None
    assert collected.output.path == "/out/v.mp4"
    assert catalog.in_flight() == []
    assert catalog.total_cost() == pytest.approx(0.5)
    assert catalog.median_durations() == {"video_outpainting": pytest.approx(120)}

    history = catalog.get(job_id, history=True).history
    assert [e.status for e in history] == [
        JobStatus.NEW,
        JobStatus.STAGING,
        JobStatus.SUBMITTING,
        JobStatus.SENDING,
        JobStatus.SUBMITTED,
        JobStatus.RUNNING,  # one event for two RUNNING polls
        JobStatus.SUCCEEDED,
        JobStatus.SUCCEEDED,
    ]
    running = history[5]
    # The service's China Standard Time, stored as UTC.
    assert running.submit_time == datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert history[6].end_time == datetime(2026, 1, 2, 3, 6, 6, 500000, tzinfo=UTC)


def test_an_abandoned_submit_can_be_taken_again(catalog: Catalog) -> None:
    job_id = claim(catalog)
    assert catalog.begin_submit(job_id, "w1", 60)
    assert catalog.mark_sending(job_id, "w1", 30)
    assert not catalog.abandon_submit(job_id, "w2", "not mine to give back")
    assert catalog.abandon_submit(job_id, "w1", ConnectionRefusedError("refused"))
    record = catalog.get(job_id)
    assert (record.status, record.attempts) == (JobStatus.NEW, 0)
    assert record.error_message == "refused"
    assert catalog.begin_submit(job_id, "w2", 60)
    assert catalog.mark_sending(job_id, "w2", 30)
    assert catalog.get(job_id).attempts == 1


def test_a_run_that_sent_nothing_is_taken_over_at_once(catalog: Catalog, clock: Clock) -> None:
    job_id = claim(catalog)
    assert catalog.begin_submit(job_id, "killed", 60)
    assert catalog.list_jobs(status=JobStatus.SUBMITTING)[0].id == job_id
    # A run that lost the row waits out the holder's lease; a run arriving does not.
    assert not catalog.begin_submit(job_id, "follower", 60, take_over=False)
    assert catalog.begin_submit(job_id, "next", 60)
    assert not catalog.mark_sending(job_id, "killed", 30), "the holder lost the row"
    assert catalog.mark_sending(job_id, "next", 30)
    record = catalog.get(job_id, history=True)
    assert (record.status, record.submit_owner, record.attempts) == (JobStatus.SENDING, "next", 1)
    assert "taken over from killed" in (record.history[-2].note or "")
    clock.advance(61)
    assert not catalog.begin_submit(job_id, "late", 60, take_over=False)


def test_a_sending_row_past_its_window_is_uncertain_and_never_taken_over(
    catalog: Catalog, clock: Clock
) -> None:
    job_id = claim(catalog)
    assert catalog.begin_submit(job_id, "crashed", 60)
    assert catalog.mark_sending(job_id, "crashed", 30)
    assert catalog.list_jobs(status=JobStatus.SENDING)[0].id == job_id
    assert [r.id for r in catalog.unanswered()] == [job_id]
    clock.advance(31)
    assert catalog.get(job_id).status is JobStatus.UNCERTAIN
    assert not catalog.begin_submit(job_id, "someone-else", 60)
    assert [j.id for j in catalog.uncertain()] == [job_id]
    assert catalog.list_jobs(status=JobStatus.SENDING) == []
    assert [r.id for r in catalog.unanswered()] == [job_id]

    # A person decides to pay again: the job becomes submittable, the history stays.
    again = catalog.mark_resubmit(job_id, "not in the provider's task list")
    assert (again.status, again.sending_at) == (JobStatus.NEW, None)
    assert catalog.begin_submit(job_id, "someone-else", 60)
    assert catalog.mark_sending(job_id, "someone-else", 30)
    assert catalog.get(job_id).attempts == 2
    assert "not in the provider's task list" in (catalog.history(job_id)[-3].note or "")


def test_an_unsent_submit_is_released_once(catalog: Catalog, clock: Clock) -> None:
    job_id = claim(catalog)
    catalog.begin_submit(job_id, "w", 60)
    catalog.mark_sending(job_id, "w", 30)
    sent_at = catalog.get(job_id).sending_at
    assert sent_at is not None
    clock.advance(40)
    assert not catalog.release_unsent(job_id, sent_at - timedelta(seconds=1), "another request")
    assert catalog.release_unsent(job_id, sent_at, "no task in the list")
    record = catalog.get(job_id)
    assert (record.status, record.attempts, record.send_until) == (JobStatus.NEW, 0, None)
    assert not catalog.release_unsent(job_id, sent_at, "twice")
    assert catalog.history(job_id)[-1].note == "no task in the list"


def test_known_task_ids_include_earlier_tasks_of_resubmitted_jobs(
    catalog: Catalog, clock: Clock
) -> None:
    job_id = claim(catalog)
    catalog.begin_submit(job_id, "w", 60)
    catalog.record_submitted(job_id, "t-first", "r")
    catalog.record_status(job_id, task("t-first", "FAILED", code="InternalError.Algo"))
    catalog.mark_resubmit(job_id, "one more try")
    catalog.begin_submit(job_id, "w", 60)
    catalog.record_submitted(job_id, "t-second", "r")
    since = clock.now - timedelta(hours=1)
    assert catalog.known_task_ids(since=since) == {"t-first", "t-second"}
    other = claim(catalog, "other")
    catalog.begin_submit(other, "w", 60)
    with pytest.raises(CatalogConflict, match=job_id):
        catalog.record_submitted(other, "t-second", "r")
    assert catalog.get(other).task_id is None


def test_a_late_task_id_is_still_written(catalog: Catalog, clock: Clock) -> None:
    job_id = claim(catalog)
    catalog.begin_submit(job_id, "slow", 10)
    catalog.mark_sending(job_id, "slow", 10)
    clock.advance(3600)
    assert catalog.get(job_id).status is JobStatus.UNCERTAIN
    assert catalog.record_submitted(job_id, "task-late", "r").status is JobStatus.SUBMITTED
    assert catalog.record_submitted(job_id, "task-late", "r").task_id == "task-late"


def test_a_second_task_id_is_refused_but_kept(catalog: Catalog) -> None:
    job_id = claim(catalog)
    catalog.begin_submit(job_id, "w", 60)
    catalog.record_submitted(job_id, "task-a", "r")
    with pytest.raises(CatalogConflict, match="task-a"):
        catalog.record_submitted(job_id, "task-b", "r")
    assert catalog.get(job_id).task_id == "task-a"
    assert "task-b" in (catalog.history(job_id)[-1].note or "")
    with pytest.raises(CatalogConflict):
        catalog.record_status(job_id, task("task-b", "RUNNING"))


def test_a_task_the_service_forgot_expires_after_24_hours(catalog: Catalog, clock: Clock) -> None:
    young, old = claim(catalog, "one"), claim(catalog, "two")
    for job_id, task_id in ((young, "t-young"), (old, "t-old")):
        catalog.begin_submit(job_id, "w", 60)
        catalog.record_submitted(job_id, task_id, "r")
    clock.advance(3600)
    assert catalog.record_status(young, task("t-young", "UNKNOWN")).status is JobStatus.UNKNOWN
    clock.advance(24 * 3600)
    assert catalog.record_status(old, task("t-old", "UNKNOWN")).status is JobStatus.EXPIRED

    again = catalog.mark_resubmit(old, "task expired")
    assert (again.status, again.task_id, again.service_status) == (JobStatus.NEW, None, None)
    assert catalog.find(task_id="t-old") is None
    assert any(e.task_id == "t-old" for e in catalog.history(old))


def test_a_failed_task_is_recorded_unbilled_and_resubmittable(catalog: Catalog) -> None:
    job_id = claim(catalog)
    catalog.begin_submit(job_id, "w", 60)
    catalog.mark_sending(job_id, "w", 30)
    catalog.record_submitted(job_id, "t", "r")
    failed = catalog.record_status(
        job_id, task("t", "FAILED", code="InternalError.Algo", message="model error")
    )
    assert (failed.status, failed.error_code, failed.cost) == (
        JobStatus.FAILED,
        "InternalError.Algo",
        None,
    )
    assert failed.finished_at is not None
    # A final status is not overwritten by a later answer.
    assert catalog.record_status(job_id, task("t", "UNKNOWN")).status is JobStatus.FAILED
    assert catalog.mark_resubmit(job_id, "InternalError.Algo, one retry allowed").attempts == 1
    assert catalog.begin_submit(job_id, "w", 60)


def test_only_finished_or_uncertain_jobs_are_resubmittable(catalog: Catalog) -> None:
    job_id = claim(catalog)
    catalog.begin_submit(job_id, "w", 60)
    catalog.record_submitted(job_id, "t", "r")
    catalog.record_status(job_id, task("t", "RUNNING"))
    with pytest.raises(CatalogConflict, match="running"):
        catalog.mark_resubmit(job_id, "impatient")
    with pytest.raises(JobNotFound):
        catalog.get("vf_doesnotexist")
    with pytest.raises(JobNotFound):
        catalog.begin_submit("vf_doesnotexist", "w", 60)


def test_record_failure_before_any_submit(catalog: Catalog) -> None:
    job_id = claim(catalog)
    failed = catalog.record_failure(job_id, "InputRefused", "video too short")
    assert (failed.status, failed.error_message) == (JobStatus.FAILED, "video too short")
    assert not catalog.begin_submit(job_id, "w", 60)


def test_list_filters_and_order(catalog: Catalog, clock: Clock) -> None:
    ids = []
    for n in range(4):
        clock.advance(10)
        ids.append(claim(catalog, f"prompt {n}"))
    edit = parse_job(
        {
            "input": {
                "function": "video_edit",
                "prompt": "hat",
                "video_url": "https://a/v.mp4",
                "mask_image_url": "https://a/m.png",
            }
        }
    )
    clock.advance(10)
    edit_id = catalog.claim(
        job_identity(edit, {Role.VIDEO: [SHA], Role.MASK_IMAGE: [SHA]}), edit, parent_id=ids[0]
    ).id
    catalog.record_failure(ids[1], None, "gave up")
    assert [j.id for j in catalog.list_jobs()] == [edit_id, *reversed(ids)]
    assert [j.id for j in catalog.list_jobs(limit=2)] == [edit_id, ids[3]]
    assert [j.id for j in catalog.list_jobs(function="video_edit")] == [edit_id]
    assert [j.id for j in catalog.list_jobs(status=JobStatus.FAILED)] == [ids[1]]
    since = catalog.get(ids[2]).created_at
    assert [j.id for j in catalog.list_jobs(since=since)] == [edit_id, ids[3], ids[2]]
    assert catalog.get(edit_id).parent_id == ids[0]


# --- secrets ------------------------------------------------------------------------------


def test_no_signature_or_key_reaches_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signature, key = "SIGd3adb33fSECRET", "sk-KEYc0ffeeSECRET"
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("VACEFLOW_CATALOG_URL", raising=False)
    monkeypatch.setenv("DASHSCOPE_API_KEY", key)
    presigned = (
        "https://user:pw@s3.example:8333/bkt/in.mp4"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA&X-Amz-Signature={signature}"
    )
    job = outpainting(url=presigned)
    with Catalog.from_settings() as catalog:
        job_id = catalog.claim(job_identity(job, {Role.VIDEO: [SHA]}), job).id
        catalog.record_staging(
            job_id,
            inputs={Role.VIDEO: [InputRecord(source=presigned, sha256=SHA, staged_url=presigned)]},
        )
        catalog.begin_submit(job_id, "w", 60)
        catalog.record_submitted(job_id, "t", "r")
        catalog.record_status(
            job_id, task("t", "SUCCEEDED", video_url=f"https://oss.example/o.mp4?Signature={key}")
        )
        catalog.record_failure(job_id, "InvalidURL", f"cannot fetch {presigned}")
        record = catalog.get(job_id, history=True)
        exported = to_json([record]) + to_csv([record]) + repr(record) + repr(catalog)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("catalog.db*"))
    assert stored, "the catalog lives in the data folder"
    for secret in (signature, key, "X-Amz-Credential", ":pw@"):
        assert secret.encode() not in stored
        assert secret not in exported
    assert record.request["input"]["video_url"] == "https://s3.example:8333/bkt/in.mp4"
    assert record.error_message == "cannot fetch https://s3.example:8333/bkt/in.mp4"


def test_a_derived_video_keeps_no_signature_of_its_inputs(tmp_path: Path) -> None:
    """`record_derived` (long_video's joined segments) stores its inputs as every other
    write does: the URLs without their query strings."""
    signature = "SIGd3rived5ECRET"
    presigned = (
        "https://user:pw@s3.example:8333/bkt/seg.mp4"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA&X-Amz-Signature={signature}"
    )
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog(url).upgrade() as catalog:
        parent = claim(catalog)
        record = catalog.record_derived(
            "derived-identity",
            function="long_video",
            model="wan2.1-vace-plus",
            prompt="a long walk",
            parent_id=parent,
            inputs={
                "segment": [
                    InputRecord(
                        source=presigned,
                        sha256=SHA,
                        staged_url=presigned,
                        report={"fetched": presigned, "notes": [f"cut from {presigned}"]},
                    )
                ]
            },
            parameters={"segments": 1, "from": presigned},
            output=OutputRecord(path="/out/joined.mp4", sha256=SHA, s3_uri=presigned),
        )
        stored = to_json([catalog.get(record.id, history=True)])
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("catalog.db*"))
    for secret in (signature, "X-Amz-Credential", ":pw@"):
        assert secret.encode() not in on_disk
        assert secret not in stored
    (segment,) = record.inputs["segment"]
    assert segment.source == segment.staged_url == "https://s3.example:8333/bkt/seg.mp4"
    assert segment.report == {
        "fetched": "https://s3.example:8333/bkt/seg.mp4",
        "notes": ["cut from https://s3.example:8333/bkt/seg.mp4"],
    }


# --- export and CLI ---------------------------------------------------------------------------


def finished_jobs(catalog: Catalog) -> list[str]:
    ids = []
    for n, outcome in enumerate(("SUCCEEDED", "SUCCEEDED", "FAILED")):
        job_id = claim(catalog, f'prompt, with "quotes"\nand a newline {n}')
        catalog.begin_submit(job_id, "w", 60)
        catalog.record_submitted(job_id, f"task-{n}", "r")
        catalog.record_status(job_id, task(f"task-{n}", outcome, code="X", message="[b]m[/b]"))
        if outcome == "SUCCEEDED":
            catalog.record_output(job_id, OutputRecord(path=f"/out/{n}.mp4", sha256=SHA))
        ids.append(job_id)
    return ids


def test_exports_parse_back(catalog: Catalog) -> None:
    ids = finished_jobs(catalog)
    records = catalog.list_jobs(limit=None, history=True)
    assert {r.id for r in records} == set(ids)
    assert all(len(r.history) >= 4 for r in records)

    back = json.loads(to_json(records))
    assert [r["id"] for r in back] == [r.id for r in records]
    assert back[0]["history"][0]["note"] == "claimed"

    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_id = {row["id"]: row for row in rows}
    assert by_id[ids[0]]["prompt"].endswith('"quotes"\nand a newline 0')
    assert float(by_id[ids[0]]["cost"]) == pytest.approx(0.5)
    assert by_id[ids[2]]["cost"] == ""
    assert by_id[ids[2]]["status"] == "failed"
    assert by_id[ids[1]]["output_path"] == "/out/1.mp4"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'ledger.db'}"
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VACEFLOW_CATALOG_URL", url)
    return tmp_path


def test_cli_list_show_export(cli_env: Path) -> None:
    with Catalog.from_settings() as catalog:
        ids = finished_jobs(catalog)
    assert (cli_env / "elsewhere" / "ledger.db").is_file()
    runner = CliRunner()

    listed = runner.invoke(app, ["catalog", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {r["id"] for r in json.loads(listed.stdout)} == set(ids)

    failed = runner.invoke(app, ["catalog", "list", "--status", "failed", "--json"])
    assert [r["id"] for r in json.loads(failed.stdout)] == [ids[2]]

    table = runner.invoke(app, ["catalog", "list", "--function", "video_outpainting"])
    assert table.exit_code == 0
    for job_id in ids:
        assert job_id in table.stdout
    assert "USD 0.50" in table.stdout

    one = runner.invoke(app, ["catalog", "list", "--limit", "1", "--json"])
    assert [r["id"] for r in json.loads(one.stdout)] == [ids[2]]

    bad = runner.invoke(app, ["catalog", "list", "--status", "bogus"])
    assert bad.exit_code != 0

    shown = runner.invoke(app, ["catalog", "show", ids[0], "--json"])
    assert shown.exit_code == 0
    record = json.loads(shown.stdout)
    assert record["task_id"] == "task-0"
    assert [e["status"] for e in record["history"]][-1] == "succeeded"

    pretty = runner.invoke(app, ["catalog", "show", ids[0]])
    assert "task-0" in pretty.stdout
    assert "claimed" in pretty.stdout

    failed_one = runner.invoke(app, ["catalog", "show", ids[2]], env={"COLUMNS": "200"})
    assert "X: [b]m[/b]" in failed_one.stdout, "text is shown as is, not as rich markup"

    missing = runner.invoke(app, ["catalog", "show", "vf_nope"])
    assert missing.exit_code == 1
    assert "vf_nope" in missing.stderr

    out = cli_env / "jobs.csv"
    exported = runner.invoke(app, ["catalog", "export", "--format", "csv", "--output", str(out)])
    assert exported.exit_code == 0
    assert "total cost USD 1.00" in exported.stderr
    assert "3 jobs" in exported.stderr
    assert {row["id"] for row in csv.DictReader(out.open(newline=""))} == set(ids)

    as_json = runner.invoke(app, ["catalog", "export", "--format", "json"])
    assert {r["id"] for r in json.loads(as_json.stdout)} == set(ids)
    assert "total cost" not in as_json.stdout


def test_cli_default_catalog_is_in_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("VACEFLOW_CATALOG_URL", raising=False)
    result = CliRunner().invoke(app, ["catalog", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert (tmp_path / "catalog.db").is_file()


def test_the_head_revision_constant_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from vaceflow.catalog.database import HEAD_REVISION, _config

    assert ScriptDirectory.from_config(_config()).get_current_head() == HEAD_REVISION

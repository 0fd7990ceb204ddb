"""The flows under the service's faults: the right outcome, a truthful catalog, and the
emulator's count of submissions (what would be billed) in every case.

Each test configures its own emulator (`vace_env(**EmulatorConfig)`); faults that must
spare the submit use a seed whose first draw is clean (the submit is the first call
the emulator sees), so only the status queries after it are hit.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import advance_clock, set_latency
from tests.fixtures_flaky import FlakyFrontFactory
from tests.fixtures_flows import VaceEnv
from tests.fixtures_s3 import S3Server
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobRecord, JobStatus
from vaceflow.collect import DOWNLOAD_RETRY
from vaceflow.emulator import FaultKind
from vaceflow.errors import (
    DashScopeError,
    DownloadFailed,
    JobUncertain,
    MediaError,
    ResultExpired,
    StorageError,
    TaskFailed,
    WaitTimeout,
)
from vaceflow.jobs import Job, parse_job
from vaceflow.media.probe import probe
from vaceflow.media.sources import FETCH_RETRY
from vaceflow.responses import TaskStatus

MakeEnv = Callable[..., VaceEnv]
DAY = 24 * 3600.0
S3_ATTEMPTS = 5
"""Tries of each S3 call: `make_s3_client`'s default, boto3's standard retry mode."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small input for every job here: cheap to conform, stage and render."""
    return MediaFactory(tmp_path_factory.mktemp("fault-media")).video(
        width=320, height=240, fps=16, seconds=1.0, name="fault-clip"
    )


def _job(clip: Path, prompt: str) -> Job:
    return parse_job(
        {"input": {"function": "video_outpainting", "prompt": prompt, "video_url": str(clip)}}
    )


def _only_row() -> JobRecord:
    rows = Catalog.from_settings().list_jobs(history=True)
    assert len(rows) == 1
    return rows[0]


def _submit_clean_first_look_hit(rate: float) -> int:
    """A seed whose first fault draw misses and second hits: the submit goes through and
    the wait's first status query fails, however late the wait starts."""

    def fits(seed: int) -> bool:
        draws = random.Random(seed)
        return draws.random() >= rate and draws.random() < rate

    return next(s for s in range(1000) if fits(s))


def _task_ids(record: JobRecord) -> set[str]:
    return {e.task_id for e in record.history if e.task_id}


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def on_status() -> Iterator[Callable[[Callable[[str, TaskStatus], None]], None]]:
    """Run the test's flows in a runtime whose listener is `hook` (as the CLI's status
    line hears every look at a task)."""
    from tasks.runtime import open_runtime

    with contextlib.ExitStack() as runtime:

        def install(hook: Callable[[str, TaskStatus], None]) -> None:
            def listener(job_id: str, status: TaskStatus, _seconds: float, _looks: int) -> None:
                hook(job_id, status)

            runtime.enter_context(open_runtime(listener=listener))

        yield install


def test_throttled_submits_are_sent_again_and_each_job_pays_once(
    vace_env: MakeEnv, clip: Path
) -> None:
    from flows.batch import vace_batch

    env = vace_env(submit_qps=1.0, concurrency=3)
    jobs = [_job(clip, f"throttled job {i}") for i in range(3)]
    outcomes = vace_batch(jobs, max_in_flight=3)

    assert [o.ok for o in outcomes] == [True, True, True]
    assert env.submissions() == 3
    rows = Catalog.from_settings().list_jobs()
    assert sorted((r.status, r.attempts) for r in rows) == [(JobStatus.SUCCEEDED, 1)] * 3


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [(FaultKind.ERROR_500, 500, "InternalError"), (FaultKind.ERROR_503, 503, "ServiceUnavailable")],
)
def test_submit_answered_5xx_creates_nothing_and_a_rerun_pays_once(
    vace_env: MakeEnv, clip: Path, fault: FaultKind, status: int, code: str
) -> None:
    from flows.job import vace_job

    job = _job(clip, f"refused with {status}")
    down = vace_env(fault_rate=1.0, faults={fault})
    with pytest.raises(DashScopeError) as refused:
        vace_job(job)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert down.submissions() == 0
    row = _only_row()
    assert (row.status, row.task_id, row.attempts) == (JobStatus.NEW, None, 0)
    assert row.error_code == code

    up = vace_env()  # the service recovered (same catalog, same data folder)
    record = vace_job(job)
    assert record.status is JobStatus.SUCCEEDED
    assert down.submissions() + up.submissions() == 1
    row = _only_row()
    assert (row.status, row.attempts, row.error_code) == (JobStatus.SUCCEEDED, 1, None)
    assert any("submit abandoned" in (e.note or "") for e in row.history)  # kept as history


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"faults": {FaultKind.ERROR_500}}, id="500"),
        pytest.param({"faults": {FaultKind.ERROR_503}}, id="503"),
        pytest.param({"faults": {FaultKind.DROP}}, id="dropped"),
        # one query per 10 s while the task runs 8 s: the SDK-paced first polls are
        # refused whenever the wait starts, however late Prefect starts it
        pytest.param(
            {"faults": set(), "query_qps": 0.1, "list_qps": 0.1, "latency": 8.0}, id="429"
        ),
    ],
)
def test_the_wait_rides_through_failing_status_queries(
    vace_env: MakeEnv, clip: Path, config: dict[str, Any]
) -> None:
    from flows.job import vace_job

    rate = 0.5
    config = {"latency": 2.0, **config}
    env = vace_env(fault_rate=rate, seed=_submit_clean_first_look_hit(rate), **config)
    record = vace_job(_job(clip, "queries fail now and then"))

    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1
    counters = env.state()["counters"]
    hit = sum(counters["faults"].values()) + sum(counters["throttled"].values())
    assert hit > 0
    assert counters["throttled"].get("submit", 0) == 0
    row = _only_row()
    assert (row.status, row.attempts, row.task_id) == (JobStatus.SUCCEEDED, 1, record.task_id)
    assert record.output is not None
    assert probe(record.output.path or "").codec == "h264"


@pytest.fixture
def fast_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A submit's window closes within about 10 s (2 s timeouts, 1 s clock margin)."""
    monkeypatch.setenv("VACEFLOW_SUBMIT_TIMEOUT", "2")
    monkeypatch.setenv("VACEFLOW_RECONCILE_MARGIN", "1")


@pytest.mark.usefixtures("fast_window")
@pytest.mark.parametrize(
    ("fault", "said"),
    [("answer_lost", "is the one unclaimed task"), ("lost", "never accepted")],
    ids=["task-made", "task-lost"],
)
def test_a_lost_submit_answer_is_settled_from_the_task_list(
    vace_env: MakeEnv, clip: Path, fault: str, said: str
) -> None:
    from flows.job import vace_job

    env = vace_env(submit_faults=(fault,))
    record = vace_job(_job(clip, "the answer never came"))

    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1  # the lost request made no task, or its task was found
    row = _only_row()
    assert (row.attempts, row.task_id) == (1, record.task_id)
    assert any(said in (e.note or "") for e in row.history)
    assert Catalog.from_settings().uncertain() == []


@pytest.mark.usefixtures("fast_window")
def test_reconciling_off_stops_at_an_uncertain_submit_until_a_person_runs_it(
    vace_env: MakeEnv, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.job import vace_job
    from vaceflow.cli import app

    monkeypatch.setenv("VACEFLOW_RECONCILE", "off")
    env = vace_env(submit_faults=("answer_lost",))
    job = _job(clip, "reconcile by hand")
    with pytest.raises(JobUncertain, match="catalog resolve"):
        vace_job(job)
    with pytest.raises(JobUncertain, match="reconciling is off"):
        vace_job(job)  # no second submission on a guess
    assert env.submissions() == 1

    dry = CliRunner().invoke(app, ["catalog", "reconcile", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "found" in dry.output
    assert _only_row().status is JobStatus.UNCERTAIN
    done = CliRunner().invoke(app, ["catalog", "reconcile"])
    assert done.exit_code == 0, done.output
    assert "recorded" in done.output

    record = vace_job(job)
    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1


@pytest.mark.usefixtures("fast_window")
@pytest.mark.parametrize("fault", ["answer_lost", "lost"])
def test_a_person_settles_an_uncertain_submit_with_catalog_resolve(
    vace_env: MakeEnv, clip: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """What reconciling cannot decide (here: it is off) a person settles: the task found
    in the provider's list is recorded, or the job is released to be paid again."""
    from typer.testing import CliRunner

    from flows.job import vace_job
    from vaceflow.cli import app

    monkeypatch.setenv("VACEFLOW_RECONCILE", "off")
    env = vace_env(submit_faults=(fault,))
    job = _job(clip, f"settled by hand ({fault})")
    with pytest.raises(JobUncertain):
        vace_job(job)
    _wait_for(lambda: _only_row().status is JobStatus.UNCERTAIN, "the window to close")
    row = _only_row()
    runner = CliRunner()
    refused = runner.invoke(app, ["catalog", "resolve", row.id])
    assert refused.exit_code != 0
    unknown = runner.invoke(app, ["catalog", "resolve", row.id, "--task-id", "no-such-task"])
    assert (unknown.exit_code, "does not know" in unknown.output) == (1, True)

    made = [t["task_id"] for t in env.tasks()]
    choice = ["--task-id", made[0]] if made else ["--resubmit"]
    resolved = runner.invoke(app, ["catalog", "resolve", row.id, *choice])
    assert resolved.exit_code == 0, resolved.output
    again = runner.invoke(app, ["catalog", "resolve", row.id, "--resubmit"])
    assert (again.exit_code, "not uncertain" in again.output) == (1, True)

    record = vace_job(job)
    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1
    assert any("resolved by hand" in (e.note or "") for e in _only_row().history)


def test_a_model_failure_is_final_unless_one_resubmission_is_allowed(
    vace_env: MakeEnv, clip: Path
) -> None:
    from flows.job import vace_job

    env = vace_env(fault_rate=1.0, faults={FaultKind.TASK_FAILURE})
    catalog = Catalog.from_settings()
    with pytest.raises(TaskFailed) as failed:
        vace_job(_job(clip, "the model fails"))
    assert failed.value.code == "InternalError.Algo"
    assert env.submissions() == 1
    (row,) = catalog.list_jobs()
    assert (row.status, row.error_code, row.attempts) == (
        JobStatus.FAILED,
        "InternalError.Algo",
        1,
    )

    with pytest.raises(TaskFailed) as again:
        vace_job(_job(clip, "the model fails twice"), resubmit_on_algo_error=True)
    assert again.value.code == "InternalError.Algo"
    assert env.submissions() == 3  # one resubmission, then it gives up
    row = catalog.get(catalog.list_jobs()[0].id, history=True)
    assert row.prompt == "the model fails twice"
    assert (row.status, row.error_code, row.attempts) == (
        JobStatus.FAILED,
        "InternalError.Algo",
        2,
    )
    assert len(_task_ids(row)) == 2
    assert {t["task_id"] for t in env.tasks()} >= _task_ids(row)


def test_a_flagged_prompt_is_refused_at_submit(vace_env: MakeEnv, clip: Path) -> None:
    from flows.job import vace_job

    env = vace_env()
    with pytest.raises(DashScopeError) as refused:
        vace_job(_job(clip, "a forbidden-word on the screen"))
    assert (refused.value.status, refused.value.code) == (400, "DataInspectionFailed")
    assert env.submissions() == 0
    row = _only_row()
    assert (row.status, row.error_code, row.task_id) == (
        JobStatus.FAILED,
        "DataInspectionFailed",
        None,
    )


def test_an_expired_result_link_fails_clearly_and_pays_nothing_more(
    vace_env: MakeEnv, clip: Path, on_status: Any
) -> None:
    from flows.job import vace_job

    env = vace_env(url_ttl=60)

    def expire(_job_id: str, status: TaskStatus) -> None:
        if status is TaskStatus.SUCCEEDED:  # between the answer and the download
            advance_clock(env.emulator, 120)

    on_status(expire)
    with pytest.raises(ResultExpired, match="expired"):
        vace_job(_job(clip, "downloaded too late"))
    assert env.submissions() == 1
    row = _only_row()
    assert (row.status, row.service_status, row.output) == (
        JobStatus.FAILED,
        TaskStatus.SUCCEEDED.value,
        None,
    )
    assert "expired" in (row.error_message or "")
    assert "Signature" not in (row.error_message or "")
    time.sleep(1.0)  # nothing goes on behind our back
    assert env.submissions() == 1


def test_a_forgotten_task_is_resubmitted_once(
    vace_env: MakeEnv, clip: Path, on_status: Any
) -> None:
    from flows.job import vace_job

    env = vace_env(latency=3600)  # the first task runs until the wait has seen it
    moved = threading.Event()

    def forget(_job_id: str, status: TaskStatus) -> None:
        if not status.is_final and not moved.is_set():  # while it runs: a day passes
            moved.set()
            advance_clock(env.emulator, DAY + 60)
            set_latency(env.emulator, 0.5)  # the task submitted again ends soon

    on_status(forget)
    record = vace_job(_job(clip, "waited past a day"))

    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 2
    row = Catalog.from_settings().get(record.id, history=True)
    assert row.attempts == 2
    assert len(_task_ids(row)) == 2
    assert any("no longer knows" in (e.note or "") for e in row.history)


def test_a_wait_timeout_keeps_the_task_and_a_rerun_resumes_it(
    vace_env: MakeEnv, clip: Path
) -> None:
    from flows.job import vace_job

    env = vace_env(latency=5.0)
    job = _job(clip, "slow to render")
    with pytest.raises(WaitTimeout):
        vace_job(job, timeout_minutes=1.5 / 60)
    row = _only_row()
    assert row.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)
    assert row.task_id is not None
    assert env.submissions() == 1

    record = vace_job(job)
    assert record.status is JobStatus.SUCCEEDED
    assert record.task_id == row.task_id
    assert env.submissions() == 1


def test_cancelling_a_pending_task(vace_env: MakeEnv, clip: Path) -> None:
    from flows.job import vace_job
    from vaceflow.pipeline import cancel_if_pending
    from vaceflow.services import Services

    env = vace_env(latency=10.0, concurrency=1)  # the queued task stays PENDING that long
    catalog = Catalog.from_settings()
    errors: dict[str, BaseException] = {}

    def run(prompt: str) -> None:
        try:
            vace_job(_job(clip, prompt))
        except BaseException as exc:  # reported to the test thread
            errors[prompt] = exc

    threads = [  # each in a copy of this context: the same Prefect API as the test
        threading.Thread(target=contextvars.copy_context().run, args=(run, p))
        for p in ("occupies", "queued")
    ]
    for started, thread in enumerate(threads, start=1):
        thread.start()  # one after the other: "occupies" takes the service's one slot
        _wait_for(lambda n=started: len(env.tasks()) == n, "the submit")  # type: ignore[misc]

    def rows() -> dict[str, JobRecord]:
        return {r.prompt: r for r in catalog.list_jobs()}

    _wait_for(lambda: all(r.task_id and r.flow_run_id for r in rows().values()), "task ids")
    running, queued = rows()["occupies"], rows()["queued"]
    with Services.from_settings() as svc:
        assert cancel_if_pending(svc, str(running.flow_run_id)) is False  # already RUNNING
        assert cancel_if_pending(svc, str(queued.flow_run_id)) is True
    for thread in threads:
        thread.join(timeout=60)

    assert "occupies" not in errors
    cancelled = errors["queued"]
    assert isinstance(cancelled, TaskFailed)
    assert cancelled.status is TaskStatus.CANCELED
    by_prompt = rows()
    assert by_prompt["occupies"].status is JobStatus.SUCCEEDED
    assert by_prompt["queued"].status is JobStatus.CANCELED
    assert {t["status"] for t in env.tasks()} == {"SUCCEEDED", "CANCELED"}
    assert env.submissions() == 2


def test_a_cancel_the_runner_had_to_kill_for_ends_cancelled(vace_env: MakeEnv) -> None:
    """Prefect's runner kills a run whose process does not acknowledge a cancel within 1 s
    (a busy machine) and the engine records Crashed; the flow's cancellation hook, which
    the runner calls next, ends the run Cancelled as the person asked. A cancel the
    process did acknowledge is left to the runner."""
    from prefect import get_client
    from prefect.states import Cancelling, Crashed, Running

    from flows.job import cancel_pending_task, vace_job

    vace_env()
    with get_client(sync_client=True) as client:
        killed, acked = (client.create_flow_run(vace_job, state=Running()) for _ in range(2))
        for run in (killed, acked):
            client.set_flow_run_state(run.id, Cancelling(), force=True)
        crashed = Crashed(message="Execution was aborted by a termination signal.")
        client.set_flow_run_state(killed.id, crashed, force=True)  # what the engine does

        for run in (killed, acked):
            cancel_pending_task(vace_job, client.read_flow_run(run.id), Cancelling())

        ended, left = (client.read_flow_run(run.id).state for run in (killed, acked))
    assert ended is not None
    assert ended.is_cancelled()
    assert left is not None
    assert left.is_cancelling()


# --- retries: one layer per call; the flow's tasks add none ----------------------------


def test_an_input_host_that_keeps_failing_is_tried_by_the_fetch_alone(
    vace_env: MakeEnv, flaky_front: FlakyFrontFactory
) -> None:
    from flows.job import vace_job

    env = vace_env()
    front = flaky_front()  # answers every request 503: nothing is forwarded
    front.fail("GET", "/")
    url = front.url + "/inputs/clip.mp4"
    job = parse_job(
        {"input": {"function": "video_outpainting", "prompt": "input host down", "video_url": url}}
    )
    with pytest.raises(MediaError, match="HTTP 503"):
        vace_job(job)
    assert front.count("GET", "/") == FETCH_RETRY.attempts  # not times the prepare task's
    assert env.submissions() == 0


def test_a_bucket_refusing_uploads_is_tried_by_boto3_alone(
    vace_env: MakeEnv, clip: Path, s3_server: S3Server, flaky_front: FlakyFrontFactory
) -> None:
    from flows.job import vace_job

    front = flaky_front(s3_server.endpoint)
    front.fail("PUT", f"/{s3_server.bucket}/")
    env = vace_env(environ={"VACEFLOW_S3_ENDPOINT_URL": front.url})
    with pytest.raises(StorageError, match="PutObject"):
        vace_job(_job(clip, "the bucket refuses uploads"))
    assert front.count("PUT", f"/{s3_server.bucket}/") == S3_ATTEMPTS  # not times the stage task's
    assert env.submissions() == 0


def test_a_result_host_that_keeps_failing_is_tried_by_the_download_alone(
    vace_env: MakeEnv, clip: Path, flaky_front: FlakyFrontFactory
) -> None:
    """The download retries, the collect task does not; a run started again collects
    the video without paying for it twice."""
    from flows.job import vace_job

    front = flaky_front()
    env = vace_env(public_url=front.url)  # the result links lead through the front
    front.target = env.emulator.root_url
    front.fail("GET", "/_emulator/results/")
    job = _job(clip, "result host down")
    with pytest.raises(DownloadFailed, match=f"{DOWNLOAD_RETRY.attempts} attempts"):
        vace_job(job)
    assert front.count("GET", "/_emulator/results/") == DOWNLOAD_RETRY.attempts
    row = _only_row()
    assert (row.status, row.output) == (JobStatus.SUCCEEDED, None)

    front.heal()
    record = vace_job(job)
    assert record.output is not None
    assert probe(Path(str(record.output.path))).is_mp4
    assert front.count("GET", "/_emulator/results/") == DOWNLOAD_RETRY.attempts + 1
    assert env.submissions() == 1

"""The flows end to end: a real Prefect server, SeaweedFS, the emulator, real ffmpeg.

Every test counts what the emulator was asked to do: the money path is asserted on
the submissions the service saw, and the outputs on their own probe.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import set_latency
from tests.fixtures_flows import VaceEnv
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobStatus
from vaceflow.jobs import parse_job
from vaceflow.media.probe import probe
from vaceflow.samples import Samples, make_samples

MakeEnv = Callable[..., VaceEnv]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    return make_samples(tmp_path_factory.mktemp("samples"))


def _bodies(samples: Samples) -> dict[str, dict[str, Any]]:
    from vaceflow.cli.demo import demo_jobs

    return {body["input"]["function"]: body for body in demo_jobs(samples)}


def _catalog() -> Catalog:
    return Catalog.from_settings()


@pytest.mark.parametrize(
    "function",
    ["image_reference", "video_repainting", "video_edit", "video_extension", "video_outpainting"],
)
def test_each_function_end_to_end(vace_env: MakeEnv, samples: Samples, function: str) -> None:
    from flows.job import vace_job

    env = vace_env()
    record = vace_job(parse_job(_bodies(samples)[function]))

    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1
    assert record.output is not None
    assert record.output.path is not None
    video = probe(record.output.path)
    assert (video.codec, round(video.fps or 0)) == ("h264", 30)
    assert video.duration
    assert video.duration > 0
    assert not video.has_audio
    thumb = probe(record.output.thumbnail_path or "")
    assert thumb.is_image
    assert thumb.width > thumb.height
    # Published beside the catalog record, for a pipeline on another machine.
    s3 = env.s3.client()
    key = f"{env.prefix}/outputs/{record.id}"
    stored = json.loads(s3.get_object(Bucket=env.s3.bucket, Key=f"{key}/job.json")["Body"].read())
    assert stored["id"] == record.id
    assert stored["task_id"] == record.task_id
    head = s3.head_object(Bucket=env.s3.bucket, Key=f"{key}/video.mp4")
    assert head["ContentLength"] == Path(record.output.path).stat().st_size
    # Staged inputs are gone after success (VACEFLOW_KEEP_INPUTS unset).
    left = s3.list_objects_v2(Bucket=env.s3.bucket, Prefix=f"{env.prefix}/inputs/")
    assert left.get("KeyCount", 0) == 0


def test_rerun_returns_the_cataloged_result_without_paying(
    vace_env: MakeEnv, samples: Samples
) -> None:
    from flows.job import vace_job

    env = vace_env()
    body = _bodies(samples)["video_outpainting"]
    first = vace_job(parse_job(body))
    second = vace_job(parse_job(body))
    assert second.id == first.id
    assert second.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1
    fresh = vace_job(parse_job(body), fresh=True)
    assert fresh.id == first.id
    assert fresh.task_id != first.task_id
    assert env.submissions() == 2


def test_two_runs_of_one_job_at_once_submit_once(vace_env: MakeEnv, samples: Samples) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from flows.job import vace_job

    env = vace_env(latency=2.0)
    job = parse_job(_bodies(samples)["video_extension"])
    # Each thread runs in a copy of this context: the same Prefect API as the test.
    contexts = [contextvars.copy_context() for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        records = list(pool.map(lambda ctx: ctx.run(vace_job, job), contexts))
    assert {r.id for r in records} == {records[0].id}
    assert {r.task_id for r in records} == {records[0].task_id}
    assert env.submissions() == 1


def test_refused_input_never_reaches_the_service(vace_env: MakeEnv, media: MediaFactory) -> None:
    from flows.functions import image_reference, video_outpainting
    from vaceflow.errors import InputRefused

    env = vace_env()
    narrow = media.image(width=300, height=3000, name="narrow")
    with pytest.raises(InputRefused):
        image_reference(prompt="too narrow to fit", ref_image=[str(narrow)])
    with pytest.raises(Exception, match="no video"):
        video_outpainting(prompt="audio only", video=str(media.audio_only()))
    assert env.submissions() == 0
    assert _catalog().list_jobs() == []


def test_batch_never_has_more_in_flight_than_its_limit(
    vace_env: MakeEnv, media: MediaFactory
) -> None:
    """The service holds every task until the batch has 3 in flight (its limit, which
    it must reach), then lets them end: the peak is the limit, never more."""
    from flows.batch import vace_batch

    env = vace_env(latency=3600, concurrency=20, submit_qps=0)
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="batch")
    jobs = [
        parse_job(
            {
                "input": {
                    "function": "video_outpainting",
                    "prompt": f"batch job {i}",
                    "video_url": str(clip),
                }
            }
        )
        for i in range(6)  # two rounds of three
    ]
    outcomes: list[Any] = []
    runner = threading.Thread(
        target=contextvars.copy_context().run,
        args=(lambda: outcomes.extend(vace_batch(jobs, max_in_flight=3)),),
    )
    runner.start()
    _hold_until_in_flight(env, 3, runner)
    runner.join(timeout=600)
    assert [o.error for o in outcomes if not o.ok] == []
    assert env.submissions() == 6
    assert _peak_in_flight(env.tasks()) == 3


def _hold_until_in_flight(env: VaceEnv, count: int, *runners: threading.Thread) -> None:
    """Wait until `count` tasks are in flight at the service (held there: the emulator's
    latency is an hour), then let every task end in a second."""
    while sum(t["status"] in ("PENDING", "RUNNING") for t in env.tasks()) < count:
        assert any(r.is_alive() for r in runners), "the batches ended before the hold"
        time.sleep(0.2)
    set_latency(env.emulator, 1.0)


def test_two_batches_at_once_share_the_accounts_bound(
    vace_env: MakeEnv, media: MediaFactory
) -> None:
    """Batches asking for 2 and 3 at once in one process: each keeps to its own, and
    together they never pass the account's 4 (the limit every run on the server shares,
    which no flow resizes)."""
    from flows.batch import vace_batch
    from tasks.runtime import apply_account_limits
    from vaceflow.settings import Settings

    env = vace_env(latency=3600, concurrency=20, submit_qps=0)  # held until 4 in flight
    account = Settings.load().account
    assert account.in_flight == 4
    apply_account_limits(account)  # as `vaceflow dev up` sets the server up
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="two-batches")
    caps = {"two": 2, "three": 3}
    outcomes: dict[str, list[Any]] = {}

    def batch(tag: str) -> None:
        bodies = [
            {
                "input": {
                    "function": "video_outpainting",
                    "prompt": f"{tag} {i}",
                    "video_url": str(clip),
                }
            }
            for i in range(4)
        ]
        outcomes[tag] = vace_batch([parse_job(b) for b in bodies], max_in_flight=caps[tag])

    threads = [  # each in a copy of this context: the same Prefect API as the test
        threading.Thread(target=contextvars.copy_context().run, args=(batch, tag)) for tag in caps
    ]
    for thread in threads:
        thread.start()
    _hold_until_in_flight(env, account.in_flight, *threads)
    for thread in threads:
        thread.join(timeout=600)

    assert [o.error for tag in caps for o in outcomes[tag] if not o.ok] == []
    tasks = env.tasks()
    assert len(tasks) == env.submissions() == 8
    mine = {
        tag: [t for t in tasks if t["body"]["input"]["prompt"].startswith(f"{tag} ")]
        for tag in caps
    }
    assert _overlap(mine["two"], mine["three"]), "the batches did not run at the same time"
    for tag, cap in caps.items():
        assert _peak_in_flight(mine[tag]) <= cap
    assert _peak_in_flight(tasks) <= account.in_flight


def _overlap(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> bool:
    """Whether some task of each was in flight at one moment."""
    return any(
        a["submit_time"] < b["end_time"] and b["submit_time"] < a["end_time"]
        for a in first
        for b in second
    )


def _peak_in_flight(tasks: list[dict[str, Any]]) -> int:
    """Most tasks submitted and not yet ended at one moment, from the emulator's times."""
    edges: list[tuple[str, int]] = []
    for task in tasks:
        edges.append((task["submit_time"], 1))
        edges.append((task["end_time"], -1))
    peak = current = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        current += step
        peak = max(peak, current)
    return peak


def test_the_key_can_come_from_a_prefect_secret_block(
    vace_env: MakeEnv, media: MediaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team keeps the key on the Prefect server: runs read it from a Secret block, and
    neither the environment nor the run's parameters hold it."""
    import secrets

    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    from flows.job import vace_job
    from tests.fixtures_emulator import TEST_KEY

    env = vace_env()
    block = f"dashscope-key-{secrets.token_hex(3)}"
    Secret(value=TEST_KEY).save(block)
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    monkeypatch.setenv("VACEFLOW_API_KEY_BLOCK", block)
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="keyed")
    job = parse_job(
        {"input": {"function": "video_outpainting", "prompt": "keyed", "video_url": str(clip)}}
    )
    state = vace_job(job, return_state=True)
    record = state.result()
    assert record.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert TEST_KEY not in json.dumps(run.parameters, default=str)


def test_a_batch_job_whose_run_prefect_broke_off_runs_again_and_no_other(
    vace_env: MakeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One layer runs a batch's job again: its task's retries, when Prefect's own API
    broke the run off (the catalog makes that safe). A job that failed by itself runs
    once. (The jobs' runs are stand-ins here: what is counted is how often each ran.)"""
    import httpx
    from prefect.settings import get_current_settings

    import flows.batch as batch
    from vaceflow.errors import VaceflowError

    vace_env()
    api = str(get_current_settings().api.url)
    runs: Counter[str] = Counter()

    def vace_job(job: Any, fresh: bool, timeout_minutes: float) -> Any:
        runs[job.input.prompt] += 1
        if job.input.prompt == "broken off":
            request = httpx.Request("POST", f"{api}/flow_runs/")
            busy = httpx.HTTPStatusError(
                "busy", request=request, response=httpx.Response(503, request=request)
            )
            raise RuntimeError("the run broke off") from busy
        raise VaceflowError("the job failed by itself")

    monkeypatch.setattr(batch, "vace_job", vace_job)
    monkeypatch.setattr(batch, "_run_one", batch._run_one.with_options(retry_delay_seconds=0))
    bodies = [
        {"input": {"function": "video_outpainting", "prompt": p, "video_url": "v.mp4"}}
        for p in ("broken off", "failed")
    ]
    outcomes = batch.vace_batch([parse_job(b) for b in bodies])

    assert runs == {"broken off": 1 + len(batch.ORCHESTRATION_RETRIES), "failed": 1}
    assert [(o.ok, o.error) for o in outcomes] == [
        (False, "the run broke off"),
        (False, "the job failed by itself"),
    ]


def test_a_batch_runs_a_job_again_only_when_prefects_own_api_failed() -> None:
    import httpx
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.batch import _orchestration_error

    api = "http://127.0.0.1:9/api"

    def refused(url: str, code: int) -> httpx.HTTPStatusError:
        request = httpx.Request("POST", url)
        return httpx.HTTPStatusError(
            "refused", request=request, response=httpx.Response(code, request=request)
        )

    with temporary_settings(updates={PREFECT_API_URL: api}):
        assert _orchestration_error(refused(f"{api}/task_runs/", 503))
        assert not _orchestration_error(refused(f"{api}/task_runs/", 409))
        assert not _orchestration_error(refused("https://dashscope.example/api/v1/tasks", 503))
        wrapped = RuntimeError("the job's run broke off")
        wrapped.__cause__ = refused(f"{api}/flow_runs/", 503)
        assert _orchestration_error(wrapped)

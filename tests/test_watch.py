"""The `watch` flow: job files dropped in a folder or an S3 prefix, each paid for once.

Real Prefect server, emulator and SeaweedFS; what is asserted is what a user sees: where
the file ended, its sidecar, the catalog row and the emulator's submission count.
"""

from __future__ import annotations

import contextvars
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures_flows import VaceEnv
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobStatus

MakeEnv = Callable[..., VaceEnv]
REPO = Path(__file__).resolve().parents[1]
WATCHER = "import sys; from flows.watch import watch; watch(sys.argv[1])"


def _body(video: str, prompt: str = "a wider view of the street") -> dict[str, Any]:
    return {
        "model": "wan2.1-vace-plus",
        "input": {"function": "video_outpainting", "prompt": prompt, "video_url": video},
        "parameters": {"top_scale": 1.5, "bottom_scale": 1.5},
    }


@pytest.fixture
def inbox(tmp_path: Path, media: MediaFactory) -> Path:
    """A folder with a small clip in it (not a job file: never picked up)."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="watch")
    (folder / "clip.mp4").write_bytes(clip.read_bytes())
    return folder


def _sidecar(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.with_name(path.name + ".result.json").read_text())
    return loaded


def test_a_dropped_file_runs_once_and_is_filed_under_done(vace_env: MakeEnv, inbox: Path) -> None:
    from flows.watch import watch

    env = vace_env()
    # YAML, with a path relative to the inbox where a URL would go.
    (inbox / "street.yaml").write_text(yaml.safe_dump(_body("clip.mp4")))

    results = watch(str(inbox))

    assert [(r.file, r.status) for r in results] == [("street.yaml", "done")]
    assert not (inbox / "street.yaml").exists()
    assert (inbox / "done" / "street.yaml").exists()
    sidecar = _sidecar(inbox / "done" / "street.yaml")
    [job] = sidecar["jobs"]
    assert job["status"] == "succeeded"
    record = Catalog.from_settings().get(job["id"])
    assert record.status is JobStatus.SUCCEEDED
    assert record.output is not None
    assert job["output"] in (record.output.s3_uri, record.output.path)
    assert env.submissions() == 1

    # A second scan finds nothing; the same body under another name (JSON this time)
    # is the same job: filed under done/ with the same catalog id, not paid again.
    assert watch(str(inbox)) == []
    (inbox / "again.json").write_text(json.dumps(_body(str(inbox / "clip.mp4"))))
    [again] = watch(str(inbox))
    assert again.status == "done"
    assert _sidecar(inbox / "done" / "again.json")["jobs"][0]["id"] == job["id"]
    assert env.submissions() == 1


def test_a_broken_file_goes_to_failed_with_the_reason(
    vace_env: MakeEnv, inbox: Path, media: MediaFactory
) -> None:
    from flows.watch import watch

    env = vace_env()
    (inbox / "garbage.json").write_text("{not: [json")
    (inbox / "no-video.yaml").write_text(
        yaml.safe_dump({"input": {"function": "video_outpainting", "prompt": "no video"}})
    )
    narrow = media.image(width=300, height=3000, name="narrow")
    (inbox / "narrow.png").write_bytes(narrow.read_bytes())  # the inbox's own file
    refused = {
        "input": {
            "function": "image_reference",
            "prompt": "narrow",
            "ref_images_url": ["narrow.png"],
        }
    }
    (inbox / "refused.json").write_text(json.dumps(refused))

    results = {r.file: r for r in watch(str(inbox))}

    assert {name: r.status for name, r in results.items()} == {
        "garbage.json": "failed",
        "no-video.yaml": "failed",
        "refused.json": "failed",
    }
    assert "not YAML or JSON" in (_sidecar(inbox / "failed" / "garbage.json")["error"] or "")
    assert "video_url" in (_sidecar(inbox / "failed" / "no-video.yaml")["error"] or "")
    [job] = _sidecar(inbox / "failed" / "refused.json")["jobs"]
    assert job["status"] == "failed"
    assert "300x3000 cannot fit" in job["error"]
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["clip.mp4", "narrow.png"]
    assert env.submissions() == 0


def test_two_watchers_at_once_pay_once(vace_env: MakeEnv, inbox: Path) -> None:
    from flows.watch import watch

    env = vace_env(latency=1.0)
    body = json.dumps(_body("clip.mp4"))
    # Two files, one job: whichever watcher claims which file, one submission.
    (inbox / "a.json").write_text(body)
    (inbox / "b.json").write_text(body)

    # Each thread gets this test's settings (the Prefect API) from a copy of its context.
    contexts = [contextvars.copy_context() for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda ctx: ctx.run(watch, str(inbox)), contexts))

    handled = sorted(r.file for run in runs for r in run)
    assert handled == ["a.json", "b.json"]  # each file by exactly one watcher
    ids = {_sidecar(inbox / "done" / n)["jobs"][0]["id"] for n in handled}
    assert len(ids) == 1
    assert env.submissions() == 1


@pytest.mark.usefixtures("free_slots")
def test_a_claim_left_by_a_killed_watcher_is_taken_over_and_paid_once(
    vace_env: MakeEnv, inbox: Path
) -> None:
    from flows.watch import watch

    env = vace_env(latency=6.0)
    (inbox / "street.yaml").write_text(yaml.safe_dump(_body("clip.mp4")))
    # An old file (copied from elsewhere): its claim's age, not the file's, counts.
    os.utime(inbox / "street.yaml", (time.time() - 86400,) * 2)
    catalog = Catalog.from_settings()
    child = subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(inbox)],
        env=os.environ | env.env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not any(r.task_id for r in catalog.list_jobs()):
            assert child.poll() is None, "the watcher ended before submitting"
            assert time.monotonic() < deadline, "the watcher submitted nothing"
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert (inbox / "processing" / "street.yaml").exists()
    assert env.submissions() == 1

    # A live watcher's claim is left alone: it is younger than reclaim_after_minutes.
    assert watch(str(inbox)) == []
    assert (inbox / "processing" / "street.yaml").exists()

    time.sleep(1.5)
    [result] = watch(str(inbox), reclaim_after_minutes=1 / 60)
    assert (result.file, result.status) == ("street.yaml", "done")
    assert not (inbox / "processing" / "street.yaml").exists()
    [row] = catalog.list_jobs()
    assert _sidecar(inbox / "done" / "street.yaml")["jobs"][0]["id"] == row.id
    assert row.status is JobStatus.SUCCEEDED
    assert env.submissions() == 1  # the dead watcher's task was resumed, not paid again


def test_an_s3_prefix_is_watched_like_a_folder(vace_env: MakeEnv, media: MediaFactory) -> None:
    from flows.watch import watch

    env = vace_env()
    s3 = env.s3.client()
    bucket, inbox = env.s3.bucket, f"{env.prefix}/inbox"
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="watch-s3")
    s3.put_object(Bucket=bucket, Key=f"{inbox}/clip.mp4", Body=clip.read_bytes())
    s3.put_object(Bucket=bucket, Key=f"{inbox}/job.yaml", Body=yaml.safe_dump(_body("clip.mp4")))

    source = f"s3://{bucket}/{inbox}/"
    [result] = watch(source)
    assert watch(source) == []

    assert result.status == "done"
    assert result.moved_to == f"s3://{bucket}/{inbox}/done/job.yaml"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=inbox)["Contents"]}
    assert keys == {
        f"{inbox}/clip.mp4",
        f"{inbox}/done/job.yaml",
        f"{inbox}/done/job.yaml.result.json",
    }
    sidecar = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{inbox}/done/job.yaml.result.json")["Body"].read()
    )
    assert sidecar["jobs"][0]["status"] == "succeeded"
    assert env.submissions() == 1

    # A claim that a dead watcher left in processing/ is taken over once it is old
    # enough: the same job, so the catalog's video, not a second payment.
    left = f"{inbox}/processing/left.yaml"
    s3.put_object(Bucket=bucket, Key=left, Body=yaml.safe_dump(_body("clip.mp4")))
    assert watch(source) == []
    time.sleep(1.5)
    [taken_over] = watch(source, reclaim_after_minutes=1 / 60)
    assert taken_over.moved_to == f"s3://{bucket}/{inbox}/done/left.yaml"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=inbox)["Contents"]}
    assert f"{inbox}/done/left.yaml" in keys
    assert left not in keys
    assert env.submissions() == 1

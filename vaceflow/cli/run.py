"""`vaceflow run <function>`: prepare a job; `--dry-run` shows the plan without spending.

One sub-command per function. Its options are read from the function's job model
(`vaceflow.options`): inputs are the API's `*_url` fields without `_url`
(`--video`, `--mask-image`, `--ref-image` ...), parameters keep the API's names
(`--control-condition`, `--top-scale`, `--prompt-extend/--no-prompt-extend` ...),
enums are choices and help texts are the models' descriptions.

The dry run ends with the estimate (`vaceflow.estimate`): seconds of video, cost in
the region's currency, and time, from the configured catalog's medians when it has
any. `--budget AMOUNT` (same currency) refuses a job whose estimate is over it.

Without `--dry-run` the job then runs through the `vace_job` flow with a progress
line, and `--json` prints its catalog record.

Exit codes: 0 ready (dry run) or succeeded, 1 the job failed, 2 refused before any
spend (an input broke a rule it cannot be conformed to, or the job is invalid), 3 over
budget (nothing was uploaded or submitted), 4 the wait timed out (the task is kept: run
again to resume), 5 the submission is uncertain (see `vaceflow catalog list`); 6 to 11
the user's situation, not the job's: a stack, server or key that is missing
(`vaceflow.cli.problems`). Messages name flags and files, not the API's fields.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from vaceflow.jobs import Function
from vaceflow.options import RUN_OPTIONS, Option, bare, function_options, function_summary

if TYPE_CHECKING:
    from vaceflow.catalog import Catalog
    from vaceflow.errors import BudgetExceeded, VaceflowError
    from vaceflow.estimate import Estimate
    from vaceflow.jobs import Job
    from vaceflow.media.prepare import PreparedJob
    from vaceflow.settings import Settings

__all__ = ["register", "stop_over_budget"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    from vaceflow.cli.layout import command_group

    run_app = command_group(
        "Run one VACE job (--dry-run: conform and validate, no upload, no spend). "
        "Inputs are read as given: any path, URL or bucket (the restrictions of "
        "deployments and intake do not apply to you; see the README's Trust section).",
        "Run one VACE job (--dry-run: no upload, no spend).",
    )
    for function in Function:
        run_app.command(
            name=function.value, help=_help(function), short_help=function_summary(function)
        )(_command(function))
    app.add_typer(run_app, name="run")


def _command(function: Function) -> Any:
    """A typer command whose options are `function`'s (`vaceflow.options`), then the
    CLI's own: --dry-run, --json, --budget."""
    params = [_option_param(function, o) for o in function_options(function)]
    params += [
        _param(
            "dry_run", bool, typer.Option("--dry-run", help="Prepare and validate only."), False
        ),
        _param("json_out", bool, typer.Option("--json", help="Machine-readable output."), False),
        _param(
            "budget",
            float | None,
            typer.Option(
                "--budget",
                min=0,
                metavar="AMOUNT",
                help="Refuse (exit 3) when the estimated cost is over AMOUNT, in the "
                "region's currency (USD in Singapore, CNY in Beijing).",
                show_default=False,
            ),
            None,
        ),
    ]

    def command(**options: Any) -> None:
        _run(function, options)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = function.value
    return command


def _option_param(function: Function, option: Option) -> inspect.Parameter:
    """A flag for one option. A job's options default to unset (the service's defaults
    apply) and are checked by the job model, ranges included, so a refusal names the
    flag in the model's words; a run's keep their own default and range."""
    flag = f"--{_flag(option.name)}"
    help_text = _flag_words(option.help, function)
    required: Any = ... if option.required else None
    if option.role is not None:
        return _media_param(option, flag, help_text, required)
    if option.run:
        return _run_param(option, flag, help_text)
    annotation = bare(option.kind)
    if typing.get_origin(annotation) is list:
        item = bare(typing.get_args(annotation)[0])
        choices = _choices(item)
        element = _choice_type(option.name, choices) if choices else str
        typed = typer.Option(flag, help=f"{help_text} (repeat the option)", show_default=False)
        return _param(option.name, list[element] | None, typed, required)  # type: ignore[valid-type]
    if annotation is bool:
        typed = typer.Option(
            f"{flag}/--no-{_flag(option.name)}", help=help_text, show_default=False
        )
        return _param(option.name, bool | None, typed, required)
    choices = _choices(annotation)
    kind: Any = str
    if choices:
        kind = _choice_type(option.name, choices)
    elif annotation in (int, float):
        kind = annotation
    return _param(
        option.name, kind | None, typer.Option(flag, help=help_text, show_default=False), required
    )


def _media_param(option: Option, flag: str, help_text: str, required: Any) -> inspect.Parameter:
    assert option.role is not None
    what = "A path, http(s) URL or s3:// URI" + (" (repeat the option)" if option.many else "")
    need = ""
    if option.needs:
        others = [f"--{_flag(n)}" for n in option.needs]
        need = (
            f" Required: this or {others[0]}."
            if len(others) == 1
            else f" Required: at least one of {', '.join([flag, *others])}."
        )
    typed = typer.Option(
        flag,
        metavar="FILE|URL",
        help=f"{help_text} {what}; the API's {option.role.api_field}.{need}",
        show_default=False,
    )
    return _param(option.name, list[str] | None if option.many else str | None, typed, required)


def _run_param(option: Option, flag: str, help_text: str) -> inspect.Parameter:
    """A run's option: a bool is a flag that turns it on; others keep their range."""
    if option.kind is bool:
        return _param(option.name, bool, typer.Option(flag, help=help_text), option.default)
    bounds = {
        name: getattr(m, attr)
        for m in _metadata(option.kind)
        for name, attr in (("min", "ge"), ("max", "le"))
        if hasattr(m, attr)
    }
    kind = bare(option.kind)
    return _param(option.name, kind, typer.Option(flag, help=help_text, **bounds), option.default)


def _metadata(kind: Any) -> list[Any]:
    """The constraints of an `Annotated` type, those of a nested `Field` included."""
    found: list[Any] = []
    for m in typing.get_args(kind)[1:] if typing.get_origin(kind) is Annotated else []:
        found += getattr(m, "metadata", [m])
    return found


def _param(name: str, kind: Any, option: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _one_of(function: Function) -> list[str]:
    """The input flags of which `function` needs at least one (the job model says which)."""
    from vaceflow.limits import Role
    from vaceflow.options import input_model

    fields: tuple[str, ...] = getattr(input_model(function), "one_of", ())
    return [f"--{_flag(r.value)}" for r in Role if r.api_field in fields]


def _help(function: Function) -> str:
    one_of = _one_of(function)
    if not one_of:
        return function_summary(function)
    need = " or ".join(one_of) if len(one_of) == 2 else f"at least one of {', '.join(one_of)}"
    return f"{function_summary(function)}\n\nNeeds {need}."


def _choices(annotation: Any) -> list[str] | None:
    """Values of an enum (or an enum | Literal[...]) field, else None."""
    kinds = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    values: list[str] = []
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, Enum):
            values += [str(m.value) for m in kind]
        elif typing.get_origin(kind) is Literal:
            values += [str(v) for v in typing.get_args(kind)]
        else:
            return None
    return list(dict.fromkeys(values))


_NO_VALUE = "none"
"""How a choice of "" (the API's "no control condition") is written on the command line."""


def _choice_type(name: str, values: list[str]) -> type[StrEnum]:
    """An enum typer shows as choices; the API's empty choice is shown as `none`."""
    return StrEnum(name, [(v or _NO_VALUE, v or _NO_VALUE) for v in values])  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    """Enum choices back to the API's strings (`none` back to "")."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return "" if value.value == _NO_VALUE else value.value
    return value


def _run(function: Function, options: dict[str, Any]) -> None:
    from rich.console import Console

    dry_run = options.pop("dry_run")
    json_out = options.pop("json_out")
    budget = options.pop("budget")
    run_options = {o.name: options.pop(o.name) for o in RUN_OPTIONS}
    console = Console(stderr=False, soft_wrap=True)

    import logging

    from vaceflow.errors import VaceflowError

    # The reports are printed below; keep the same lines from reaching stderr twice.
    logging.getLogger("vaceflow.media").addHandler(logging.NullHandler())
    from vaceflow.media.prepare import prepare
    from vaceflow.options import job_from_options

    try:
        job = job_from_options(function, {k: _plain(v) for k, v in options.items()})
        prepared = prepare(job)
    except VaceflowError as exc:
        _refuse(exc, function, options, json_out=json_out)

    body = prepared.job.to_body()
    estimate, over = _estimate(prepared, budget)
    if not dry_run:
        _submit(console, job, prepared, estimate, over, json_out=json_out, **run_options)
        return
    if json_out:
        out = {
            "ready": over is None,
            "function": function.value,
            "job": body,
            "files": {r.value: [str(p) for p in ps] for r, ps in prepared.files.items()},
            "reports": [r.model_dump(mode="json") for r in prepared.reports],
            "estimate": estimate.model_dump(mode="json"),
        }
        if over is not None:
            out["error"] = _budget_error(over)
        typer.echo(json.dumps(out, indent=2))
        if over is not None:
            raise typer.Exit(3)
        return
    _print_plan(console, prepared)
    console.print_json(data=body)
    console.print(f"[bold]estimate:[/] {estimate.summary}", highlight=False)
    if over is not None:
        console.print(f"[bold red]over budget:[/] {over}", highlight=False)
        raise typer.Exit(3)
    console.print(
        "[bold green]ready[/] (dry run): the job validates; nothing was uploaded or submitted."
    )


def _submit(
    console: Any,
    job: Job,
    prepared: PreparedJob,
    estimate: Estimate,
    over: BudgetExceeded | None,
    *,
    json_out: bool,
    fresh: bool,
    timeout_minutes: float,
    resubmit_on_algo_error: bool,
) -> None:
    """The real run: the plan and estimate first, then the same preparation run."""
    from vaceflow.cli.problems import UserProblem, prefect_api_url, preflight
    from vaceflow.cli.running import run_one, stop
    from vaceflow.settings import Settings

    try:
        preflight(Settings.load(), prefect_url=prefect_api_url())
    except UserProblem as problem:
        stop(problem, json_out=json_out)

    if over is not None:
        stop_over_budget(console, over, json_out=json_out)
    if not json_out:
        _print_plan(console, prepared)
        console.print(f"[bold]estimate:[/] {estimate.summary}", highlight=False)
    run_one(
        job,
        prepared,
        fresh=fresh,
        timeout_minutes=timeout_minutes,
        resubmit_on_algo_error=resubmit_on_algo_error,
        json_out=json_out,
        console=console,
    )


# --- errors in the CLI's terms ------------------------------------------------------

_CLASS_NAME = re.compile(
    r"(?:[A-Z][a-z]+)+(?:Error|Timeout|Exception): (?:\[Errno -?\d+\] )?"
    r"| ?\((?:[A-Z][a-z]+)+(?:Error|Timeout|Exception)\)"
)
"""`ConnectError: [Errno 111] `, ` (ConnectTimeout)`: an exception's class, not words."""


def _refuse(
    exc: VaceflowError, function: Function, options: dict[str, Any], *, json_out: bool
) -> NoReturn:
    """Say why the job cannot run, naming the flag and the file given (not the API's
    field), and exit 2: nothing was uploaded or submitted."""
    from vaceflow.cli.layout import echo, wrap
    from vaceflow.errors import InputRefused, JobInvalid

    subject, detail = _in_cli_terms(exc, function, options)
    rule = exc.rule if isinstance(exc, InputRefused) else None
    if json_out:
        error = {
            "type": type(exc).__name__,
            "input": getattr(exc, "input_name", None),
            "flag": subject.partition(" ")[0] or None,
            "file": subject.partition(" ")[2] or None,
            "rule": rule,
            "message": f"{subject}: {detail}" if subject else detail,
        }
        typer.echo(json.dumps({"ready": False, "error": error}, indent=2))
    else:
        head = "refused" if isinstance(exc, InputRefused | JobInvalid) else "error"
        text = f"{head}: {subject}: {detail}" if subject else f"{head}: {detail}"
        lines = wrap(text, indent="  ", keep=[subject])
        if rule:
            lines += wrap(f"rule: {_flag_words(rule, function)}", first="  ", indent="    ")
        echo(lines, err=True)
    raise typer.Exit(2)


def _in_cli_terms(
    exc: VaceflowError, function: Function, options: dict[str, Any]
) -> tuple[str, str]:
    """(`--flag FILE` of the input at fault or "", what is wrong), in flags' words."""
    from vaceflow.errors import MediaError
    from vaceflow.media.sources import display_ref
    from vaceflow.options import input_roles

    roles = {role.value for role in input_roles(function)}
    name = getattr(exc, "input_name", None) or ""
    detail = str(exc).removeprefix(f"{name}: ") if name else str(exc)
    base, _, index = name.partition("[")
    subject = ""
    if base in roles:
        given = options.get(base)
        refs = [str(g) for g in given] if isinstance(given, list) else [str(given or "")]
        position = int(index.rstrip("]")) - 1 if index else 0
        ref = display_ref(refs[position]) if position < len(refs) and refs[position] else ""
        subject = f"--{_flag(base)} {ref}".rstrip()
        # The message may name the file again, as given or as fetched: once is enough.
        head, sep, rest = detail.partition(": ")
        if sep and ref and (head == ref or Path(head).name == Path(ref).name):
            detail = rest
    if isinstance(exc, MediaError):  # fetch errors carry httpx's class names
        detail = _CLASS_NAME.sub("", detail)
    return subject, _flag_words(detail, function)


def _flag_words(text: str, function: Function) -> str:
    """The API's field names in `text` (input.ref_images_url, parameters.obj_or_bg,
    mask_frame_id) written as this command's flags."""
    from vaceflow.options import input_fields, input_roles, parameter_fields

    names: dict[str, str] = {}
    for role in input_roles(function):
        flag = f"--{_flag(role.value)}"
        names[f"input.{role.api_field}"] = names[role.api_field] = flag
    for field in input_fields(function):
        names[f"input.{field}"] = names[field] = f"--{_flag(field)}"
    for field in parameter_fields(function):
        names[f"parameters.{field}"] = f"--{_flag(field)}"
        if "_" in field:  # a bare plain word (seed, size) may be prose: only dotted ones
            names[field] = f"--{_flag(field)}"
    pattern = re.compile(
        r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\b"
    )
    parts = [pattern.sub(lambda m: names[m.group(1)], p) for p in text.split("; ")]
    return "; ".join(p.removeprefix("input: ").removeprefix("parameters: ") for p in parts)


def _print_plan(console: Any, prepared: Any) -> None:
    """Each input as a block: where it came from, what it was, what was done and why,
    what it is now. Paths whole, relative to the current folder when inside it."""
    from vaceflow.cli.layout import echo, fields, shown_path, wrap

    lines = ["conform plan"]
    for report in prepared.reports:
        done = report.done + (" (cached)" if report.cached else "")
        source = shown_path(report.source) if "://" not in report.source else report.source
        lines.append(f"  {report.input}  {source}")
        lines += fields(
            [("was", str(report.before)), ("done", done), ("now", str(report.after))], indent=4
        )
    for report in prepared.reports:
        flag = f"--{_flag(report.input.partition('[')[0])}"
        source = shown_path(report.source) if "://" not in report.source else report.source
        for warning in report.warnings:
            text = f"{flag} {source}: {warning.removeprefix(report.input + ': ')}"
            lines += wrap(text, first="warning: ", indent="  ")
    echo(lines)
    console.file.flush()


# --- the estimate and --budget (vaceflow.estimate) ---------------------------------------


def _estimate(
    prepared: PreparedJob | list[PreparedJob],
    budget: float | None,
    *,
    concurrency: int | None = None,
) -> tuple[Estimate, BudgetExceeded | None]:
    """The job's estimate, and the BudgetExceeded it raises against `budget` (or None).

    The catalog is read only when it already exists: a dry run creates no database."""
    from vaceflow.errors import BudgetExceeded
    from vaceflow.estimate import check_budget, estimate
    from vaceflow.settings import Settings

    settings = Settings.load()
    catalog = _existing_catalog(settings)
    try:
        jobs = prepared if isinstance(prepared, list) else [prepared]
        result = estimate(jobs, settings=settings, catalog=catalog, concurrency=concurrency)
    finally:
        if catalog is not None:
            catalog.close()
    if budget is None:
        return result, None
    try:
        check_budget(result, budget)
    except BudgetExceeded as exc:
        return result, exc
    return result, None


def _existing_catalog(settings: Settings) -> Catalog | None:
    from sqlalchemy.engine import make_url

    from vaceflow.catalog import Catalog, default_catalog_url

    url = make_url(default_catalog_url(settings))
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        return None
    return Catalog.from_settings(settings)


def stop_over_budget(console: Any, over: BudgetExceeded, *, json_out: bool) -> NoReturn:
    """A real run (`run`, `batch`) refused by --budget: say so and exit, nothing submitted."""
    from vaceflow.cli.running import EXIT

    if json_out:
        typer.echo(json.dumps({"ok": False, "error": _budget_error(over)}, indent=2))
    else:
        console.print(f"[bold red]over budget:[/] {over}", highlight=False)
    raise typer.Exit(EXIT["over_budget"])


def _budget_error(exc: BudgetExceeded) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "estimated": exc.estimated,
        "budget": exc.budget,
        "currency": exc.currency,
    }

"""The one list of each function's flat options, read from its job model, and the job
they make.

A flat option is the prompt, an input named by its role (`video`, `mask_image`,
`ref_image`: the API's `*_url` field of that role), an input field that is not media
(`mask_frame_id`) or a parameter with the API's name (`control_condition`,
`top_scale`, ...), each with the model's type, range, default and description; then
the options of a run (`RUN_OPTIONS`). `function_options` lists them: the flows'
parameters (`flows/functions.py`, the Prefect UI's forms) and the CLI's flags
(`vaceflow run`) are both made from it, so a field added to a job model reaches both.
`job_from_options` makes the one `Job` of the values, its inputs references (a path,
an http(s) URL or an s3:// URI) that the pipeline conforms and stages.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from vaceflow.errors import JobInvalid, describe_validation_error
from vaceflow.jobs import JOB_TYPES, Function, Job, Url, parse_job
from vaceflow.limits import Role

__all__ = [
    "REQUIRED",
    "RUN_OPTIONS",
    "WAIT_TIMEOUT_MINUTES",
    "Option",
    "bare",
    "function_options",
    "function_summary",
    "input_fields",
    "input_model",
    "input_roles",
    "job_from_options",
    "parameter_fields",
]

REQUIRED: Any = PydanticUndefined
"""The default of an option that must be given."""


@dataclass(frozen=True)
class Option:
    """One flat option: its name, type (ranges included), default and help, and what
    it is in the job."""

    name: str
    kind: Any
    """The type a form checks a value against, e.g. `Annotated[float, Ge(1), Le(2)]`."""
    default: Any
    help: str
    role: Role | None = None
    """The input it gives, for a media option."""
    needs: tuple[str, ...] = ()
    """The other options of which one must be given with it (`one_of` in the model)."""
    run: bool = False
    """An option of the run, not of the job (`RUN_OPTIONS`)."""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def many(self) -> bool:
        """Whether it takes several values (a list)."""
        return typing.get_origin(bare(self.kind)) is list


WAIT_TIMEOUT_MINUTES = 30.0
"""How long a run waits for its task unless told (every flow, the CLI, and the lifetime of
the input URLs: `Settings.wait_timeout`)."""

RUN_OPTIONS: tuple[Option, ...] = (
    Option("fresh", bool, False, "Pay for a new video even when the catalog has one.", run=True),
    Option(
        "timeout_minutes",
        Annotated[float, Field(ge=0.1)],
        WAIT_TIMEOUT_MINUTES,
        "Stop waiting after this long; the task is kept and a re-run resumes it.",
        run=True,
    ),
    Option(
        "resubmit_on_algo_error",
        bool,
        False,
        "Submit once more if the model fails with InternalError.Algo (not billed).",
        run=True,
    ),
)
"""What every function's run takes besides the job: one declaration for flows and CLI."""

_SKIPPED_PARAMETERS = frozenset({"duration"})
"""Fixed by the service; not worth an option."""


def _models(function: Function) -> tuple[type[BaseModel], type[BaseModel]]:
    """The input and parameters models of `function`'s job."""
    fields = JOB_TYPES[function].model_fields
    return _model(fields["input"]), _model(fields["parameters"])


def _model(field: FieldInfo) -> type[BaseModel]:
    kind = field.annotation
    if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
        raise TypeError(f"expected a model, got {kind!r}")
    return kind


def input_model(function: Function) -> type[BaseModel]:
    """`function`'s input model (its `one_of` names the inputs of which one is needed)."""
    return _models(function)[0]


def input_roles(function: Function) -> dict[Role, FieldInfo]:
    """The media inputs `function` takes, by role, with their model fields (in the
    model's order)."""
    roles = {role.api_field: role for role in Role}
    fields = _models(function)[0].model_fields
    return {roles[name]: field for name, field in fields.items() if name in roles}


def input_fields(function: Function) -> dict[str, FieldInfo]:
    """The input fields of `function` that are neither media nor the prompt."""
    media = {role.api_field for role in Role}
    return {
        name: f
        for name, f in _models(function)[0].model_fields.items()
        if name not in media and name not in ("function", "prompt")
    }


def parameter_fields(function: Function) -> dict[str, FieldInfo]:
    return {
        name: f
        for name, f in _models(function)[1].model_fields.items()
        if name not in _SKIPPED_PARAMETERS
    }


def function_options(function: Function) -> list[Option]:
    """`function`'s options in the order forms and help show them: the prompt, the
    inputs, the other input fields, the function's own parameters, the ones every
    function takes, then the run's."""
    model = input_model(function)
    one_of = [role.value for role in Role if role.api_field in getattr(model, "one_of", ())]
    found = [_field_option("prompt", model.model_fields["prompt"])]
    for role, field in input_roles(function).items():
        needs = tuple(n for n in one_of if n != role.value) if role.value in one_of else ()
        found.append(_media_option(role, field, needs))
    found += [_field_option(name, field) for name, field in input_fields(function).items()]
    parameters = parameter_fields(function)
    common = [name for name in parameters if name in _COMMON]
    for name in [n for n in parameters if n not in common] + common:
        found.append(_field_option(name, parameters[name]))
    return [*found, *RUN_OPTIONS]


_COMMON = ("prompt_extend", "seed", "watermark")
"""Parameters every function takes: shown after a function's own."""


def _field_option(name: str, field: FieldInfo) -> Option:
    kind: Any = field.annotation
    extra = [Field(json_schema_extra=field.json_schema_extra)] if field.json_schema_extra else []
    if field.metadata or extra:
        kind = Annotated[(kind, *field.metadata, *extra)]
    help_text = field.description or name.replace("_", " ").capitalize() + "."
    default = REQUIRED if field.is_required() else field.get_default(call_default_factory=True)
    return Option(name, kind, default, help_text)


def _media_option(role: Role, field: FieldInfo, needs: tuple[str, ...]) -> Option:
    """A list of references where the model takes several, else one reference."""
    bounds = [m for m in field.metadata if hasattr(m, "max_length") or hasattr(m, "min_length")]
    most = next((m.max_length for m in bounds if hasattr(m, "max_length")), None)
    kind: Any = Url
    if typing.get_origin(bare(field.annotation)) is list and most != 1:
        kind = Annotated[(list[Url], *bounds)]
    if not field.is_required():
        kind = kind | None
    default = REQUIRED if field.is_required() else None
    return Option(role.value, kind, default, field.description or "", role=role, needs=needs)


def bare(kind: Any) -> Any:
    """The type an option's values have: `X | None` -> X; Annotated[X, ...] -> X."""
    if typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return bare(args[0])
    return kind


def function_summary(function: Function) -> str:
    """What `function` makes, in a line (its job model's docstring)."""
    return (JOB_TYPES[function].__doc__ or function.value).strip().splitlines()[0]


def job_from_options(function: Function, options: dict[str, Any]) -> Job:
    """The job of flat `options` (`prompt`, inputs by role, input fields, parameters,
    `model`); None or empty values are left out, so the service's defaults apply.

    JobInvalid, one line per problem, when the models refuse it: before any spend.
    """
    values = {k: v for k, v in options.items() if v is not None and v != []}
    body_input: dict[str, Any] = {"function": function.value, "prompt": values.pop("prompt", "")}
    for role in input_roles(function):
        if role.value in values:
            refs = values.pop(role.value)
            refs = [str(r) for r in refs] if isinstance(refs, list | tuple) else [str(refs)]
            body_input[role.api_field] = refs if role is Role.REF_IMAGE else _one(role, refs)
    body_input |= {k: values.pop(k) for k in list(values) if k in input_fields(function)}
    body: dict[str, Any] = {"input": body_input}
    if "model" in values:
        body["model"] = values.pop("model")
    unknown = set(values) - set(parameter_fields(function))
    if unknown:
        raise JobInvalid(f"{function.value} has no option {', '.join(sorted(unknown))}")
    body["parameters"] = values
    try:
        return parse_job(body)
    except ValidationError as exc:
        raise JobInvalid(describe_validation_error(exc)) from exc


def _one(role: Role, refs: list[str]) -> str:
    if len(refs) > 1:
        raise JobInvalid(
            f"input.{role.api_field}: one {role.value.replace('_', ' ')}, got {len(refs)}"
        )
    return refs[0]

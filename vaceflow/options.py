"""Each function's flat options, read from its job model, and the job they make.

A flat option is an input named by its role (`video`, `mask_image`, `ref_image`: the
API's `*_url` field of that role), an input field that is not media (`mask_frame_id`)
or a parameter with the API's name (`control_condition`, `top_scale`, ...).
`job_from_options` makes the one `Job` of them, its inputs references (a path, an
http(s) URL or an s3:// URI) that the pipeline conforms and stages.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from vaceflow.errors import JobInvalid, describe_validation_error
from vaceflow.jobs import JOB_TYPES, Function, Job, parse_job
from vaceflow.limits import Role

__all__ = [
    "input_fields",
    "input_model",
    "input_roles",
    "job_from_options",
    "parameter_fields",
]

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
    """The media inputs `function` takes, by role, with their model fields."""
    fields = _models(function)[0].model_fields
    return {role: fields[role.api_field] for role in Role if role.api_field in fields}


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

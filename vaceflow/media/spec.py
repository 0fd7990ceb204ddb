"""A job as a user states it: function, prompt, parameters, and inputs by role.

Inputs are references (path, http(s) URL, s3:// URI) before preparation and file://
URIs of conformed files after it; `build_job` turns either into a validated `Job`.
`input_fields` and `parameter_fields` read each function's job model, so the CLI's
flags (and later the flows' arguments) follow the models instead of restating them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo

from vaceflow.errors import JobInvalid, describe_validation_error
from vaceflow.jobs import JOB_TYPES, Function, Job, parse_job
from vaceflow.limits import Role

__all__ = [
    "JobSpec",
    "build_job",
    "input_fields",
    "input_model",
    "input_roles",
    "parameter_fields",
]

_SKIPPED_PARAMETERS = frozenset({"duration"})
"""Fixed by the service; not worth a flag."""


class JobSpec(BaseModel):
    function: Function
    prompt: str
    inputs: dict[Role, list[str]] = Field(default_factory=dict)
    input_options: dict[str, Any] = Field(default_factory=dict)
    """Input fields that are not media, e.g. mask_frame_id."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None

    @classmethod
    def from_job(cls, job: Job) -> JobSpec:
        """A spec from a job body (local paths and s3:// URIs may stand where URLs do)."""
        body = job.to_body()
        media = {role.api_field for role in Role}
        given = body["input"]
        return cls(
            function=job.function,
            prompt=job.input.prompt,
            inputs=job.input.media(),
            input_options={
                k: v for k, v in given.items() if k not in media and k not in ("function", "prompt")
            },
            parameters=body.get("parameters", {}),
            model=job.model if "model" in job.model_fields_set else None,
        )

    @classmethod
    def from_options(cls, function: Function, options: dict[str, Any]) -> JobSpec:
        """A spec from flat options named like the API fields without `_url`
        (`video`, `mask_image`, `ref_image`, `mask_frame_id`, `strength`, ...);
        None or empty values are left out, so the service's defaults apply."""
        values = {k: v for k, v in options.items() if v is not None and v != []}
        inputs: dict[Role, list[str]] = {}
        for role in input_roles(function):
            if role.value in values:
                ref = values.pop(role.value)
                inputs[role] = (
                    [str(r) for r in ref] if isinstance(ref, list | tuple) else [str(ref)]
                )
        input_options = {k: values.pop(k) for k in list(values) if k in input_fields(function)}
        prompt = str(values.pop("prompt", ""))
        model = values.pop("model", None)
        unknown = set(values) - set(parameter_fields(function))
        if unknown:
            raise JobInvalid(f"{function.value} has no option {', '.join(sorted(unknown))}")
        return cls(
            function=function,
            prompt=prompt,
            inputs=inputs,
            input_options=input_options,
            parameters=values,
            model=model,
        )


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


def build_job(spec: JobSpec, urls: dict[Role, list[str]] | None = None) -> Job:
    """The typed job for `spec`, with `urls` (default: the spec's own references).

    JobInvalid, one line per problem, when the models refuse it: before any spend.
    """
    media = spec.inputs if urls is None else urls
    accepted = input_roles(spec.function)
    body_input: dict[str, Any] = {"function": spec.function.value, "prompt": spec.prompt}
    for role, refs in media.items():
        if role not in accepted:
            raise JobInvalid(f"{spec.function.value} takes no {role.value} input")
        if refs:
            body_input[role.api_field] = list(refs) if role is Role.REF_IMAGE else _one(role, refs)
    body_input.update({k: v for k, v in spec.input_options.items() if v is not None})
    parameters = {k: v for k, v in spec.parameters.items() if v is not None}
    body: dict[str, Any] = {"input": body_input, "parameters": parameters}
    if spec.model:
        body["model"] = spec.model
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

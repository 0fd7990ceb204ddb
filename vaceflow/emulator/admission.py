"""Deciding whether a submit body becomes a task, exactly as the service decides.

The service is lenient where the official SDK and old clients rely on it (it ignores
unknown fields, keeps the first 3 reference images, cuts long prompts) and strict
everywhere else. The leniencies are applied to a copy of the body; then the body is
validated by `vaceflow.jobs.parse_job`, the project's one statement of the rules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from vaceflow.emulator.wire import ApiError
from vaceflow.errors import describe_validation_error
from vaceflow.jobs import JOB_TYPES, Function, Job, parse_job
from vaceflow.limits import MAX_REF_IMAGES, PROMPT_MAX_CHARS

__all__ = ["Admitted", "admit"]

_TOP_LEVEL = frozenset({"model", "input", "parameters"})
_URL_SCHEMES = ("http://", "https://", "oss://")


@dataclass
class Admitted:
    """A body the service accepts: the job it runs and what it quietly changed."""

    job: Job
    notes: list[str] = field(default_factory=list)


def admit(body: Any, *, model: str, oss_resolve: bool, blocked_words: tuple[str, ...]) -> Admitted:
    """The job in `body`, or ApiError with the service's code; `body` is not changed."""
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter", "The request body must be a JSON object.")
    if not body.get("model"):
        raise ApiError(
            400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.'
        )
    if not body.get("input"):
        raise ApiError(
            400, "BadRequest.EmptyInput", 'Required parameter "input" missing from request.'
        )
    if body["model"] != model:
        raise ApiError(
            400,
            "InvalidParameter",
            f"Model not exist. ({body['model']!r} is not served here; use {model!r})",
        )
    if not isinstance(body["input"], dict):
        raise ApiError(400, "InvalidParameter", "input: must be a JSON object")
    lenient, notes = _apply_leniencies(body)
    try:
        job = parse_job(lenient)
    except ValidationError as exc:
        raise ApiError(400, "InvalidParameter", describe_validation_error(exc)) from None
    _check_urls(job, oss_resolve=oss_resolve)
    _inspect_prompt(job.input.prompt, blocked_words)
    return Admitted(job=job, notes=notes)


def _apply_leniencies(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What the service tolerates, fixed on a copy; each change noted."""
    out = copy.deepcopy(body)
    notes: list[str] = []
    for key in sorted(set(out) - _TOP_LEVEL):
        notes.append(f"ignored unknown field {key}")
        del out[key]
    inp: dict[str, Any] = out["input"]
    if inp.pop("extend_prompt", None) is not None:
        notes.append("ignored input.extend_prompt (the SDK's deprecated flag)")
    params = out.get("parameters")
    if params is not None and not isinstance(params, dict):
        return out, notes  # parse_job names the problem
    job_type = _job_type(inp.get("function"))
    if job_type is not None:
        notes += _drop_unknown(inp, _fields(job_type, "input"), "input")
        if params:
            notes += _drop_unknown(params, _fields(job_type, "parameters"), "parameters")
    refs = inp.get("ref_images_url")
    if isinstance(refs, list) and len(refs) > MAX_REF_IMAGES:
        inp["ref_images_url"] = refs[:MAX_REF_IMAGES]
        notes.append(f"kept the first {MAX_REF_IMAGES} of {len(refs)} ref_images_url")
        roles = params.get("obj_or_bg") if params else None
        if params and isinstance(roles, list) and len(roles) > MAX_REF_IMAGES:
            params["obj_or_bg"] = roles[:MAX_REF_IMAGES]
    prompt = inp.get("prompt")
    if isinstance(prompt, str) and len(prompt) > PROMPT_MAX_CHARS:
        inp["prompt"] = prompt[:PROMPT_MAX_CHARS]
        notes.append(f"cut the prompt from {len(prompt)} to {PROMPT_MAX_CHARS} characters")
    return out, notes


def _job_type(function: Any) -> type[BaseModel] | None:
    try:
        return JOB_TYPES[Function(function)]
    except ValueError:
        return None


def _fields(job_type: type[BaseModel], part: str) -> frozenset[str]:
    annotation = job_type.model_fields[part].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return frozenset()
    return frozenset(annotation.model_fields)


def _drop_unknown(part: dict[str, Any], known: frozenset[str], where: str) -> list[str]:
    notes = []
    for key in sorted(set(part) - known):
        del part[key]
        notes.append(f"ignored unknown field {where}.{key}")
    return notes


def _check_urls(job: Job, *, oss_resolve: bool) -> None:
    for role, urls in job.input.media().items():
        for url in urls:
            where = f"input.{role.api_field}"
            if not url.isascii():
                raise ApiError(
                    400, "InvalidURL", f"{where}: the URL contains non-ASCII characters: {url}"
                )
            if not url.startswith(_URL_SCHEMES):
                raise ApiError(400, "InvalidURL", f"{where}: not an http(s) or oss:// URL: {url}")
            if url.startswith("oss://") and not oss_resolve:
                raise ApiError(
                    400,
                    "InvalidURL",
                    f"{where}: an oss:// URL needs the header "
                    "X-DashScope-OssResourceResolve: enable",
                )


def _inspect_prompt(prompt: str, blocked_words: tuple[str, ...]) -> None:
    lowered = prompt.lower()
    if any(word.lower() in lowered for word in blocked_words if word):
        raise ApiError(400, "DataInspectionFailed", "Input data may contain inappropriate content.")

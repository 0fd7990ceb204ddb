"""One flow per VACE function, with flat, typed, described parameters.

The parameters are the function's options (`vaceflow.options.function_options`): its
job model's fields (the prompt, the inputs by role, the parameters), then the run's,
the one list the CLI's flags come from too. The Prefect UI turns them into forms: enums
become choices, ranges come from the job models' own types (`Scale`, `UnitFloat`,
`Seed`), and each parameter's description from the model's. Inputs are local paths,
http(s) URLs or s3:// URIs; every flow runs the same pipeline as `vace_job`.
"""

from __future__ import annotations

import inspect
from typing import Any

from prefect import Flow, flow

from flows.job import cancel_pending_task, run_job
from tasks.runtime import flow_runtime
from vaceflow.catalog import JobRecord
from vaceflow.jobs import Function, Url
from vaceflow.options import (
    RUN_OPTIONS,
    Option,
    function_options,
    function_summary,
    job_from_options,
)

__all__ = [
    "Media",
    "image_reference",
    "video_edit",
    "video_extension",
    "video_outpainting",
    "video_repainting",
]

Media = Url
"""A local path, http(s) URL or s3:// URI: how a flow's parameter names an input."""


def function_flow(function: Function) -> Flow[..., JobRecord]:
    """`function`'s flow: its options as keyword parameters, its docstring their help."""
    options = function_options(function)

    def run(**given: Any) -> JobRecord:
        run_options = {o.name: given.pop(o.name) for o in RUN_OPTIONS}
        with flow_runtime() as runtime:
            return run_job(runtime, job_from_options(function, given), **run_options)

    parameters = [
        inspect.Parameter(
            o.name, inspect.Parameter.KEYWORD_ONLY, default=_default(o), annotation=o.kind
        )
        for o in options
    ]
    run.__name__ = run.__qualname__ = function.value
    run.__doc__ = _docstring(function, options)
    run.__signature__ = inspect.Signature(parameters, return_annotation=JobRecord)  # type: ignore[attr-defined]
    run.__annotations__ = {o.name: o.kind for o in options} | {"return": JobRecord}
    return flow(
        name=function.value,
        flow_run_name=f"{function.value}: {{prompt}}",
        description=function_summary(function),
        on_cancellation=[cancel_pending_task],
        log_prints=True,
    )(run)


def _default(option: Option) -> Any:
    return inspect.Parameter.empty if option.required else option.default


def _docstring(function: Function, options: list[Option]) -> str:
    """The summary, then one `Args:` line per option (Prefect reads the descriptions)."""
    lines = [function_summary(function), "", "Args:"]
    for o in options:
        need = f" Give this or {' or '.join(o.needs)}." if o.needs else ""
        lines.append(f"    {o.name}: {o.help}{need}")
    return "\n".join(lines)


image_reference = function_flow(Function.IMAGE_REFERENCE)
video_repainting = function_flow(Function.VIDEO_REPAINTING)
video_edit = function_flow(Function.VIDEO_EDIT)
video_extension = function_flow(Function.VIDEO_EXTENSION)
video_outpainting = function_flow(Function.VIDEO_OUTPAINTING)

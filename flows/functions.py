"""One flow per VACE function, with flat, typed, described parameters.

The Prefect UI turns these signatures into forms: enums become choices, ranges come
from the job models' own types (`Scale`, `UnitFloat`, `Seed`), and each parameter's
description from the docstring. Inputs are local paths, http(s) URLs or s3:// URIs;
every flow runs the same pipeline as `vace_job`.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from flows.job import cancel_pending_task, run_job
from tasks.runtime import flow_runtime
from vaceflow.catalog import JobRecord
from vaceflow.jobs import (
    ControlCondition,
    EditControlCondition,
    ExpandMode,
    Function,
    MaskType,
    ObjOrBg,
    Prompt,
    Scale,
    Seed,
    Size,
    UnitFloat,
)
from vaceflow.options import job_from_options

__all__ = [
    "image_reference",
    "video_edit",
    "video_extension",
    "video_outpainting",
    "video_repainting",
]

Media = Annotated[str, Field(min_length=1, description="A local path, http(s) URL or s3:// URI.")]


def _run(function: Function, options: dict[str, Any]) -> JobRecord:
    run = {k: options.pop(k) for k in ("fresh", "timeout_minutes", "resubmit_on_algo_error")}
    with flow_runtime() as runtime:
        return run_job(runtime, job_from_options(function, options), **run)


def _name(function: Function) -> str:
    return f"{function.value}: {{prompt}}"


_COMMON = dict(on_cancellation=[cancel_pending_task], log_prints=True)


@flow(name="image_reference", flow_run_name=_name(Function.IMAGE_REFERENCE), **_COMMON)  # type: ignore[arg-type]
def image_reference(
    prompt: Prompt,
    ref_images: Annotated[list[Media], Field(min_length=1, max_length=3)],
    obj_or_bg: list[ObjOrBg] | None = None,
    size: Size = Size.LANDSCAPE_16_9,
    seed: Seed | None = None,
    prompt_extend: bool | None = None,
    watermark: bool | None = None,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
    resubmit_on_algo_error: bool = False,
) -> JobRecord:
    """A video composed from 1-3 reference images (subjects and at most one background).

    Args:
        prompt: What the video should show.
        ref_images: 1-3 images: subjects on a plain background, or one background.
        obj_or_bg: Per image, "obj" (subject) or "bg" (background); needed for 2-3 images.
        size: Output width*height.
        seed: Fix it to reproduce a result.
        prompt_extend: Let an LLM rewrite the prompt (slower; helps short prompts).
        watermark: Add an "AI-generated" mark at the bottom right.
        fresh: Pay for a new video even when the catalog has this job's result.
        timeout_minutes: Stop waiting after this long; a re-run resumes the same task.
        resubmit_on_algo_error: Submit once more after InternalError.Algo (not billed).
    """
    options = dict(locals())
    options["ref_image"] = options.pop("ref_images")
    return _run(Function.IMAGE_REFERENCE, options)


@flow(name="video_repainting", flow_run_name=_name(Function.VIDEO_REPAINTING), **_COMMON)  # type: ignore[arg-type]
def video_repainting(
    prompt: Prompt,
    video: Media,
    control_condition: ControlCondition,
    strength: UnitFloat = 1.0,
    ref_image: Media | None = None,
    seed: Seed | None = None,
    prompt_extend: bool | None = None,
    watermark: bool | None = None,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
    resubmit_on_algo_error: bool = False,
) -> JobRecord:
    """A new video with the input's motion: pose, depth or line art kept, the rest repainted.

    Args:
        prompt: What the video should show.
        video: The video whose motion to keep (cut to its first 5 s).
        control_condition: What to keep: posebodyface, posebody, depth or scribble.
        strength: How closely to follow the input (0-1).
        ref_image: An optional subject to put in place of the video's.
        seed: Fix it to reproduce a result.
        prompt_extend: Let an LLM rewrite the prompt.
        watermark: Add an "AI-generated" mark at the bottom right.
        fresh: Pay for a new video even when the catalog has this job's result.
        timeout_minutes: Stop waiting after this long; a re-run resumes the same task.
        resubmit_on_algo_error: Submit once more after InternalError.Algo (not billed).
    """
    return _run(Function.VIDEO_REPAINTING, dict(locals()))


@flow(name="video_edit", flow_run_name=_name(Function.VIDEO_EDIT), **_COMMON)  # type: ignore[arg-type]
def video_edit(
    prompt: Prompt,
    video: Media,
    mask_image: Media | None = None,
    mask_video: Media | None = None,
    mask_frame_id: Annotated[int, Field(ge=1)] = 1,
    ref_image: Media | None = None,
    mask_type: MaskType = MaskType.TRACKING,
    expand_ratio: UnitFloat = 0.05,
    expand_mode: ExpandMode = ExpandMode.HULL,
    control_condition: EditControlCondition = EditControlCondition.NONE,
    size: Size | None = None,
    seed: Seed | None = None,
    prompt_extend: bool | None = None,
    watermark: bool | None = None,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
    resubmit_on_algo_error: bool = False,
) -> JobRecord:
    """Add, change or remove what lies in a masked area of a video.

    Args:
        prompt: What the masked area should show.
        video: The video to edit (cut to its first 5 s).
        mask_image: White marks the area to edit, black what to keep (give this or mask_video).
        mask_video: A mask per frame, same size, rate and length as the video.
        mask_frame_id: The frame (1 = first) that mask_image marks.
        ref_image: An optional subject or background for the edited area.
        mask_type: tracking follows the object; fixed keeps the area still.
        expand_ratio: How far a tracking mask grows around the object (0-1).
        expand_mode: The tracking mask's shape: hull, bbox or original.
        control_condition: Keep pose (posebodyface) or depth from the video, or nothing.
        size: Output width*height.
        seed: Fix it to reproduce a result.
        prompt_extend: Let an LLM rewrite the prompt.
        watermark: Add an "AI-generated" mark at the bottom right.
        fresh: Pay for a new video even when the catalog has this job's result.
        timeout_minutes: Stop waiting after this long; a re-run resumes the same task.
        resubmit_on_algo_error: Submit once more after InternalError.Algo (not billed).
    """
    return _run(Function.VIDEO_EDIT, dict(locals()))


@flow(name="video_extension", flow_run_name=_name(Function.VIDEO_EXTENSION), **_COMMON)  # type: ignore[arg-type]
def video_extension(
    prompt: Prompt,
    first_frame: Media | None = None,
    last_frame: Media | None = None,
    first_clip: Media | None = None,
    last_clip: Media | None = None,
    video: Media | None = None,
    control_condition: ControlCondition | None = None,
    seed: Seed | None = None,
    prompt_extend: bool | None = None,
    watermark: bool | None = None,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
    resubmit_on_algo_error: bool = False,
) -> JobRecord:
    """A 5 s video that continues from a frame or clip, or bridges two of them.

    Args:
        prompt: What happens in the generated part.
        first_frame: The image the video starts from.
        last_frame: The image the video ends on.
        first_clip: A clip the video continues (its end is kept, at most 3 s in all).
        last_clip: A clip the video leads into (its start is kept).
        video: A motion guide; needs control_condition.
        control_condition: What to take from the guide video.
        seed: Fix it to reproduce a result.
        prompt_extend: Let an LLM rewrite the prompt.
        watermark: Add an "AI-generated" mark at the bottom right.
        fresh: Pay for a new video even when the catalog has this job's result.
        timeout_minutes: Stop waiting after this long; a re-run resumes the same task.
        resubmit_on_algo_error: Submit once more after InternalError.Algo (not billed).
    """
    return _run(Function.VIDEO_EXTENSION, dict(locals()))


@flow(name="video_outpainting", flow_run_name=_name(Function.VIDEO_OUTPAINTING), **_COMMON)  # type: ignore[arg-type]
def video_outpainting(
    prompt: Prompt,
    video: Media,
    top_scale: Scale = 1.0,
    bottom_scale: Scale = 1.0,
    left_scale: Scale = 1.0,
    right_scale: Scale = 1.0,
    seed: Seed | None = None,
    prompt_extend: bool | None = None,
    watermark: bool | None = None,
    fresh: bool = False,
    timeout_minutes: float = 30.0,
    resubmit_on_algo_error: bool = False,
) -> JobRecord:
    """The video's frame extended outward: up, down, left and right by a ratio each.

    Args:
        prompt: What the new surroundings should show.
        video: The video to extend (cut to its first 5 s).
        top_scale: Extend upward by this ratio (1 = not at all, 2 = double).
        bottom_scale: Extend downward by this ratio.
        left_scale: Extend to the left by this ratio.
        right_scale: Extend to the right by this ratio.
        seed: Fix it to reproduce a result.
        prompt_extend: Let an LLM rewrite the prompt.
        watermark: Add an "AI-generated" mark at the bottom right.
        fresh: Pay for a new video even when the catalog has this job's result.
        timeout_minutes: Stop waiting after this long; a re-run resumes the same task.
        resubmit_on_algo_error: Submit once more after InternalError.Algo (not billed).
    """
    return _run(Function.VIDEO_OUTPAINTING, dict(locals()))

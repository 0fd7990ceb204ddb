"""Check downloaded inputs exactly as the service does, before anything is rendered.

As strict as the service (format by what the file is, not its URL suffix; sides, size,
frame rate; masks matching the video; clips' total length; `mask_frame_id` in range)
and as lenient (a video over 5 s, a clip over 3 s, is used for its first seconds).
Every number comes from `vaceflow.limits`. A refusal is an `InputProblem` whose code
and message are what the service would put in the failed task, naming the API field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vaceflow.errors import MediaError
from vaceflow.jobs import Job, VideoEditJob, VideoExtensionJob
from vaceflow.limits import CLIPS_TOTAL_SECONDS, MB, MediaKind, Role, max_mask_frame_id
from vaceflow.media.probe import MediaInfo, probe

__all__ = ["CheckedInput", "CheckedInputs", "InputProblem", "check_inputs"]

INVALID = "InvalidParameter"
UNREADABLE = "InvalidParameter.DataInspection"

_FPS_TOLERANCE = 0.01
"""Probed frame rates are averages rounded to 3 decimals; 15.999 is 16 to the service."""
_SECONDS_TOLERANCE = 0.01
"""Container durations carry rounding: 1.5 + 1.5 s must count as 3.0 s."""


class InputProblem(Exception):
    """An input the service would refuse: `code` and `message` as the failed task shows them."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class CheckedInput:
    """One accepted input: its probe and the seconds of it the service uses."""

    role: Role
    field: str
    """The API field, indexed for lists: input.ref_images_url[1]."""
    path: Path
    info: MediaInfo
    seconds: float | None = None
    """Video only: the duration after the service's cut (first 5 s of a video, 3 s of a clip)."""


@dataclass(frozen=True)
class CheckedInputs:
    """Every input of a job, by role, in request order."""

    by_role: dict[Role, list[CheckedInput]] = field(default_factory=dict)

    def first(self, role: Role) -> CheckedInput | None:
        items = self.by_role.get(role)
        return items[0] if items else None

    def get(self, role: Role) -> CheckedInput:
        item = self.first(role)
        if item is None:
            raise KeyError(f"no {role.api_field} among the checked inputs")
        return item

    def all(self, role: Role) -> list[CheckedInput]:
        return list(self.by_role.get(role, []))

    def __iter__(self) -> Iterator[CheckedInput]:
        for items in self.by_role.values():
            yield from items


def check_inputs(job: Job, files: Mapping[Role, list[Path]]) -> CheckedInputs:
    """Probe and check every input of `job`; raises InputProblem at the first refusal.

    `files` holds the downloaded file of every URL in `job.input.media()`, same order.
    """
    urls = job.input.media()
    if {r: len(v) for r, v in urls.items()} != {r: len(v) for r, v in files.items() if v}:
        raise ValueError(f"files {dict(files)} do not match the job's inputs {urls}")
    checked: dict[Role, list[CheckedInput]] = {}
    for role in urls:
        many = len(files[role]) > 1 or role is Role.REF_IMAGE
        checked[role] = [
            _check_one(
                role, f"input.{role.api_field}[{i}]" if many else f"input.{role.api_field}", p
            )
            for i, p in enumerate(files[role])
        ]
    inputs = CheckedInputs(checked)
    if isinstance(job, VideoEditJob):
        _check_edit(job, inputs)
    if isinstance(job, VideoExtensionJob):
        _check_extension(inputs)
    return inputs


def _check_one(role: Role, name: str, path: Path) -> CheckedInput:
    rule = role.rule
    size = path.stat().st_size
    if size > rule.max_bytes:
        raise _refuse(name, f"file is {size:,} bytes, over the limit of {_mb(rule.max_bytes)} MB")
    try:
        info = probe(path)
    except MediaError as exc:
        raise InputProblem(
            UNREADABLE, f"{name}: unsupported or damaged media ({_reason(exc, path)})", field=name
        ) from exc
    fmt = _format_of(info)
    expected = ", ".join(sorted(rule.formats))
    if fmt not in rule.formats:
        raise _refuse(name, f"format {fmt} is not supported (expected {expected})")
    if rule.kind is MediaKind.IMAGE and not info.is_image:
        raise _refuse(name, f"has {info.frame_count} frames; expected a single image")
    for side, value in (("width", info.width), ("height", info.height)):
        if rule.min_side is not None and value < rule.min_side:
            raise _refuse(name, f"{side} {value} px is below the minimum of {rule.min_side} px")
        if rule.max_side is not None and value > rule.max_side:
            raise _refuse(name, f"{side} {value} px is above the maximum of {rule.max_side} px")
    if rule.kind is MediaKind.IMAGE:
        return CheckedInput(role, name, path, info)

    if not info.fps or not info.duration:
        raise InputProblem(
            UNREADABLE, f"{name}: the video has no frame rate or duration", field=name
        )
    if rule.min_fps is not None and info.fps < rule.min_fps - _FPS_TOLERANCE:
        raise _refuse(name, f"frame rate {info.fps:g} fps is below the minimum of {rule.min_fps:g}")
    seconds = info.duration
    if rule.max_seconds is not None and seconds > rule.max_seconds + _SECONDS_TOLERANCE:
        if not rule.cut_when_longer:
            raise _refuse(
                name, f"{seconds:g} s is longer than the maximum of {rule.max_seconds:g} s"
            )
        seconds = rule.max_seconds
    return CheckedInput(role, name, path, info, seconds=seconds)


def _check_edit(job: VideoEditJob, inputs: CheckedInputs) -> None:
    video = inputs.get(Role.VIDEO)
    mask_image = inputs.first(Role.MASK_IMAGE)
    if mask_image is not None:
        _same_resolution(mask_image, video)
        assert video.info.fps is not None
        assert video.seconds is not None
        highest = max_mask_frame_id(video.info.fps, video.seconds)
        if job.input.mask_frame_id > highest:
            raise _refuse(
                "input.mask_frame_id",
                f"{job.input.mask_frame_id} is beyond the video's last frame id {highest} "
                f"({video.info.fps:g} fps x {video.seconds:g} s + 1)",
            )
    mask_video = inputs.first(Role.MASK_VIDEO)
    if mask_video is not None:
        _same_resolution(mask_video, video)
        _same_fps(mask_video, video)
        if mask_video.info.frame_count != video.info.frame_count:
            raise _refuse(
                mask_video.field,
                f"has {mask_video.info.frame_count} frames but {video.field} has "
                f"{video.info.frame_count}: a mask video must match the video frame for frame",
            )


def _check_extension(inputs: CheckedInputs) -> None:
    clips = inputs.all(Role.FIRST_CLIP) + inputs.all(Role.LAST_CLIP)
    if len(clips) > 1:
        total = sum(c.seconds or 0.0 for c in clips)
        if total > CLIPS_TOTAL_SECONDS + _SECONDS_TOLERANCE:
            raise _refuse(
                "input.first_clip_url",
                f"first_clip_url and last_clip_url together last {total:g} s, over the "
                f"maximum of {CLIPS_TOTAL_SECONDS:g} s",
            )
    guide = inputs.first(Role.VIDEO)
    if guide is None:
        return
    for other in inputs:
        if other.role is Role.VIDEO:
            continue
        _same_resolution(guide, other)
        if other.role in (Role.FIRST_CLIP, Role.LAST_CLIP):
            _same_fps(guide, other)


def _same_resolution(item: CheckedInput, reference: CheckedInput) -> None:
    if (item.info.width, item.info.height) != (reference.info.width, reference.info.height):
        raise _refuse(
            item.field,
            f"resolution {item.info.resolution} does not match {reference.field} "
            f"({reference.info.resolution})",
        )


def _same_fps(item: CheckedInput, reference: CheckedInput) -> None:
    a, b = item.info.fps or 0.0, reference.info.fps or 0.0
    if abs(a - b) > _FPS_TOLERANCE:
        raise _refuse(
            item.field, f"frame rate {a:g} fps does not match {reference.field} ({b:g} fps)"
        )


def _format_of(info: MediaInfo) -> str:
    """What the file is (jpeg, png, mp4, mov, webm, gif...), from its bytes, never its name."""
    if info.image_format:
        return info.image_format
    if info.is_mp4:
        with open(info.path, "rb") as f:
            head = f.read(12)
        if head[4:8] != b"ftyp":
            return "mov"
        brand = head[8:12].decode("latin-1")
        if brand.startswith("qt"):
            return "mov"
        return "3gp" if brand.startswith("3g") else "mp4"
    if info.container.startswith("matroska"):
        return "webm" if info.codec in ("vp8", "vp9", "av1") else "mkv"
    return info.container.split(",")[0].removesuffix("_pipe")


def _reason(exc: MediaError, path: Path) -> str:
    """The probe's complaint without the emulator's local path or errno noise."""
    text = str(exc).removeprefix(f"{path}: ").replace(f": '{path}'", "")
    return re.sub(r"\[Errno -?\d+\] ", "", text.replace(str(path), "the file"))


def _refuse(name: str, what: str) -> InputProblem:
    return InputProblem(INVALID, f"{name}: {what}", field=name)


def _mb(size: int) -> str:
    return f"{size / MB:g}"

"""Conform plans: the least work that makes an input meet its role's rule, with reasons.

Pure: a plan is computed from `Facts` (and, for masks and clips, from the conformed
video or the clip budget) without touching a file, so it can be printed, tested and
cached. `vaceflow.media.execute` turns a plan into one ffmpeg run; `violations` checks
the result against the same rules.

Modes: `keep` (the file already fits), `copy` (stream copy or file copy: cut, drop
audio, move the index to the front, rename), `encode` (decode and encode again).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vaceflow.errors import InputRefused
from vaceflow.limits import CLIPS_TOTAL_SECONDS, MB, MediaKind, MediaRule, Role
from vaceflow.media.facts import Facts
from vaceflow.media.probe import MediaInfo, rotation_label

__all__ = [
    "Action",
    "Mode",
    "Plan",
    "VideoTarget",
    "Window",
    "clip_windows",
    "fit_sides",
    "plan_for",
    "violations",
]

Mode = Literal["keep", "copy", "encode"]
Ext = Literal["mp4", "png", "jpg", "bmp", "tiff", "webp"]

_EPS = 1e-3
_BITRATE_MARGIN = 0.9
"""Aim under the byte limit: the container and rate control add a few percent."""
_LOSSY = frozenset({"jpeg", "webp", "avif", "heic"})
_EXT: dict[str, Ext] = {"jpeg": "jpg", "png": "png", "bmp": "bmp", "tiff": "tiff", "webp": "webp"}
_MP4_SUFFIXES = frozenset({"mp4"})


class Action(BaseModel):
    """One change, in words a user reads in the conform report."""

    model_config = ConfigDict(frozen=True)

    what: str
    why: str


class Window(BaseModel):
    """The part of a clip to keep: `seconds` from `start`."""

    model_config = ConfigDict(frozen=True)

    start: float = 0.0
    seconds: float


class VideoTarget(BaseModel):
    """What a mask must match: the conformed main video."""

    model_config = ConfigDict(frozen=True)

    width: int
    height: int
    fps: float
    frame_count: int
    duration: float

    @classmethod
    def of(cls, info: MediaInfo) -> VideoTarget:
        return cls(
            width=info.width,
            height=info.height,
            fps=info.fps or 0.0,
            frame_count=info.frame_count or 0,
            duration=info.duration or 0.0,
        )


class Plan(BaseModel):
    """What to do to one input; the fields below `actions` drive ffmpeg."""

    role: Role
    kind: MediaKind
    mode: Mode
    ext: Ext
    actions: list[Action] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    start: float = 0.0
    seconds: float | None = None
    """Stream copy: keep this much (ffmpeg -t)."""
    frames: int | None = None
    """Encode: exactly this many frames."""
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    neighbor: bool = False
    """Scale by nearest neighbour (masks keep hard edges)."""
    bitrate: int | None = None
    """Target video bits per second, to fit the byte limit."""
    pad_frames: int = 0
    """Repeat the last frame this many times (a mask video shorter than the video)."""
    threshold: bool = False
    first_frame_only: bool = False
    alpha: bool = False

    @property
    def unchanged(self) -> bool:
        return self.mode == "keep"


def plan_for(
    role: Role,
    facts: Facts,
    *,
    name: str,
    window: Window | None = None,
    target: VideoTarget | None = None,
    force_encode: str | None = None,
    fit_bytes: bool = False,
    bitrate_scale: float = 1.0,
) -> Plan:
    """The plan for `facts` as `role`; `InputRefused` when no plan can satisfy the rule.

    For a retry after `violations`: `force_encode` names why a stream copy was not
    enough, `fit_bytes` says a result came out over the byte limit (however small the
    source looked), `bitrate_scale` shrinks the target when an encode overshot.
    """
    rule = role.rule
    if role is Role.MASK_IMAGE:
        if target is None:
            raise ValueError("a mask image is planned against the conformed video")
        return _plan_mask_image(facts, rule, name=name, target=target)
    if role is Role.MASK_VIDEO:
        if target is None:
            raise ValueError("a mask video is planned against the conformed video")
        return _plan_mask_video(facts, rule, name=name, target=target, force_encode=force_encode)
    if rule.kind is MediaKind.IMAGE:
        return _plan_image(
            role, facts, rule, name=name, fit_bytes=fit_bytes, bitrate_scale=bitrate_scale
        )
    return _plan_video(
        role,
        facts,
        rule,
        name=name,
        window=window,
        force_encode=force_encode,
        fit_bytes=fit_bytes,
        bitrate_scale=bitrate_scale,
    )


# --- videos ------------------------------------------------------------------------


def _plan_video(
    role: Role,
    facts: Facts,
    rule: MediaRule,
    *,
    name: str,
    window: Window | None,
    force_encode: str | None,
    fit_bytes: bool,
    bitrate_scale: float,
) -> Plan:
    info = facts.info
    _require_video(info, name=name)
    duration = info.duration or 0.0
    min_fps = rule.min_fps or 0.0
    encode: list[Action] = []
    copy: list[Action] = []

    if force_encode:
        encode.append(Action(what="re-encode", why=force_encode))
    if info.codec != "h264":
        encode.append(Action(what="re-encode to H.264", why=f"the codec is {info.codec}"))
    if info.pix_fmt not in ("yuv420p", "yuvj420p"):
        encode.append(Action(what="convert to yuv420p", why=f"the pixel format is {info.pix_fmt}"))
    if info.rotation:
        encode.append(
            Action(
                what=f"turn the picture upright (its {rotation_label(info.rotation)})",
                why="the service ignores the display rotation",
            )
        )
    fps = info.nominal_fps or info.fps or min_fps
    if info.fps and not 0.67 < fps / info.fps < 1.5:
        fps = round(info.fps)  # a container's nominal rate far from the real one
    if info.variable_frame_rate:
        encode.append(
            Action(
                what=f"make the frame rate constant ({max(fps, min_fps):g} fps)",
                why="the frame rate varies",
            )
        )
    if (info.fps or 0.0) < min_fps - _EPS:
        encode.append(
            Action(
                what=f"raise the frame rate to {min_fps:g} fps",
                why=f"{info.fps:g} fps is under the minimum of {min_fps:g}",
            )
        )
    out_fps = max(fps, min_fps)

    start, seconds = 0.0, duration
    if window is not None:
        start, seconds = window.start, window.seconds
    elif rule.max_seconds is not None and duration > rule.max_seconds + _EPS:
        seconds = rule.max_seconds
    cut = start > _EPS or seconds < duration - _EPS
    if cut:
        kept = "end" if start > _EPS else "start"
        why = _cut_reason(role, rule, duration, window)
        copy.append(Action(what=f"keep {seconds:.3g} s of {duration:.3g} s (the {kept})", why=why))
        if start > _EPS:
            encode.append(
                Action(what="cut mid-stream", why="a stream copy can only start at a keyframe")
            )
        elif info.has_b_frames:
            encode.append(
                Action(
                    what=f"cut at exactly {seconds:.3g} s",
                    why="with B-frames a stream copy keeps frames past the cut",
                )
            )

    estimated = info.size_bytes * (seconds / duration if duration else 1.0)
    bitrate = None
    if estimated > rule.max_bytes or fit_bytes:
        estimated = max(estimated, rule.max_bytes + 1)
        bitrate = int(rule.max_bytes * 8 * _BITRATE_MARGIN * bitrate_scale / max(seconds, 0.1))
        encode.append(
            Action(
                what=f"re-encode at {bitrate / 1e6:.1f} Mbit/s",
                why=f"{estimated / MB:.1f} MB is over {rule.max_bytes / MB:.0f} MB",
            )
        )
    if info.has_audio:
        copy.append(Action(what="drop the audio", why="the service ignores it"))
    if facts.suffix not in _MP4_SUFFIXES:
        copy.append(
            Action(
                what="rewrap as MP4", why=f"a .{facts.suffix or '?'} file; the service takes MP4"
            )
        )
    if not facts.moov_first:
        copy.append(
            Action(
                what="move the index (moov) to the front",
                why="the service reads it before the data",
            )
        )

    if not encode and not copy:
        return Plan(role=role, kind=MediaKind.VIDEO, mode="keep", ext="mp4")
    if not encode:
        return Plan(
            role=role,
            kind=MediaKind.VIDEO,
            mode="copy",
            ext="mp4",
            actions=copy,
            seconds=seconds if cut else None,
        )
    width, height = info.width, info.height
    if width % 2 or height % 2:
        width, height = width - width % 2, height - height % 2
        encode.append(
            Action(what=f"scale to {width}x{height}", why="H.264 yuv420p needs even sides")
        )
    return Plan(
        role=role,
        kind=MediaKind.VIDEO,
        mode="encode",
        ext="mp4",
        actions=[a for a in copy if a.what != "rewrap as MP4"] + encode,
        start=start,
        frames=max(1, math.floor(seconds * out_fps + _EPS)),
        fps=out_fps,
        width=width if (width, height) != (info.width, info.height) else None,
        height=height if (width, height) != (info.width, info.height) else None,
        bitrate=bitrate,
    )


def _cut_reason(role: Role, rule: MediaRule, duration: float, window: Window | None) -> str:
    limit = rule.max_seconds or 0.0
    if window is not None and duration > limit + _EPS and window.seconds >= limit - _EPS:
        return f"at most {limit:g} s"
    if window is not None:
        kept = "end" if role is Role.FIRST_CLIP else "start"
        return (
            f"first and last clip share {CLIPS_TOTAL_SECONDS:g} s; the "
            f"{role.value.replace('_', ' ')} keeps its {kept}, which touches the generated part"
        )
    return f"the service keeps only the first {limit:g} s"


def clip_windows(
    first: tuple[float, float] | None,
    last: tuple[float, float] | None,
    *,
    total: float = CLIPS_TOTAL_SECONDS,
) -> tuple[Window | None, Window | None]:
    """Windows for the (duration, output fps) of the first and last clips.

    Each clip gets at most the per-clip limit and together at most `total`; when both
    must shrink they share the budget (a short clip leaves its unused share to the
    other). The first clip keeps its end and the last its start: those frames touch the
    generated middle. Lengths are whole frames, so the pair never exceeds the budget.
    """
    per_clip = Role.FIRST_CLIP.rule.max_seconds or total
    d1 = min(first[0], per_clip) if first else 0.0
    d2 = min(last[0], per_clip) if last else 0.0
    if first and last and d1 + d2 > total + _EPS:
        half = total / 2
        if d1 <= half:
            d2 = total - d1
        elif d2 <= half:
            d1 = total - d2
        else:
            d1 = d2 = half
    w1 = w2 = None
    if first:
        seconds = _whole_frames(d1, first[1])
        start = first[0] - seconds
        # Less than half a frame from the start is the start (no mid-stream cut).
        w1 = Window(start=start if start * first[1] > 0.5 else 0.0, seconds=seconds)
    if last:
        w2 = Window(start=0.0, seconds=_whole_frames(d2, last[1]))
    return w1, w2


def _whole_frames(seconds: float, fps: float) -> float:
    if fps <= 0:
        return seconds
    return math.floor(seconds * fps + _EPS) / fps


def output_fps(info: MediaInfo, rule: MediaRule) -> float:
    """The frame rate a conformed video of `info` will have."""
    return max(info.nominal_fps or info.fps or 0.0, rule.min_fps or 0.0)


# --- images ------------------------------------------------------------------------


def fit_sides(width: int, height: int, min_side: int, max_side: int) -> tuple[int, int] | None:
    """The size nearest to `width`x`height` with both sides in [min_side, max_side] and
    the same aspect ratio, or None when the aspect ratio cannot fit."""
    long, short = max(width, height), min(width, height)
    if long / short > max_side / min_side:
        return None
    scale = 1.0
    if long > max_side:
        scale = max_side / long
    elif short < min_side:
        scale = min_side / short
    if scale == 1.0:
        return width, height

    def side(v: int) -> int:
        return min(max_side, max(min_side, round(v * scale)))

    return side(width), side(height)


def _plan_image(
    role: Role, facts: Facts, rule: MediaRule, *, name: str, fit_bytes: bool, bitrate_scale: float
) -> Plan:
    info = facts.info
    actions: list[Action] = []
    warnings: list[str] = []
    first_frame_only = _require_image(info, name=name, actions=actions, warnings=warnings)
    fmt = info.image_format or info.codec
    encode = first_frame_only
    if fmt not in rule.formats:
        encode = True
    width, height = info.width, info.height
    if rule.min_side is not None and rule.max_side is not None:
        fitted = fit_sides(width, height, rule.min_side, rule.max_side)
        if fitted is None:
            raise InputRefused(
                f"{name}: {width}x{height} cannot fit: both sides must be in "
                f"[{rule.min_side}, {rule.max_side}] px and no scaling of this aspect ratio "
                f"({max(width, height) / min(width, height):.1f}:1) does that",
                input_name=name,
                rule=f"sides in [{rule.min_side}, {rule.max_side}] px",
            )
        if fitted != (width, height):
            encode = True
            actions.append(
                Action(
                    what=f"scale to {fitted[0]}x{fitted[1]}",
                    why=f"sides must be in [{rule.min_side}, {rule.max_side}] px",
                )
            )
            width, height = fitted
    if info.rotation:
        encode = True
        actions.append(
            Action(
                what=f"turn the picture upright (its {rotation_label(info.rotation)})",
                why="the service ignores the orientation tag",
            )
        )
    oversize = info.size_bytes > rule.max_bytes or fit_bytes
    if oversize and info.has_alpha:
        shrink = math.sqrt(rule.max_bytes / info.size_bytes) * _BITRATE_MARGIN * bitrate_scale
        width, height = round(width * shrink), round(height * shrink)
        actions.append(
            Action(
                what=f"scale to {width}x{height}",
                why=f"{info.size_bytes / MB:.1f} MB is over {rule.max_bytes / MB:.0f} MB and "
                "the transparency must stay PNG",
            )
        )
    encode = encode or oversize

    if not encode:
        same = _EXT[fmt]
        if _named_as(facts.suffix, same):
            return Plan(role=role, kind=MediaKind.IMAGE, mode="keep", ext=same, warnings=warnings)
        actions.append(Action(what=f"name it .{same}", why=f"it is {fmt}, named .{facts.suffix}"))
        return Plan(
            role=role,
            kind=MediaKind.IMAGE,
            mode="copy",
            ext=same,
            actions=actions,
            warnings=warnings,
        )

    jpeg = not info.has_alpha and (fmt in _LOSSY or oversize)
    ext: Ext = "jpg" if jpeg else "png"
    if fmt not in rule.formats:
        actions.insert(
            0,
            Action(
                what=f"convert to {'JPEG' if jpeg else 'PNG'}", why=f"{fmt.upper()} is not accepted"
            ),
        )
    elif oversize and jpeg:
        actions.append(
            Action(
                what="convert to JPEG",
                why=f"{info.size_bytes / MB:.1f} MB is over {rule.max_bytes / MB:.0f} MB",
            )
        )
    return Plan(
        role=role,
        kind=MediaKind.IMAGE,
        mode="encode",
        ext=ext,
        actions=actions,
        warnings=warnings,
        width=width if (width, height) != (info.width, info.height) else None,
        height=height if (width, height) != (info.width, info.height) else None,
        first_frame_only=first_frame_only,
        alpha=info.has_alpha,
    )


def _plan_mask_image(facts: Facts, rule: MediaRule, *, name: str, target: VideoTarget) -> Plan:
    info = facts.info
    actions: list[Action] = []
    warnings: list[str] = []
    first_frame_only = _require_image(info, name=name, actions=actions, warnings=warnings)
    size = (target.width, target.height)
    if (info.width, info.height) != size:
        actions.append(
            Action(
                what=f"scale to {size[0]}x{size[1]} (nearest neighbour)",
                why=f"the video is {size[0]}x{size[1]}",
            )
        )
        if abs(info.width / info.height - target.width / target.height) > 0.01:
            warnings.append(
                f"{name}: the mask's aspect ratio ({info.width}x{info.height}) differs from the "
                f"video's ({size[0]}x{size[1]}): it is stretched"
            )
    levels = facts.mask
    if levels is not None and not levels.binary:
        actions.append(
            Action(
                what="threshold to black and white", why="grey and anti-aliased edges are ambiguous"
            )
        )
    if (info.image_format or "") not in rule.formats:
        actions.append(Action(what="convert to PNG", why=f"{info.codec} is not accepted"))
    if info.size_bytes > rule.max_bytes:
        actions.append(Action(what="re-encode as PNG", why="over the byte limit"))
    if levels is not None and levels.white_fraction == 0.0:
        warnings.append(f"{name}: the mask is all black: nothing would be edited")
    elif levels is not None and levels.white_fraction == 1.0:
        warnings.append(f"{name}: the mask is all white: the whole picture would be edited")
    if not actions:
        same = _EXT[info.image_format or "png"]
        mode: Mode = "keep" if _named_as(facts.suffix, same) else "copy"
        return Plan(
            role=Role.MASK_IMAGE, kind=MediaKind.IMAGE, mode=mode, ext=same, warnings=warnings
        )
    return Plan(
        role=Role.MASK_IMAGE,
        kind=MediaKind.IMAGE,
        mode="encode",
        ext="png",
        actions=actions,
        warnings=warnings,
        width=target.width,
        height=target.height,
        neighbor=True,
        threshold=True,
        first_frame_only=first_frame_only,
    )


def _plan_mask_video(
    facts: Facts, rule: MediaRule, *, name: str, target: VideoTarget, force_encode: str | None
) -> Plan:
    info = facts.info
    _require_video(info, name=name)
    actions: list[Action] = []
    encode = bool(force_encode)
    if force_encode:
        actions.append(Action(what="re-encode", why=force_encode))
    if info.codec != "h264" or info.pix_fmt not in ("yuv420p", "yuvj420p"):
        encode = True
        actions.append(Action(what="re-encode to H.264", why=f"it is {info.codec} {info.pix_fmt}"))
    if abs((info.fps or 0.0) - target.fps) > 0.01 or info.variable_frame_rate:
        encode = True
        actions.append(
            Action(
                what=f"set the frame rate to {target.fps:g} fps",
                why=f"the video is {target.fps:g} fps, the mask {info.fps:g}",
            )
        )
    if (info.width, info.height) != (target.width, target.height) or info.rotation:
        encode = True
        actions.append(
            Action(
                what=f"scale to {target.width}x{target.height} (nearest neighbour)",
                why=f"the video is {target.width}x{target.height}, the mask {info.resolution}",
            )
        )
    # Frames after a frame-rate change: the source duration at the target rate.
    have = info.frame_count or 0
    if encode:
        have = math.floor((info.duration or 0.0) * target.fps + _EPS)
    pad = max(0, target.frame_count - have)
    if have != target.frame_count:
        more = have > target.frame_count
        actions.append(
            Action(
                what=(
                    f"keep the first {target.frame_count} frames"
                    if more
                    else f"repeat the last frame {pad} times"
                ),
                why=f"the video has {target.frame_count} frames, the mask {have}",
            )
        )
        # A copy can end early only where no later frame is needed to decode it.
        encode = encode or not more or info.has_b_frames
    if info.has_audio:
        actions.append(Action(what="drop the audio", why="the service ignores it"))
    if facts.suffix not in _MP4_SUFFIXES or not facts.moov_first:
        actions.append(
            Action(
                what="rewrap as MP4 with the index first",
                why="the service takes MP4 and reads its index first",
            )
        )
    warnings = []
    if abs((info.duration or 0.0) - target.duration) > 1.5 / max(target.fps, 1.0):
        warnings.append(
            f"{name}: the mask video lasts {info.duration:g} s, the video {target.duration:g} s"
        )
    if not actions:
        return Plan(
            role=Role.MASK_VIDEO, kind=MediaKind.VIDEO, mode="keep", ext="mp4", warnings=warnings
        )
    if not encode:
        return Plan(
            role=Role.MASK_VIDEO,
            kind=MediaKind.VIDEO,
            mode="copy",
            ext="mp4",
            actions=actions,
            warnings=warnings,
            seconds=target.frame_count / target.fps if target.fps else None,
        )
    return Plan(
        role=Role.MASK_VIDEO,
        kind=MediaKind.VIDEO,
        mode="encode",
        ext="mp4",
        actions=actions,
        warnings=warnings,
        frames=target.frame_count,
        fps=target.fps,
        width=target.width,
        height=target.height,
        neighbor=True,
        pad_frames=pad,
    )


# --- shared ------------------------------------------------------------------------


def _named_as(suffix: str, ext: str) -> bool:
    return suffix == ext or (ext, suffix) in {("jpg", "jpeg"), ("tiff", "tif")}


def _require_video(info: MediaInfo, *, name: str) -> None:
    if info.is_image or (info.frame_count or 0) < 2:
        raise InputRefused(
            f"{name}: a still image ({info.codec}) where a video is expected",
            input_name=name,
            rule="a video",
        )


def _require_image(
    info: MediaInfo, *, name: str, actions: list[Action], warnings: list[str]
) -> bool:
    """Refuse a video given as an image; an animated GIF or WebP keeps its first frame."""
    if info.is_image:
        return False
    if info.codec in ("gif", "webp"):
        actions.append(Action(what="keep the first frame", why=f"an animated {info.codec.upper()}"))
        warnings.append(f"{name}: animated {info.codec.upper()}: only its first frame is used")
        return True
    raise InputRefused(
        f"{name}: a {info.codec} video where an image is expected",
        input_name=name,
        rule="an image",
    )


def violations(
    info: MediaInfo,
    role: Role,
    *,
    target: VideoTarget | None = None,
    window: Window | None = None,
) -> list[str]:
    """How a conformed file still breaks its role's rule (empty when it complies)."""
    rule = role.rule
    found: list[str] = []
    if info.size_bytes > rule.max_bytes:
        found.append(f"{info.size_bytes / MB:.1f} MB is over {rule.max_bytes / MB:.0f} MB")
    if rule.kind is MediaKind.IMAGE:
        if rule.min_side and min(info.width, info.height) < rule.min_side:
            found.append(f"{info.resolution} has a side under {rule.min_side} px")
        if rule.max_side and max(info.width, info.height) > rule.max_side:
            found.append(f"{info.resolution} has a side over {rule.max_side} px")
        if target and (info.width, info.height) != (target.width, target.height):
            found.append(f"{info.resolution} is not the video's {target.width}x{target.height}")
        return found
    if info.codec != "h264":
        found.append(f"codec {info.codec}")
    if info.rotation:
        found.append(rotation_label(info.rotation))
    if rule.min_fps and (info.fps or 0.0) < rule.min_fps - 0.01:
        found.append(f"{info.fps} fps is under {rule.min_fps:g}")
    limit = window.seconds if window else rule.max_seconds
    if limit is not None and (info.duration or 0.0) > limit + _EPS:
        found.append(f"{info.duration} s is over {limit:g} s")
    if target is not None:
        if (info.width, info.height) != (target.width, target.height):
            found.append(f"{info.resolution} is not the video's {target.width}x{target.height}")
        if info.frame_count != target.frame_count:
            found.append(f"{info.frame_count} frames, the video has {target.frame_count}")
        if abs((info.fps or 0.0) - target.fps) > 0.01:
            found.append(f"{info.fps} fps, the video has {target.fps}")
    return found

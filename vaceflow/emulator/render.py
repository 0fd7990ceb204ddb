"""Render the emulator's result video from the checked inputs, in one ffmpeg pass.

The output has the provider's shape (`limits.OUTPUT`: H.264 yuv420p MP4, 30 fps, no
audio, moov first; the function's duration and resolution) and content that visibly
comes from the inputs, so a test can tell they were fetched and used:

- video_repainting: the video transformed per control_condition (false-colour depth,
  line-art scribble, coloured-edge pose), mixed with the original by `strength`;
- video_edit: the white area of the mask (image or video) tinted (or transformed per
  control_condition), or replaced by the reference image; black areas untouched;
- video_outpainting: the video centred on the scaled canvas over a generated fill;
- video_extension: first_frame/first_clip, a generated middle, last_clip/last_frame;
- image_reference: subjects drifting gently over the background image (or a backdrop
  made from the first subject) at the requested size;
- any other function (one added to `vaceflow.jobs` without a picture here): its video
  as given.

Every frame carries the "EMULATED" mark (`mark.py`), and "AI-GENERATED" at the bottom
right when `watermark` is true, as the service does.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vaceflow.emulator.inspect import CheckedInput, CheckedInputs
from vaceflow.emulator.mark import Mark, emulated_mark, watermark_mark
from vaceflow.jobs import (
    ControlCondition,
    ImageReferenceJob,
    Job,
    ObjOrBg,
    VideoEditJob,
    VideoExtensionJob,
    VideoOutpaintingJob,
    VideoRepaintingJob,
)
from vaceflow.limits import OUTPUT, Role
from vaceflow.media.ffmpeg import run_ffmpeg

__all__ = ["Rendered", "output_duration", "output_size", "render"]

_HOLD_SECONDS = 1.0
"""How long video_extension shows a first/last frame image before or after the middle."""
_DRIFT = 0.03
"""image_reference subjects drift by this fraction of the frame width."""
_CONTROL_FILTERS: dict[ControlCondition, str] = {
    ControlCondition.DEPTH: "format=gray,gblur=sigma=2,format=yuv420p,pseudocolor=preset=turbo",
    ControlCondition.SCRIBBLE: "format=gray,edgedetect=low=0.08:high=0.2,negate",
    ControlCondition.POSEBODY: "format=gray,sobel=scale=2,format=yuv420p,pseudocolor=preset=magma",
    ControlCondition.POSEBODYFACE: (
        "format=gray,sobel=scale=3,format=yuv420p,pseudocolor=preset=viridis"
    ),
}
"""What video_repainting (and video_edit's control_condition) shows of the input."""
_EDIT_TINT = "hue=h=150:s=1.8"
"""What video_edit does to the masked area when no reference image replaces it."""
_EFFECT_SCALE = 2
"""Effects run on a picture this many times smaller, then scale back up: edge and blur
filters cost several times the encode at 720p, and a softer look is fine here."""


@dataclass(frozen=True)
class Rendered:
    """The video that `render` wrote."""

    width: int
    height: int
    duration: float
    fps: int
    frames: int


def render(job: Job, checked: CheckedInputs, out: Path) -> Rendered:
    """Write the result of `job` to `out` (MP4); MediaError if ffmpeg fails."""
    width, height = output_size(job, checked)
    frames = max(1, round(output_duration(job, checked) * OUTPUT.fps))
    with tempfile.TemporaryDirectory(prefix="vaceflow-render-") as tmp:
        graph = _Graph(width, height)
        if isinstance(job, VideoRepaintingJob):
            picture = _repainting(graph, job, checked)
        elif isinstance(job, VideoEditJob):
            picture = _edit(graph, job, checked)
        elif isinstance(job, VideoOutpaintingJob):
            picture = _outpainting(graph, job, checked)
        elif isinstance(job, VideoExtensionJob):
            picture = _extension(graph, job, checked)
        elif isinstance(job, ImageReferenceJob):
            picture = _image_reference(graph, job, checked)
        else:
            picture = _as_given(graph, checked)
        marks = [emulated_mark(width, height)]
        if job.parameters.watermark:
            marks.append(watermark_mark(width, height))
        final = graph.finish(picture, marks, Path(tmp))
        run_ffmpeg(
            [
                *graph.args,
                "-filter_complex",
                ";".join(graph.chains),
                "-map",
                final,
                "-frames:v",
                str(frames),
                "-r",
                str(OUTPUT.fps),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-an",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                str(out),
            ],
            what=f"rendering the emulated {job.function.value} result",
        )
    return Rendered(width, height, frames / OUTPUT.fps, OUTPUT.fps, frames)


def output_size(job: Job, checked: CheckedInputs) -> tuple[int, int]:
    """The service's output resolution for `job` (even sides, 720p class)."""
    if isinstance(job, ImageReferenceJob) or (
        isinstance(job, VideoEditJob) and "size" in job.parameters.model_fields_set
    ):
        w, h = job.parameters.size.value.split("*")
        return int(w), int(h)
    if isinstance(job, VideoOutpaintingJob):
        p, info = job.parameters, checked.get(Role.VIDEO).info
        return _fit_720p(
            info.width * (p.left_scale + p.right_scale - 1),
            info.height * (p.top_scale + p.bottom_scale - 1),
        )
    if isinstance(job, VideoExtensionJob):
        order = (Role.FIRST_CLIP, Role.LAST_CLIP, Role.FIRST_FRAME, Role.LAST_FRAME)
        source = next(item for role in order if (item := checked.first(role)) is not None)
        return _fit_720p(source.info.width, source.info.height)
    info = checked.get(Role.VIDEO).info
    return _fit_720p(info.width, info.height)


def output_duration(job: Job, checked: CheckedInputs) -> float:
    """Seconds of output: fixed for image_reference and extension, else the (cut) video's."""
    if isinstance(job, ImageReferenceJob | VideoExtensionJob):
        return OUTPUT.fixed_seconds
    return min(_seconds(checked.get(Role.VIDEO)), OUTPUT.max_seconds)


def _fit_720p(width: float, height: float) -> tuple[int, int]:
    """Keep the size when within 1280x720 (either orientation), else scale down to fit."""
    long_side, short_side = max(width, height), min(width, height)
    k = min(1.0, OUTPUT.max_long_side / long_side, OUTPUT.max_short_side / short_side)
    return _even(width * k), _even(height * k)


def _even(value: float) -> int:
    return max(2, int(value + 1e-6) // 2 * 2)


def _cover(width: int, height: int) -> str:
    """Scale to fill width x height, cropping the overflow."""
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=increase,"
        f"crop={width}:{height},setsar=1"
    )


def _reduced(effect: str, width: int, height: int) -> str:
    """`effect` applied at a reduced size, back at width x height in yuv420p."""
    small = f"scale={_even(width / _EFFECT_SCALE)}:{_even(height / _EFFECT_SCALE)}"
    return f"{small},{effect},scale={width}:{height},format=yuv420p"


def _seconds(item: CheckedInput) -> float:
    if item.seconds is None:
        raise ValueError(f"{item.field} is not a video")
    return item.seconds


class _Graph:
    """ffmpeg inputs and a filter graph being built; labels are handed out in order."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.args: list[str] = []
        self.chains: list[str] = []
        self._inputs = 0
        self._labels = 0

    def _input(self, *args: str) -> str:
        self.args += args
        self._inputs += 1
        return f"[{self._inputs - 1}:v]"

    def chain(self, sources: str | list[str], filters: str) -> str:
        self._labels += 1
        label = f"[v{self._labels}]"
        joined = sources if isinstance(sources, str) else "".join(sources)
        self.chains.append(f"{joined}{filters}{label}")
        return label

    def video(self, item: CheckedInput) -> str:
        """The part of a video the service uses (its first `seconds`)."""
        return self._input("-t", f"{_seconds(item):.3f}", "-i", str(item.path))

    def image(self, item: CheckedInput, size: tuple[int, int] | None = None) -> str:
        """A single frame, covering `size` if given; overlay holds it to the end."""
        label = self._input("-i", str(item.path))
        return self.chain(label, _cover(*size)) if size else label

    def still(self, item: CheckedInput, frames: int | None = None, then: str = "") -> str:
        """An image at the output size as a 30 fps stream, `frames` long or endless.

        The one frame is scaled (and passed through `then`) before it is repeated, so
        the work is done once. Looped in the graph rather than by `-loop 1`, which only
        the image2 demuxer knows: a downloaded file may have no telling suffix.
        """
        loops = -1 if frames is None else max(0, frames - 1)
        picture = self.image(item, (self.width, self.height))
        filters = f"{then}," if then else ""
        return self.chain(
            picture,
            f"{filters}format=yuv420p,loop=loop={loops}:size=1:start=0,"
            f"settb=1/{OUTPUT.fps},setpts=N,fps={OUTPUT.fps}",
        )

    def clip(self, item: CheckedInput, frames: int) -> str:
        """A video at the output's size and rate, exactly `frames` long (concat/xfade)."""
        return self.chain(
            self.video(item),
            f"{_cover(self.width, self.height)},fps={OUTPUT.fps},format=yuv420p,"
            f"tpad=stop=-1:stop_mode=clone,trim=end_frame={frames},setpts=PTS-STARTPTS",
        )

    def cover(self, source: str) -> str:
        return self.chain(source, _cover(self.width, self.height))

    def split(self, source: str, count: int = 2) -> list[str]:
        self._labels += 1
        labels = [f"[v{self._labels}s{i}]" for i in range(count)]
        self.chains.append(f"{source}split={count}{''.join(labels)}")
        return labels

    def finish(self, picture: str, marks: list[Mark], tmp: Path) -> str:
        """Constant 30 fps (last frame held, ffmpeg stops at the frame count), marks on top."""
        current = self.chain(
            self.cover(picture),
            f"fps={OUTPUT.fps},format=yuv420p,tpad=stop=-1:stop_mode=clone",
        )
        for i, mark in enumerate(marks):
            box = self._input(*mark.write(tmp / f"mark{i}.rgba"))
            current = self.chain([current, box], f"overlay={mark.x}:{mark.y}:format=auto")
        return self.chain(current, "scale=out_range=tv,format=yuv420p")


def _repainting(g: _Graph, job: VideoRepaintingJob, checked: CheckedInputs) -> str:
    """The control transform of the video, mixed back with it by `strength`."""
    source = g.chain(g.cover(g.video(checked.get(Role.VIDEO))), "format=yuv420p")
    effect = _reduced(_CONTROL_FILTERS[job.parameters.control_condition], g.width, g.height)
    strength = job.parameters.strength
    if strength >= 1.0:
        mixed = g.chain(source, effect)
    else:
        original, feed = g.split(source)
        mixed = g.chain(
            [g.chain(feed, effect), original],
            f"blend=all_mode=normal:all_opacity={strength:.3f}",
        )
    ref = checked.first(Role.REF_IMAGE)
    if ref is None:
        return mixed
    return _thumbnail(g, mixed, ref)


def _thumbnail(g: _Graph, under: str, ref: CheckedInput) -> str:
    """The reference image small at the bottom right: it was used, and not by much."""
    margin = max(2, g.height // 40)
    thumb = g.chain(g.image(ref), f"scale=-2:{_even(g.height / 4)},setsar=1")
    return g.chain([under, thumb], f"overlay=W-w-{margin}:H-h-{margin}")


def _edit(g: _Graph, job: VideoEditJob, checked: CheckedInputs) -> str:
    """The masked (white) area changed, at the video's own size; black areas kept.

    The mask is used as given on every frame (as mask_type "fixed"): tracking an object
    is the model's work, not the emulator's."""
    video = checked.get(Role.VIDEO)
    size = (video.info.width, video.info.height)
    source = g.chain(g.video(video), "setsar=1,format=yuv420p")
    ref = checked.first(Role.REF_IMAGE)
    if ref is not None:
        keep, changed = source, g.chain(g.image(ref, size), "format=yuv420p")
    else:
        keep, feed = g.split(source)
        condition = job.parameters.control_condition
        effect = _CONTROL_FILTERS[ControlCondition(condition.value)] if condition else _EDIT_TINT
        changed = g.chain(feed, _reduced(effect, *size))
    mask_image = checked.first(Role.MASK_IMAGE)
    mask_source = (
        g.image(mask_image) if mask_image is not None else g.video(checked.get(Role.MASK_VIDEO))
    )
    return g.chain([keep, changed, _yuv_mask(g, mask_source)], "maskedmerge,format=yuv420p")


def _yuv_mask(g: _Graph, source: str) -> str:
    """The mask, thresholded to 0/255, as a yuv420p picture with the mask in every plane.

    maskedmerge mixes plane by plane, and a grey picture converted to yuv420p has flat
    chroma (128): the colour would be half mixed everywhere. Building the planes
    directly keeps black areas exactly untouched, at a third of alphamerge+overlay's cost.
    """
    luma, chroma = g.split(g.chain(source, "format=gray,lut=c0='if(gt(val,127),255,0)',setsar=1"))
    u, v = g.split(g.chain(chroma, "scale=w=ceil(iw/2):h=ceil(ih/2),setsar=1"))
    return g.chain([luma, u, v], "mergeplanes=map1s=1:map2s=2:format=yuv420p")


def _outpainting(g: _Graph, job: VideoOutpaintingJob, checked: CheckedInputs) -> str:
    """The video centred on the extended canvas (already fitted to 720p) over a fill."""
    video, p = checked.get(Role.VIDEO), job.parameters
    kx = g.width / (video.info.width * (p.left_scale + p.right_scale - 1))
    ky = g.height / (video.info.height * (p.top_scale + p.bottom_scale - 1))
    inner_w, inner_h = _even(video.info.width * kx), _even(video.info.height * ky)
    x = min(_even(video.info.width * (p.left_scale - 1) * kx), g.width - inner_w)
    y = min(_even(video.info.height * (p.top_scale - 1) * ky), g.height - inner_h)
    source = g.chain(g.video(video), f"scale={inner_w}:{inner_h},setsar=1,format=yuv420p")
    front, feed = g.split(source)
    fill = g.chain(
        feed,
        f"scale={max(2, g.width // 16)}:{max(2, g.height // 16)},"
        f"scale={g.width}:{g.height},hue=s=0.4:b=-1,setsar=1",
    )
    return g.chain([fill, front], f"overlay={x}:{y}")


def _extension(g: _Graph, job: VideoExtensionJob, checked: CheckedInputs) -> str:
    """[first_frame held][first_clip] generated middle [last_clip][last_frame held], 5 s."""
    fps = OUTPUT.fps
    total = round(OUTPUT.fixed_seconds * fps)
    clips = {
        r: round(_seconds(c) * fps)
        for r in (Role.FIRST_CLIP, Role.LAST_CLIP)
        if (c := checked.first(r)) is not None
    }
    images = [r for r in (Role.FIRST_FRAME, Role.LAST_FRAME) if checked.first(r) is not None]
    room = total - sum(clips.values()) - fps // 2
    hold = max(1, min(round(_HOLD_SECONDS * fps), room // max(1, len(images))))

    def part(role: Role) -> tuple[str, int] | None:
        item = checked.first(role)
        if item is None:
            return None
        if role in clips:
            return g.clip(item, clips[role]), clips[role]
        return g.still(item, hold), hold

    head = _sequence(g, [part(Role.FIRST_FRAME), part(Role.FIRST_CLIP)])
    tail = _sequence(g, [part(Role.LAST_CLIP), part(Role.LAST_FRAME)])
    head_n = head[1] if head else 0
    middle = max(0, total - head_n - (tail[1] if tail else 0))
    start, end = head_n / fps, (head_n + middle) / fps
    if head and tail and middle:
        a = g.chain(head[0], f"tpad=stop={middle}:stop_mode=clone")
        b = g.chain(tail[0], f"tpad=start={middle}:start_mode=clone")
        joined = g.chain([a, b], f"xfade=transition=fade:duration={middle / fps}:offset={start}")
    elif head and tail:
        joined = g.chain([head[0], tail[0]], f"concat=n=2:v=1:a=0,fps={fps}")
    elif head:
        joined = g.chain(
            head[0],
            f"tpad=stop={middle}:stop_mode=clone,"
            f"hue=h='40*(t-{start})':s='1+0.5*(t-{start})':enable='gte(t,{start})'",
        )
    else:
        assert tail is not None
        joined = g.chain(
            tail[0],
            f"tpad=start={middle}:start_mode=clone,"
            f"hue=h='40*({end}-t)':s='1+0.5*({end}-t)':enable='lt(t,{end})'",
        )
    guide = checked.first(Role.VIDEO)
    if guide is None or not middle:
        return joined
    small = _cover(_even(g.width / _EFFECT_SCALE), _even(g.height / _EFFECT_SCALE))
    lines = g.chain(
        g.video(guide),
        f"{small},fps={fps},format=gray,edgedetect=low=0.1:high=0.3,"
        f"scale={g.width}:{g.height},format=yuv420p,trim=end_frame={middle},"
        f"setpts=PTS-STARTPTS,tpad=start={head_n}:stop=-1:color=black",
    )
    return g.chain(
        [joined, lines], f"blend=c0_mode=lighten:c0_opacity=0.6:enable='between(t,{start},{end})'"
    )


def _sequence(g: _Graph, parts: list[tuple[str, int] | None]) -> tuple[str, int] | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    joined = g.chain(
        [label for label, _ in present], f"concat=n={len(present)}:v=1:a=0,fps={OUTPUT.fps}"
    )
    return joined, sum(n for _, n in present)


def _as_given(g: _Graph, checked: CheckedInputs) -> str:
    """A function with no picture of its own here (a new one, see CONTRIBUTING.md): its
    video as given, so a run of it still ends with a video made from its input."""
    return g.chain(g.video(checked.get(Role.VIDEO)), "setsar=1,format=yuv420p")


def _image_reference(g: _Graph, job: ImageReferenceJob, checked: CheckedInputs) -> str:
    """Subjects drifting gently over the background image, or over a backdrop made
    from the first subject when no image is marked 'bg'."""
    refs = checked.all(Role.REF_IMAGE)
    roles = job.parameters.obj_or_bg or [ObjOrBg.OBJ] * len(refs)
    subjects = [r for r, role in zip(refs, roles, strict=True) if role is ObjOrBg.OBJ]
    backgrounds = [r for r, role in zip(refs, roles, strict=True) if role is ObjOrBg.BG]
    if backgrounds:
        picture = g.still(backgrounds[0])
    else:
        small = f"scale={max(2, g.width // 16)}:{max(2, g.height // 16)}"
        picture = g.still(subjects[0], then=f"{small},scale={g.width}:{g.height},hue=s=0.5:b=-2")
    period = OUTPUT.fixed_seconds
    amp = round(g.width * _DRIFT)
    for i, subject in enumerate(subjects):
        n = len(subjects)
        box_w, box_h = _even(g.width * 0.8 / n), _even(g.height * 0.6)
        sprite = g.chain(
            g.image(subject),
            f"scale={box_w}:{box_h}:force_original_aspect_ratio=decrease,setsar=1",
        )
        cx, cy = round(g.width * (i + 0.5) / n), round(g.height * 0.55)
        phase = 2 * math.pi * i / n
        picture = g.chain(
            [picture, sprite],
            f"overlay=x='{cx}-w/2+{amp}*sin(2*PI*t/{period}+{phase:.3f})'"
            f":y='{cy}-h/2+{amp // 2}*cos(2*PI*t/{period}+{phase:.3f})'",
        )
    return picture

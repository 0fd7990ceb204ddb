"""Carry out a conform plan: one ffmpeg run (or a file copy) from source to output.

The arguments are built with ffmpeg-python from the plan's fields alone, so what runs
is exactly what the plan printed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import ffmpeg

from vaceflow.limits import MediaKind
from vaceflow.media.facts import MASK_THRESHOLD
from vaceflow.media.ffmpeg import run_ffmpeg
from vaceflow.media.plan import Plan

__all__ = ["ENCODE_PRESET", "FIT_PRESET", "execute", "ffmpeg_args"]

ENCODE_PRESET = "veryfast"
"""x264 speed/size trade-off: the service re-encodes anyway, so speed wins."""
FIT_PRESET = "ultrafast"
"""For encodes at a bitrate that fits the byte limit: at tens of Mbit/s the preset
hardly shows, and it is about 4x faster on exactly the largest inputs."""
_CRF = 18
_JPEG_QUALITY = 2


def execute(plan: Plan, source: Path, output: Path) -> None:
    """Write the conformed file to `output` (replaced if present)."""
    args = ffmpeg_args(plan, source, output)
    if args is None:
        shutil.copyfile(source, output)
        return
    run_ffmpeg(args, what=f"conforming the {plan.role.value.replace('_', ' ')} ({source.name})")


def ffmpeg_args(plan: Plan, source: Path, output: Path) -> list[str] | None:
    """The ffmpeg arguments (without the binary), or None when a file copy is enough."""
    if plan.mode == "keep" or (plan.mode == "copy" and plan.kind is MediaKind.IMAGE):
        return None
    if plan.kind is MediaKind.IMAGE:
        return _image_args(plan, source, output)
    if plan.mode == "copy":
        out_opts: dict[str, Any] = {"c": "copy", "movflags": "+faststart", "f": "mp4"}
        if plan.seconds is not None:
            out_opts["t"] = f"{plan.seconds:.6f}"
        stream = ffmpeg.input(str(source))["v:0"]
        return list(ffmpeg.output(stream, str(output), **out_opts).get_args())
    return _encode_args(plan, source, output)


def _encode_args(plan: Plan, source: Path, output: Path) -> list[str]:
    in_opts: dict[str, Any] = {"ss": f"{plan.start:.6f}"} if plan.start else {}
    video = ffmpeg.input(str(source), **in_opts)["v:0"]
    if plan.fps is not None:
        video = video.filter("fps", fps=f"{plan.fps:.6g}")
    if plan.width and plan.height:
        video = video.filter(
            "scale", plan.width, plan.height, flags="neighbor" if plan.neighbor else "bicubic"
        )
    if plan.pad_frames:
        video = video.filter("tpad", stop_mode="clone", stop=plan.pad_frames)
    out_opts: dict[str, Any] = {
        "vcodec": "libx264",
        "preset": FIT_PRESET if plan.bitrate else ENCODE_PRESET,
        "pix_fmt": "yuv420p",
        "movflags": "+faststart",
        "f": "mp4",
    }
    if plan.frames is not None:
        out_opts["frames:v"] = plan.frames
    if plan.bitrate:
        out_opts.update({"b:v": plan.bitrate, "maxrate": plan.bitrate, "bufsize": plan.bitrate})
    else:
        out_opts["crf"] = _CRF
    return list(ffmpeg.output(video, str(output), **out_opts).get_args())


def _image_args(plan: Plan, source: Path, output: Path) -> list[str]:
    image = ffmpeg.input(str(source))["v:0"]
    if plan.threshold:
        image = image.filter("format", "gray").filter(
            "lut", c0=f"if(gte(val,{MASK_THRESHOLD}),255,0)"
        )
    if plan.width and plan.height:
        image = image.filter(
            "scale", plan.width, plan.height, flags="neighbor" if plan.neighbor else "lanczos"
        )
    out_opts: dict[str, Any] = {"frames:v": 1, "update": 1}
    if plan.ext == "jpg":
        out_opts.update({"pix_fmt": "yuvj444p", "q:v": _JPEG_QUALITY, "f": "image2"})
    else:
        pix_fmt = "gray" if plan.threshold else "rgba" if plan.alpha else "rgb24"
        out_opts.update({"pix_fmt": pix_fmt, "vcodec": "png", "f": "image2"})
    return list(ffmpeg.output(image, str(output), **out_opts).get_args())

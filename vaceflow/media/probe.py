"""Probe a media file with PyAV (the wheel-bundled ffmpeg has no ffprobe).

Demuxes packets without decoding to count frames and detect variable frame rate, and
decodes at most one frame to read the display rotation. Fast enough to run on every
input and every output.
"""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path

import av
import av.error
from pydantic import BaseModel

from vaceflow.errors import MediaError

__all__ = ["MediaInfo", "probe"]

_IMAGE_CODECS = {
    "png": "png",
    "mjpeg": "jpeg",
    "bmp": "bmp",
    "tiff": "tiff",
    "webp": "webp",
    "gif": "gif",
    "av1": "avif",
    "libdav1d": "avif",
    "hevc": "heic",
}
_IMAGE_BRANDS = frozenset({"avif", "avis", "heic", "heix", "mif1"})
"""ISO-BMFF major brands of still images (the mov demuxer reads AVIF and HEIF)."""
_IMAGE_DEMUXERS = {
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "bmp_pipe",
    "tiff_pipe",
    "webp_pipe",
    "gif",
    "gif_pipe",
    "jpegls_pipe",
    "avif",
}


class MediaInfo(BaseModel):
    """What a file is, as a person would describe it."""

    path: str
    size_bytes: int
    container: str
    """Demuxer names, e.g. 'mov,mp4,m4a,3gp,3g2,mj2' or 'png_pipe'."""
    is_image: bool
    codec: str
    image_format: str | None = None
    """jpeg, png, bmp, tiff, webp, gif... for still images."""
    width: int
    """Displayed width: rotation metadata applied."""
    height: int
    coded_width: int
    coded_height: int
    rotation: int = 0
    """Degrees the player turns the picture clockwise (0, 90, 180, 270); say it to a
    person with `rotation_label`, in ffmpeg's own terms."""
    fps: float | None = None
    """Average frame rate (frames / duration) for video."""
    nominal_fps: float | None = None
    variable_frame_rate: bool = False
    duration: float | None = None
    frame_count: int | None = None
    pix_fmt: str | None = None
    has_alpha: bool = False
    has_audio: bool = False
    has_b_frames: bool = False
    """Frames are stored out of display order: a stream-copy cut cannot end exactly."""

    @property
    def is_mp4(self) -> bool:
        return "mp4" in self.container.split(",")

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe `path`; MediaError when it is not readable media."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{p}: no such file")
    size = p.stat().st_size
    if size == 0:
        raise MediaError(f"{p}: the file is empty")
    try:
        with av.open(str(p)) as container:
            return _describe(p, size, container)
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"{p}: not readable media ({exc})") from exc


def _describe(p: Path, size: int, container: av.container.InputContainer) -> MediaInfo:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        raise MediaError(f"{p}: no video or image stream (streams: {', '.join(kinds) or 'none'})")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    codec = ctx.name
    pix_fmt = ctx.pix_fmt
    fmt_name = container.format.name
    brand = str(container.metadata.get("major_brand", "")).strip()
    is_image = (
        fmt_name in _IMAGE_DEMUXERS
        or (fmt_name.endswith("_pipe") and codec in _IMAGE_CODECS)
        or brand in _IMAGE_BRANDS
    )
    has_audio = bool(container.streams.audio)

    # Demux (no decode) to count frames and collect timestamps.
    pts: list[int] = []
    count = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        count += 1
        if packet.pts is not None:
            pts.append(packet.pts)
    if count == 0:
        raise MediaError(f"{p}: no frames (truncated or empty stream)")

    rotation = 0
    if not is_image or codec in ("mjpeg", "png"):
        rotation = _rotation(container, stream)
    width, height = ctx.width, ctx.height
    if width <= 0 or height <= 0:
        raise MediaError(f"{p}: no picture size (damaged file)")

    fps = nominal = duration = None
    vfr = False
    if not is_image or count > 1:
        tb = stream.time_base or Fraction(1, 1000)
        pts.sort()
        if len(pts) >= 2:
            deltas = [b - a for a, b in itertools.pairwise(pts) if b > a]
            step = (deltas and sorted(deltas)[len(deltas) // 2]) or 1
            duration = float((pts[-1] - pts[0] + step) * tb)
            vfr = bool(deltas) and (max(deltas) - min(deltas)) > max(1, step * 0.25)
        elif stream.duration:
            duration = float(stream.duration * tb)
        if not duration and container.duration:
            duration = container.duration / 1_000_000
        nominal = float(stream.guessed_rate) if stream.guessed_rate else None
        fps = count / duration if duration else nominal
    swap = rotation % 180 == 90
    return MediaInfo(
        path=str(p),
        size_bytes=size,
        container=fmt_name,
        is_image=is_image and count == 1,
        codec=codec,
        image_format=_IMAGE_CODECS.get(codec) if is_image else None,
        width=height if swap else width,
        height=width if swap else height,
        coded_width=width,
        coded_height=height,
        rotation=rotation,
        fps=round(fps, 3) if fps else None,
        nominal_fps=round(nominal, 3) if nominal else None,
        variable_frame_rate=vfr,
        duration=round(duration, 3) if duration else None,
        frame_count=count,
        pix_fmt=pix_fmt,
        has_alpha=_has_alpha(pix_fmt or ""),
        has_audio=has_audio,
        has_b_frames=bool(ctx.has_b_frames),
    )


def display_rotation(rotation: int) -> int:
    """`rotation` as ffmpeg reports it ("Display Matrix: rotation of 90.00 degrees", the
    angle its -display_rotation option takes): counter-clockwise, in [-180, 180)."""
    return (180 - rotation) % 360 - 180


def rotation_label(rotation: int) -> str:
    """`display rotation 90°`: the figure a person finds in ffmpeg's own output."""
    return f"display rotation {display_rotation(rotation)}°"


def _rotation(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """Display rotation from the first decoded frame (PyAV applies the display matrix)."""
    try:
        container.seek(0, stream=stream)
        for frame in container.decode(stream):
            return round(-getattr(frame, "rotation", 0)) % 360
    except (av.error.FFmpegError, ValueError):
        return 0
    return 0


def _has_alpha(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("rgba", "bgra", "argb", "abgr", "yuva", "ya", "gbrap", "pal8"))

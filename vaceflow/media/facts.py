"""Everything the conform planner needs to know about a file, read once.

The probe says what the media is; two facts it does not say are read here: whether an
MP4's index (moov) comes before its data (players and the service fetch it first),
and, for masks, whether the picture is already strictly black and white.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import av
import av.error
from pydantic import BaseModel

from vaceflow.errors import InputRefused, MediaError
from vaceflow.media.probe import MediaInfo, probe

__all__ = ["MASK_THRESHOLD", "Facts", "MaskLevels", "gather_facts", "moov_first", "read_mask"]

MASK_THRESHOLD = 128
"""Grey levels at or above this are white (edit), below it black (keep)."""


class MaskLevels(BaseModel):
    """The first picture of a mask, after thresholding."""

    binary: bool
    """Already only pure black (0) and pure white (255)."""
    white_fraction: float


class Facts(BaseModel):
    info: MediaInfo
    suffix: str
    """The file name's extension, lower case without the dot ('' when none)."""
    moov_first: bool = True
    mask: MaskLevels | None = None


def gather_facts(path: Path, *, name: str, mask: bool = False) -> Facts:
    """Probe `path`; an unreadable file is refused (it cannot be conformed to anything)."""
    try:
        info = probe(path)
    except MediaError as exc:
        raise InputRefused(f"{name}: {exc}", input_name=name, rule="readable media") from exc
    is_mp4_family = not info.is_image and info.is_mp4
    return Facts(
        info=info,
        suffix=path.suffix.lower().lstrip("."),
        moov_first=moov_first(path) if is_mp4_family else True,
        mask=read_mask(path) if mask and info.is_image else None,
    )


def moov_first(path: Path) -> bool:
    """Whether the top-level 'moov' box comes before 'mdat' (false when either is missing)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            box_size, box_type = struct.unpack(">I4s", head[:8])
            if box_type == b"moov":
                return True
            if box_type == b"mdat":
                return False
            if box_size == 1 and len(head) == 16:
                box_size = struct.unpack(">Q", head[8:16])[0]
            elif box_size == 0:
                return False
            if box_size < 8:
                return False
            pos += box_size
    return False


def read_mask(path: Path | os.PathLike[str]) -> MaskLevels:
    """Threshold the first picture of `path` and measure it."""
    import numpy as np  # only masks need it: every flow run's start-up is spared its import

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            grey = frame.to_ndarray(format="gray")
    except (av.error.FFmpegError, StopIteration, ValueError) as exc:
        raise MediaError(f"{path}: cannot decode the mask ({exc})") from exc
    white = grey >= MASK_THRESHOLD
    binary = bool(np.isin(grey, (0, 255)).all())
    return MaskLevels(binary=binary, white_fraction=float(white.mean()))

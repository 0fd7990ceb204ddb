"""A contact sheet of a video: a few frames in a grid, each labelled with its time.

For people skimming results in the catalog: one PNG shows how a clip develops. Made
with PyAV and numpy only; the labels use vaceflow's built-in pixel font
(`vaceflow.pixelfont`), so no font file (and no ffmpeg drawtext) is needed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error

from vaceflow.errors import MediaError
from vaceflow.pixelfont import GLYPH_HEIGHT, text_mask, text_width

if TYPE_CHECKING:  # numpy is imported where a sheet is drawn: a run loads it after its wait
    import numpy as np
    import numpy.typing as npt

    Image = npt.NDArray[np.uint8]

__all__ = ["Thumbnail", "make_thumbnail", "sheet_size"]

GAP = 6
BACKGROUND = (24, 24, 24)
LABEL_SCALE = 2


@dataclass(frozen=True)
class Thumbnail:
    path: Path
    width: int
    height: int
    times: tuple[float, ...]
    """Seconds into the video of each tile, left to right, top to bottom."""


def sheet_size(
    video_width: int, video_height: int, *, frames: int = 6, columns: int = 3, tile_width: int = 320
) -> tuple[int, int]:
    """(width, height) of the sheet `make_thumbnail` makes for a video of this size."""
    tile_w, tile_h = _tile_size(video_width, video_height, tile_width)
    cols = min(columns, frames)
    rows = math.ceil(frames / cols)
    return cols * tile_w + (cols + 1) * GAP, rows * tile_h + (rows + 1) * GAP


def make_thumbnail(
    video: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    frames: int = 6,
    columns: int = 3,
    tile_width: int = 320,
    labels: bool = True,
) -> Thumbnail:
    """Write a PNG grid of `frames` frames spread evenly over `video`; MediaError if unreadable."""
    if frames < 1 or columns < 1:
        raise ValueError("frames and columns must be at least 1")
    src = Path(video)
    try:
        with av.open(str(src)) as container:
            tiles, times = _grab(container, frames, tile_width)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{src}: cannot read frames for a thumbnail ({exc})") from exc
    if labels:
        for tile, t in zip(tiles, times, strict=True):
            _label(tile, _clock(t))
    sheet = _grid(tiles, min(columns, frames), frames)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_png(sheet))
    return Thumbnail(path=out, width=sheet.shape[1], height=sheet.shape[0], times=tuple(times))


def _tile_size(width: int, height: int, tile_width: int) -> tuple[int, int]:
    return tile_width, max(2, round(tile_width * height / width / 2) * 2)


def _grab(
    container: av.container.InputContainer, count: int, tile_width: int
) -> tuple[list[Image], list[float]]:
    """`count` frames at evenly spread times (the middle of each slice), as RGB tiles."""
    import numpy as np

    if not container.streams.video:
        raise ValueError("no video stream")
    stream = container.streams.video[0]
    duration = _duration(container, stream)
    targets = [duration * (i + 0.5) / count for i in range(count)]
    tiles: list[Image] = []
    times: list[float] = []
    for target in targets:
        frame = _frame_at(container, stream, target)
        if frame is None:
            if not tiles:
                raise ValueError("no decodable frame")
            tiles.append(tiles[-1].copy())
            times.append(times[-1])
            continue
        rotation = round(-getattr(frame, "rotation", 0)) % 360
        shown_w, shown_h = (
            (frame.height, frame.width) if rotation % 180 == 90 else (frame.width, frame.height)
        )
        tile_w, tile_h = _tile_size(shown_w, shown_h, tile_width)
        scaled_w, scaled_h = (tile_h, tile_w) if rotation % 180 == 90 else (tile_w, tile_h)
        rgb = frame.reformat(width=scaled_w, height=scaled_h, format="rgb24").to_ndarray()
        tiles.append(np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90))))
        times.append(float(frame.time or 0.0))
    return tiles, times


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _frame_at(
    container: av.container.InputContainer, stream: av.VideoStream, target: float
) -> av.VideoFrame | None:
    """The first frame shown at or after `target` seconds (the last one if none is)."""
    base = stream.time_base
    container.seek(int(target / base) if base else 0, stream=stream, backward=True)
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is not None and frame.time >= target - 1e-3:
            return frame
    return last


def _grid(tiles: list[Image], columns: int, frames: int) -> Image:
    import numpy as np

    tile_h = max(t.shape[0] for t in tiles)
    tile_w = max(t.shape[1] for t in tiles)
    rows = math.ceil(frames / columns)
    sheet = np.empty(
        (rows * tile_h + (rows + 1) * GAP, columns * tile_w + (columns + 1) * GAP, 3), np.uint8
    )
    sheet[:] = BACKGROUND
    for i, tile in enumerate(tiles):
        row, col = divmod(i, columns)
        y = GAP + row * (tile_h + GAP) + (tile_h - tile.shape[0]) // 2
        x = GAP + col * (tile_w + GAP) + (tile_w - tile.shape[1]) // 2
        sheet[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return sheet


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _label(tile: Image, text: str) -> None:
    """White text on a black box at the tile's bottom-left corner, drawn in place."""
    s = LABEL_SCALE
    pad = 2 * s
    width = text_width(text, s) + 2 * pad
    height = GLYPH_HEIGHT * s + 2 * pad
    if width > tile.shape[1] or height > tile.shape[0]:
        return
    box = tile[tile.shape[0] - height :, :width]
    box[:] = (0, 0, 0)
    box[pad : height - pad, pad : width - pad][text_mask(text, s)] = (255, 255, 255)


def _png(image: Image) -> bytes:
    codec = av.CodecContext.create("png", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width = image.shape[1]
    codec.height = image.shape[0]
    codec.pix_fmt = "rgb24"
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(p) for p in packets)

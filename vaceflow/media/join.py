"""Chaining video_extension segments into one long video.

Each segment after the first continues the last seconds of the one before
(`tail_clip`), and the service's extension output begins with that clip's own frames
(the model keeps its first_clip, and so does the emulator). Joining therefore drops
those overlapping frames from every later segment (`overlap_frames`), so the result
has no repeated stretch at a seam, and re-encodes once to the output's shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vaceflow.errors import MediaError
from vaceflow.limits import CLIPS_TOTAL_SECONDS, OUTPUT
from vaceflow.media.execute import ENCODE_PRESET
from vaceflow.media.ffmpeg import run_ffmpeg
from vaceflow.media.probe import MediaInfo, probe

__all__ = ["join_segments", "overlap_frames", "tail_clip"]

_CRF = 18


def _frames(info: MediaInfo) -> int:
    if info.frame_count:
        return info.frame_count
    if info.duration and info.fps:
        return round(info.duration * info.fps)
    raise MediaError(f"{info.path}: cannot tell how many frames it has")


def tail_clip(video: Path, seconds: float, output: Path) -> Path:
    """The last `seconds` of `video` (whole frames) as an MP4 fit for `first_clip_url`.

    Frame-exact (decoded and re-encoded; a stream copy cuts at key frames only).
    """
    if not 0 < seconds <= CLIPS_TOTAL_SECONDS:
        raise MediaError(
            f"a first_clip lasts more than 0 and at most {CLIPS_TOTAL_SECONDS:g} s, not {seconds:g}"
        )
    info = probe(video)
    fps = info.fps or OUTPUT.fps
    total = _frames(info)
    keep = min(total, max(1, int(seconds * fps + 1e-6)))
    output.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        [
            "-i",
            str(video),
            "-map",
            "0:v:0",
            "-vf",
            f"trim=start_frame={total - keep},setpts=PTS-STARTPTS",
            "-frames:v",
            str(keep),
            *_encode_options(),
            str(output),
        ],
        what=f"cutting the last {seconds:g} s of {video.name}",
    )
    return output


def overlap_frames(clip: Path, fps: float = OUTPUT.fps) -> int:
    """Frames a segment made from `clip` starts with that repeat it (at the output's rate)."""
    info = probe(clip)
    if not info.duration:
        raise MediaError(f"{clip}: no duration")
    return round(info.duration * fps)


def join_segments(segments: Sequence[Path], overlaps: Sequence[int], output: Path) -> Path:
    """One MP4 of `segments` in order, the first `overlaps[i]` frames of each dropped.

    Every segment is brought to the first one's size and the output's frame rate, then
    all are encoded once (H.264, yuv420p, `OUTPUT.fps`, moov first, no audio).
    """
    if not segments or len(segments) != len(overlaps):
        raise MediaError("join needs one overlap (frames to drop) per segment")
    first = probe(segments[0])
    width, height = first.width, first.height
    inputs: list[str] = []
    chains: list[str] = []
    for i, (segment, drop) in enumerate(zip(segments, overlaps, strict=True)):
        inputs += ["-i", str(segment)]
        chains.append(
            f"[{i}:v:0]fps={OUTPUT.fps},trim=start_frame={drop},setpts=PTS-STARTPTS,"
            f"scale={width}:{height},setsar=1,format=yuv420p[s{i}]"
        )
    labels = "".join(f"[s{i}]" for i in range(len(segments)))
    graph = ";".join([*chains, f"{labels}concat=n={len(segments)}:v=1:a=0[out]"])
    output.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        [*inputs, "-filter_complex", graph, "-map", "[out]", *_encode_options(), str(output)],
        what=f"joining {len(segments)} segments into {output.name}",
    )
    return output


def _encode_options() -> list[str]:
    return [
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        ENCODE_PRESET,
        "-crf",
        str(_CRF),
        "-pix_fmt",
        "yuv420p",
        "-r",
        str(OUTPUT.fps),
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
    ]

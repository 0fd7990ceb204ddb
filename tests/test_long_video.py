"""`long_video`: chained video_extension segments joined into one video, end to end.

Real Prefect server, emulator and ffmpeg. The emulator's extension output, like the
model's, begins with its first_clip; the join must drop exactly those frames: the
joined length is the first segment plus each later segment's new part, and no stretch
before a seam is played again after it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from tests.fixtures_flows import VaceEnv
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobStatus
from vaceflow.media.probe import probe

MakeEnv = Callable[..., VaceEnv]


def _frames(path: str) -> list[NDArray[np.int16]]:
    with av.open(path) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


def _diff(a: NDArray[np.int16], b: NDArray[np.int16]) -> float:
    return float(np.abs(a - b).mean())


def test_three_segments_join_without_seams_and_keep_their_lineage(
    vace_env: MakeEnv, media: MediaFactory
) -> None:
    from flows.long_video import long_video

    env = vace_env(latency=0.2)
    start = media.image(width=640, height=360, name="long-start")
    prompts = ["a boat leaves the harbour", "it passes the lighthouse", "it reaches open sea"]

    joined = long_video(prompt=prompts, segments=3, first_frame=str(start), clip_seconds=2.0)

    assert env.submissions() == 3
    catalog = Catalog.from_settings()
    # Lineage: joined -> segment 3 -> segment 2 -> segment 1; inputs name every segment.
    chain = [catalog.get(joined.parent_id or "")]
    while chain[-1].parent_id:
        chain.append(catalog.get(chain[-1].parent_id))
    segments = chain[::-1]
    assert [s.prompt for s in segments] == prompts
    assert all(s.function == "video_extension" for s in segments)
    assert all(s.status is JobStatus.SUCCEEDED for s in segments)
    assert joined.function == "long_video"
    assert joined.status is JobStatus.SUCCEEDED
    assert [i.source for i in joined.inputs["segment"]] == [s.id for s in segments]

    overlaps = joined.parameters["overlap_frames"]
    assert overlaps == [0, 60, 60]  # 2 s of each clip at the output's 30 fps
    lengths = [
        probe(s.output.path).frame_count or 0 for s in segments if s.output and s.output.path
    ]
    assert joined.output is not None
    assert joined.output.path is not None
    assert (
        joined.output.s3_uri == f"s3://{env.s3.bucket}/{env.prefix}/outputs/{joined.id}/video.mp4"
    )
    video = probe(joined.output.path)
    assert (video.codec, round(video.fps or 0), video.has_audio) == ("h264", 30, False)
    new_parts = [n - o for n, o in zip(lengths, overlaps, strict=True)]
    assert video.frame_count == sum(new_parts)
    assert video.duration is not None
    assert abs(video.duration - sum(new_parts) / 30) < 0.05

    frames = _frames(joined.output.path)
    seams = [new_parts[0], new_parts[0] + new_parts[1]]
    for seam, overlap in zip(seams, overlaps[1:], strict=True):
        # The frame after the seam follows the one before it (no jump) ...
        step = _diff(frames[seam], frames[seam - 1])
        # ... and the frames after it do not replay the stretch the clip was cut from.
        replay = min(_diff(frames[seam + k], frames[seam - overlap + k]) for k in range(10))
        assert replay > 4 * max(step, 1.0), (seam, step, replay)

    # A re-run finds every segment and the join in the catalog: nothing paid, same rows.
    again = long_video(prompt=prompts, segments=3, first_frame=str(start), clip_seconds=2.0)
    assert again.id == joined.id
    assert env.submissions() == 3
    assert again.output is not None
    assert Path(again.output.path or "").exists()

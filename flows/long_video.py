"""`long_video`: a video longer than the model's 5 s, by chained video_extension.

Segment 1 starts from the given first frame or clip; every later segment continues
the last `clip_seconds` of the one before (its `first_clip`), with that segment as its
catalog parent. The segments are then joined without the frames each one repeats from
its clip (`vaceflow.media.join`), encoded once, and the joined video is cataloged as a
row of its own (function `long_video`, parent = the last segment, inputs = every
segment). A re-run finds every segment and the join in the catalog: it pays nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import Field

from flows.functions import Media
from flows.job import vace_job
from tasks.runtime import flow_runtime
from tasks.trust import policy_scope, run_policy
from vaceflow.catalog import JobRecord
from vaceflow.catalog.records import InputRecord, OutputRecord
from vaceflow.errors import JobInvalid, MediaError
from vaceflow.identity import sha256_file
from vaceflow.jobs import Function, Prompt, Seed
from vaceflow.limits import CLIPS_TOTAL_SECONDS
from vaceflow.media.join import join_segments, overlap_frames, tail_clip
from vaceflow.media.probe import probe
from vaceflow.options import WAIT_TIMEOUT_MINUTES, job_from_options
from vaceflow.services import Services
from vaceflow.storage.outputs import publish_outputs
from vaceflow.thumbnail import make_thumbnail

__all__ = ["LONG_VIDEO", "long_video"]

LONG_VIDEO = "long_video"
"""The catalog's function name for a joined video."""


def _output_path(record: JobRecord) -> Path:
    path = Path(record.output.path) if record.output and record.output.path else None
    if path is None or not path.exists():
        raise MediaError(f"segment {record.id} has no local video to continue from")
    return path


@task(name="tail-clip", task_run_name="tail of {record.id}", cache_policy=NO_CACHE)
def cut_tail(record: JobRecord, seconds: float) -> Path:
    """The segment's last seconds, kept beside its video: a re-run reuses the same bytes,
    so the next segment keeps its catalog identity."""
    video = _output_path(record)
    clip = video.with_name(f"tail-{seconds:g}s.mp4")
    return clip if clip.exists() else tail_clip(video, seconds, clip)


@task(name="join-segments", cache_policy=NO_CACHE)
def join(
    svc: Services, records: list[JobRecord], overlaps: list[int], prompts: list[str]
) -> JobRecord:
    """The joined video, cataloged once per set of segments."""
    segments = [(r.id, r.output.sha256 if r.output else None) for r in records]
    identity = hashlib.sha256(
        json.dumps({"function": LONG_VIDEO, "segments": segments, "overlaps": overlaps}).encode()
    ).hexdigest()
    found = svc.catalog.find(identity=identity)
    if (
        found is not None
        and found.output
        and found.output.path
        and Path(found.output.path).exists()
    ):
        get_run_logger().info("joined video %s already cataloged", found.id)
        return found
    folder = svc.outputs_dir / f"{LONG_VIDEO}-{identity[:16]}"
    video = join_segments([_output_path(r) for r in records], overlaps, folder / "video.mp4")
    thumbnail = make_thumbnail(video, folder / "thumbnail.png").path
    output = OutputRecord(
        path=str(video),
        sha256=sha256_file(video),
        probe=probe(video).model_dump(mode="json", exclude={"path"}),
        thumbnail_path=str(thumbnail),
    )
    last = records[-1]
    joined = svc.catalog.record_derived(
        identity,
        function=LONG_VIDEO,
        model=last.model,
        prompt=" / ".join(dict.fromkeys(prompts)),
        parent_id=last.id,
        inputs={
            "segment": [
                InputRecord(source=r.id, sha256=r.output.sha256 if r.output else None)
                for r in records
            ]
        },
        parameters={"segments": len(records), "overlap_frames": overlaps},
        output=output,
        flow_run_id=flow_run.id,
    )
    if svc.store is None:
        return joined
    store = svc.store  # published beside the segments' videos
    record = joined.model_dump(mode="json")
    published = publish_outputs(store, joined.id, video=video, record=record, thumbnail=thumbnail)
    s3_uri = f"s3://{store.bucket}/{published.video_key}"
    return svc.catalog.record_output(joined.id, output.model_copy(update={"s3_uri": s3_uri}))


def _prompts(prompt: str | list[str], segments: int) -> list[str]:
    if isinstance(prompt, str):
        return [prompt] * segments
    if len(prompt) != segments:
        raise JobInvalid(f"{len(prompt)} prompts for {segments} segments: give one per segment")
    return list(prompt)


@flow(
    name=LONG_VIDEO,
    flow_run_name="long_video: {segments} segments",
    description="A long video from one prompt (or one per segment) by chained "
    "video_extension, joined without seams into one MP4 and cataloged with its lineage.",
    log_prints=True,
)
def long_video(
    prompt: Prompt | list[Prompt],
    segments: Annotated[int, Field(ge=1, le=20)] = 3,
    first_frame: Media | None = None,
    first_clip: Media | None = None,
    clip_seconds: Annotated[float, Field(gt=0, le=CLIPS_TOTAL_SECONDS)] = 2.0,
    seed: Seed | None = None,
    prompt_extend: bool | None = None,
    watermark: bool | None = None,
    fresh: bool = False,
    timeout_minutes: float = WAIT_TIMEOUT_MINUTES,
) -> JobRecord:
    """Run the segments one after another, join them, return the joined video's record.

    Args:
        prompt: What happens, for the whole video or one per segment.
        segments: How many 5 s extensions to chain.
        first_frame: The image the video starts from (give this or first_clip).
        first_clip: A clip the video starts by continuing.
        clip_seconds: How much of each segment's end the next one continues from; more
            keeps motion steadier, less adds more new video per segment.
        seed: Fix it to reproduce a result.
        prompt_extend: Let an LLM rewrite the prompts.
        watermark: Add an "AI-generated" mark at the bottom right.
        fresh: Pay for new segments even when the catalog has them.
        timeout_minutes: Per segment: stop waiting after this long; a re-run resumes.
    """
    if (first_frame is None) == (first_clip is None):
        raise JobInvalid("long_video starts from a first_frame or a first_clip: give one")
    prompts = _prompts(prompt, segments)
    with flow_runtime() as runtime:  # the segments' flows run in it too
        svc = runtime.services
        start = {"first_frame": first_frame} if first_frame else {"first_clip": first_clip}
        records: list[JobRecord] = []
        overlaps = [0]
        given = policy = run_policy(svc.settings)  # the caller's inputs, then our clips
        for text in prompts:
            options = {"prompt": text, "seed": seed, "prompt_extend": prompt_extend}
            options |= {"watermark": watermark, **start}
            job = job_from_options(Function.VIDEO_EXTENSION, options)
            parent = records[-1].id if records else None
            with policy_scope(policy):
                records.append(
                    vace_job(job, fresh=fresh, timeout_minutes=timeout_minutes, parent_id=parent)
                )
            if len(records) < len(prompts):
                clip = cut_tail(records[-1], clip_seconds)
                overlaps.append(overlap_frames(clip))
                start = {"first_clip": str(clip)}
                policy = given.allowing(clip)
        joined = join(svc, records, overlaps, prompts)
        print(f"long video {joined.id}: {joined.output.path if joined.output else '?'}")
        return joined

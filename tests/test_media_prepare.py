"""Whole jobs prepared before any upload: conformed files, reports, a validated job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FileServer
from tests.media import MediaFactory
from tests.test_media_conform import blurry_mask, first_frame
from vaceflow.errors import InputRefused, JobInvalid
from vaceflow.jobs import Function, Job, VideoEditJob, VideoExtensionJob, parse_job
from vaceflow.limits import Role
from vaceflow.media.prepare import prepare
from vaceflow.media.probe import probe
from vaceflow.options import job_from_options
from vaceflow.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path / "data"))
    return Settings()


def edit_job(video: str, mask: str, frame_id: int = 3) -> Job:
    return parse_job(
        {
            "input": {
                "function": "video_edit",
                "prompt": "a red car",
                "video_url": video,
                "mask_image_url": mask,
                "mask_frame_id": frame_id,
            },
            "parameters": {"mask_type": "fixed"},
        }
    )


def test_video_edit_mask_follows_the_conformed_video(
    media: MediaFactory, file_server: FileServer, settings: Settings
) -> None:
    video = media.video(width=480, height=272, fps=12, seconds=6, container="mov", audio=True)
    mask = blurry_mask(media, 240, 136)
    job = edit_job(file_server.url(video), str(mask))
    prepared = prepare(job, settings=settings)

    assert isinstance(prepared.job, VideoEditJob)
    conformed_video = probe(prepared.files[Role.VIDEO][0])
    conformed_mask = probe(prepared.files[Role.MASK_IMAGE][0])
    assert conformed_video.codec == "h264"
    assert conformed_video.fps == pytest.approx(16, abs=0.01)
    assert conformed_video.duration == pytest.approx(5.0, abs=1e-3)
    assert (conformed_mask.width, conformed_mask.height) == (480, 272)
    assert set(np.unique(first_frame(prepared.files[Role.MASK_IMAGE][0])).tolist()) == {0, 255}
    assert prepared.job.input.video_url == prepared.files[Role.VIDEO][0].as_uri()
    assert prepared.job.input.mask_image_url == prepared.files[Role.MASK_IMAGE][0].as_uri()
    assert prepared.job.to_body()["parameters"] == {"mask_type": "fixed"}
    assert [r.input for r in prepared.reports] == ["video", "mask_image"]
    assert all(Path(r.output).is_relative_to(settings.data_dir) for r in prepared.reports)
    assert "?" not in prepared.reports[0].source

    again = prepare(job, settings=settings)
    assert all(r.cached for r in again.reports)
    assert again.job.to_body() == prepared.job.to_body()


def test_mask_frame_id_is_checked_against_the_conformed_video(
    media: MediaFactory, settings: Settings
) -> None:
    video = media.video(width=320, height=240, fps=12, seconds=2)  # 16 fps x 2 s after conform
    mask = media.mask_image(width=320, height=240)
    assert prepare(edit_job(str(video), str(mask), frame_id=33), settings=settings)
    with pytest.raises(InputRefused) as caught:
        prepare(edit_job(str(video), str(mask), frame_id=34), settings=settings)
    assert caught.value.input_name == "mask_frame_id"
    assert "33" in str(caught.value)


def test_parameter_error_is_refused_before_any_media_work(
    media: MediaFactory, settings: Settings
) -> None:
    video = str(media.video(seconds=1))
    given = {"prompt": "a watercolour", "video": video, "control_condition": "depth"}
    with pytest.raises(JobInvalid, match="strength"):  # no job to prepare: nothing is read
        job_from_options(Function.VIDEO_REPAINTING, given | {"strength": 1.5})
    assert not (settings.data_dir / "conformed").exists()


def test_extension_clips_share_three_seconds(media: MediaFactory, settings: Settings) -> None:
    first = media.video(width=320, height=240, fps=24, seconds=4, name="first")
    last = media.video(width=320, height=240, fps=20, seconds=4, name="last")
    job = job_from_options(
        Function.VIDEO_EXTENSION,
        {"prompt": "the dog keeps running", "first_clip": first, "last_clip": last},
    )
    prepared = prepare(job, settings=settings)
    assert isinstance(prepared.job, VideoExtensionJob)
    one, two = (probe(prepared.files[r][0]) for r in (Role.FIRST_CLIP, Role.LAST_CLIP))
    assert (one.duration or 0) + (two.duration or 0) <= 3.0 + 1e-3
    assert (one.duration or 0) == pytest.approx(1.5, abs=0.05)
    assert (two.duration or 0) == pytest.approx(1.5, abs=0.05)


def test_options_map_onto_the_job_models() -> None:
    job = job_from_options(
        Function.VIDEO_EDIT,
        {"prompt": "p", "video": "v.mp4", "mask_image": "m.png", "mask_frame_id": 4,
         "mask_type": "fixed", "seed": None, "ref_image": []},
    )  # fmt: skip
    assert job.input.media() == {Role.VIDEO: ["v.mp4"], Role.MASK_IMAGE: ["m.png"]}
    assert job.to_body()["input"]["mask_frame_id"] == 4
    assert job.to_body()["parameters"] == {"mask_type": "fixed"}
    with pytest.raises(JobInvalid, match="top_scale"):
        job_from_options(Function.VIDEO_EDIT, {"prompt": "p", "top_scale": 1.5})

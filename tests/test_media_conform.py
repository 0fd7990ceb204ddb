"""Conforming real files made by ffmpeg; every assertion is on the conformed file's probe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import MediaFactory
from vaceflow.errors import InputRefused
from vaceflow.limits import MB, Role
from vaceflow.media.conform import Conformer
from vaceflow.media.facts import moov_first
from vaceflow.media.ffmpeg import find_ffmpeg
from vaceflow.media.plan import VideoTarget, clip_windows
from vaceflow.media.probe import MediaInfo, probe
from vaceflow.media.report import ConformReport

VIDEO_RULE = Role.VIDEO.rule
IMAGE_RULE = Role.REF_IMAGE.rule


def ffmpeg_file(out: Path, *args: str) -> Path:
    """Make `out` once per session (the media folder is the session's)."""
    if not out.exists():
        part = out.with_name(out.stem + ".part" + out.suffix)
        cmd = [find_ffmpeg().path, "-hide_banner", "-loglevel", "error", "-y", *args, str(part)]
        subprocess.run(cmd, check=True)
        part.rename(out)
    return out


def noise_video(media: MediaFactory, frames: int) -> Path:
    """640x360 30 fps lossless noise: about 0.5 MB a frame, so size is set by `frames`."""
    return ffmpeg_file(
        media.root / f"noise-{frames}.mp4",
        "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30,noise=alls=100:allf=t",
        "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
        "-pix_fmt", "yuv420p",
    )  # fmt: skip


def noise_image(media: MediaFactory, side: int) -> Path:
    return ffmpeg_file(
        media.root / f"noise-{side}.png",
        "-f", "lavfi", "-i", f"testsrc2=s={side}x{side},noise=alls=100:allf=t",
        "-frames:v", "1", "-update", "1",
    )  # fmt: skip


def picture(media: MediaFactory, width: int, height: int, fmt: str = "jpg") -> Path:
    """Any size (testsrc2 rounds odd widths down, testsrc does not)."""
    return ffmpeg_file(
        media.root / f"picture-{width}x{height}.{fmt}",
        "-f", "lavfi", "-i", f"testsrc=s={width}x{height}", "-frames:v", "1", "-update", "1",
    )  # fmt: skip


def rotated(media: MediaFactory, degrees: int) -> Path:
    source = media.video(width=320, height=240, seconds=1)
    return ffmpeg_file(
        media.root / f"rotated-{degrees}.mp4",
        "-display_rotation", str(degrees), "-i", str(source), "-c", "copy",
    )  # fmt: skip


def vfr_video(media: MediaFactory) -> Path:
    """30 fps with every other frame dropped in the middle second."""
    return ffmpeg_file(
        media.root / "vfr.mp4",
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=3",
        "-vf", "select='not(between(n\\,30\\,60)*mod(n\\,2))'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
    )  # fmt: skip


def blurry_mask(media: MediaFactory, width: int, height: int, *, colour: str = "black") -> Path:
    box = f"drawbox=x={width // 4}:y={height // 4}:w={width // 2}:h={height // 2}:c=white:t=fill"
    chain = f"{box},gblur=sigma=3" if colour == "black" else "null"
    return ffmpeg_file(
        media.root / f"blurmask-{width}x{height}-{colour}.png",
        "-f", "lavfi", "-i", f"color=c={colour}:s={width}x{height}", "-vf", chain,
        "-frames:v", "1", "-update", "1",
    )  # fmt: skip


def first_frame(path: Path | str, index: int = 0) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="gray").astype(np.int16)
    raise AssertionError(f"{path} has no frame {index}")


@pytest.fixture
def conformer(tmp_path: Path) -> Conformer:
    return Conformer(tmp_path / "conformed")


def conform(
    conformer: Conformer, path: Path, role: Role, **kw: object
) -> tuple[ConformReport, MediaInfo]:
    report = conformer.conform(path, role, name=role.value, source=str(path), **kw)  # type: ignore[arg-type]
    return report, probe(report.output)


def assert_service_ready_video(info: MediaInfo) -> None:
    assert info.codec == "h264"
    assert info.pix_fmt == "yuv420p"
    assert info.path.endswith(".mp4")
    assert moov_first(Path(info.path))
    assert not info.has_audio
    assert info.rotation == 0
    assert (info.fps or 0) >= VIDEO_RULE.min_fps - 0.01
    assert (info.duration or 0) <= VIDEO_RULE.max_seconds + 1e-3
    assert info.size_bytes <= VIDEO_RULE.max_bytes


# --- videos ------------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "expected"), [(15, 16.0), (16, 16.0), (24, 24.0)])
def test_frame_rate_is_raised_to_16_only_when_under(
    media: MediaFactory, conformer: Conformer, fps: int, expected: float
) -> None:
    src = media.video(width=320, height=240, fps=fps, seconds=2)
    report, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert out.fps == pytest.approx(expected, abs=0.01)
    assert out.duration == pytest.approx(2.0, abs=0.07)
    # At 16 fps or more the frames are the source's own (stream copy): no encode ran.
    assert (report.mode == "encode") is (fps < 16)


@pytest.mark.parametrize(("seconds", "expected"), [(5.0, 5.0), (5.5, 5.0), (8.0, 5.0)])
def test_video_is_cut_to_the_first_five_seconds(
    media: MediaFactory, conformer: Conformer, seconds: float, expected: float
) -> None:
    src = media.video(width=320, height=240, fps=24, seconds=seconds)
    report, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert out.duration == pytest.approx(expected, abs=1e-3)
    assert out.frame_count == round(expected * 24)
    assert report.mode != "encode"
    # The first frame is the source's first frame.
    assert np.abs(first_frame(src) - first_frame(report.output)).mean() < 1


def test_cut_of_a_b_frame_video_ends_exactly_at_five_seconds(
    media: MediaFactory, conformer: Conformer
) -> None:
    src = media.video(width=320, height=240, fps=30, seconds=6, extra=("-preset", "medium"))
    assert probe(src).has_b_frames
    _, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert out.frame_count == 150
    assert out.duration == pytest.approx(5.0, abs=1e-3)
    assert not out.variable_frame_rate


def test_hevc_mov_with_audio_becomes_h264_mp4_without_audio(
    media: MediaFactory, conformer: Conformer
) -> None:
    src = media.video(
        width=320, height=240, fps=24, seconds=2, codec="libx265", container="mov", audio=True
    )
    assert probe(src).codec == "hevc"
    _, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert out.frame_count == 48


def test_h264_mov_is_rewrapped_not_reencoded(media: MediaFactory, conformer: Conformer) -> None:
    src = media.video(width=320, height=240, seconds=1, container="mov", audio=True)
    report, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert report.mode == "copy"


@pytest.mark.parametrize("degrees", [90, 270])
def test_rotated_phone_video_is_turned_upright(
    media: MediaFactory, conformer: Conformer, degrees: int
) -> None:
    src = rotated(media, degrees)
    before = probe(src)
    assert before.rotation != 0
    assert (before.width, before.height) == (240, 320)
    _, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert (out.coded_width, out.coded_height) == (240, 320)


def test_variable_frame_rate_becomes_constant(media: MediaFactory, conformer: Conformer) -> None:
    src = vfr_video(media)
    assert probe(src).variable_frame_rate
    _, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert not out.variable_frame_rate


def test_video_over_50_mb_is_reencoded_to_fit(media: MediaFactory, conformer: Conformer) -> None:
    src = noise_video(media, 120)
    assert probe(src).size_bytes > VIDEO_RULE.max_bytes
    _, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert out.size_bytes > 0.5 * VIDEO_RULE.max_bytes  # fitted, not crushed
    assert out.frame_count == 120


def test_video_just_under_50_mb_is_kept(media: MediaFactory, conformer: Conformer) -> None:
    src = noise_video(media, 96)
    size = probe(src).size_bytes
    assert 45 * MB < size <= VIDEO_RULE.max_bytes
    report, out = conform(conformer, src, Role.VIDEO)
    assert_service_ready_video(out)
    assert report.mode != "encode"
    assert out.size_bytes == pytest.approx(size, rel=0.01)


# --- clips -------------------------------------------------------------------------


def test_clip_budget_is_shared_first_keeps_its_end_last_its_start(
    media: MediaFactory, conformer: Conformer
) -> None:
    first_src = media.video(width=320, height=240, fps=24, seconds=4, name="clipA")
    last_src = media.video(width=320, height=240, fps=24, seconds=2.5, name="clipB")
    w1, w2 = clip_windows((4.0, 24.0), (2.5, 24.0))
    first, first_out = conform(conformer, first_src, Role.FIRST_CLIP, window=w1)
    last, last_out = conform(conformer, last_src, Role.LAST_CLIP, window=w2)
    for out in (first_out, last_out):
        assert_service_ready_video(out)
    assert (first_out.duration or 0) + (last_out.duration or 0) <= 3.0 + 1e-3
    assert first_out.duration == pytest.approx(1.5, abs=1e-3)
    assert last_out.duration == pytest.approx(1.5, abs=1e-3)
    # The first clip's first frame is the source's frame at 2.5 s (its end is kept) ...
    diff_end = np.abs(first_frame(first.output) - first_frame(first_src, 60)).mean()
    diff_start = np.abs(first_frame(first.output) - first_frame(first_src, 0)).mean()
    assert diff_end < 3 < diff_start
    # ... and the last clip starts where its source starts.
    assert np.abs(first_frame(last.output) - first_frame(last_src, 0)).mean() < 3


def test_clip_windows_share_the_budget() -> None:
    assert clip_windows((1.0, 24.0), (3.0, 24.0)) == (
        clip_windows((1.0, 24.0), None)[0],
        clip_windows(None, (2.0, 24.0))[1],
    )
    w1, w2 = clip_windows((10.0, 30.0), (10.0, 30.0))
    assert w1 is not None
    assert w2 is not None
    assert (w1.start, w1.seconds, w2.start, w2.seconds) == (8.5, 1.5, 0.0, 1.5)
    only, _ = clip_windows((5.0, 16.0), None)
    assert only is not None
    assert (only.start, only.seconds) == (2.0, 3.0)
    a, b = clip_windows((2.0, 29.97), (2.0, 29.97))
    assert a is not None
    assert b is not None
    assert a.seconds + b.seconds <= 3.0


# --- images ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((359, 500), (360, 501)),
        ((360, 500), (360, 500)),
        ((2000, 1000), (2000, 1000)),
        ((2001, 1000), (2000, 1000)),
        ((4000, 3000), (2000, 1500)),
    ],
)
def test_image_sides_are_brought_into_range(
    media: MediaFactory, conformer: Conformer, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    src = picture(media, *size)
    assert (probe(src).width, probe(src).height) == size
    report, out = conform(conformer, src, Role.REF_IMAGE)
    assert (out.width, out.height) == expected
    assert out.image_format == "jpeg"
    assert (report.mode == "keep") is (size == expected)


def test_image_whose_aspect_cannot_fit_is_refused(
    media: MediaFactory, conformer: Conformer
) -> None:
    src = picture(media, 300, 3000)
    with pytest.raises(InputRefused) as caught:
        conform(conformer, src, Role.REF_IMAGE)
    assert "[360, 2000]" in caught.value.rule
    assert caught.value.input_name == "ref_image"


@pytest.mark.parametrize("fmt", ["gif", "avif"])
def test_unaccepted_image_formats_are_converted(
    media: MediaFactory, conformer: Conformer, fmt: str
) -> None:
    codec = ["-c:v", "libaom-av1", "-cpu-used", "8", "-still-picture", "1"] if fmt == "avif" else []
    src = ffmpeg_file(
        media.root / f"photo.{fmt}",
        "-f", "lavfi", "-i", "testsrc=s=640x480", "-frames:v", "1", *codec,
    )  # fmt: skip
    assert probe(src).image_format == fmt
    _, out = conform(conformer, src, Role.FIRST_FRAME)
    assert out.image_format in ("png", "jpeg")
    assert (out.width, out.height) == (640, 480)


def test_animated_gif_keeps_its_first_frame_with_a_warning(
    media: MediaFactory, conformer: Conformer
) -> None:
    src = media.video(width=400, height=400, fps=10, seconds=1, codec="gif", container="gif",
                      pix_fmt="rgb8")  # fmt: skip
    report, out = conform(conformer, src, Role.REF_IMAGE)
    assert out.is_image
    assert out.image_format == "png"
    assert any("animated" in w for w in report.warnings)


def test_image_over_10_mb_is_brought_under(media: MediaFactory, conformer: Conformer) -> None:
    src = noise_image(media, 2000)
    assert probe(src).size_bytes > IMAGE_RULE.max_bytes
    _, out = conform(conformer, src, Role.REF_IMAGE)
    assert out.size_bytes <= IMAGE_RULE.max_bytes
    assert (out.width, out.height) == (2000, 2000)


def test_image_just_under_10_mb_is_kept(media: MediaFactory, conformer: Conformer) -> None:
    src = noise_image(media, 1900)
    size = probe(src).size_bytes
    assert 9 * MB < size <= IMAGE_RULE.max_bytes
    report, out = conform(conformer, src, Role.REF_IMAGE)
    assert report.mode == "keep"
    assert out.size_bytes == size


def test_transparent_image_stays_png_with_alpha(media: MediaFactory, conformer: Conformer) -> None:
    src = ffmpeg_file(
        media.root / "small-alpha.png",
        "-f", "lavfi", "-i", "testsrc=s=300x400", "-vf", "format=rgba,colorchannelmixer=aa=0.5",
        "-frames:v", "1", "-update", "1",
    )  # fmt: skip
    assert probe(src).has_alpha
    _, out = conform(conformer, src, Role.REF_IMAGE)
    assert (out.width, out.height) == (360, 480)
    assert out.image_format == "png"
    assert out.has_alpha


# --- masks -------------------------------------------------------------------------


def test_antialiased_mask_at_the_wrong_size_is_scaled_and_thresholded(
    media: MediaFactory, conformer: Conformer
) -> None:
    video = media.video(width=640, height=360, seconds=1)
    target = VideoTarget.of(probe(video))
    src = blurry_mask(media, 320, 180)
    assert len(np.unique(first_frame(src))) > 2
    report, out = conform(conformer, src, Role.MASK_IMAGE, target=target)
    assert (out.width, out.height) == (640, 360)
    assert set(np.unique(first_frame(report.output)).tolist()) == {0, 255}
    assert report.warnings == []


@pytest.mark.parametrize("colour", ["black", "white"])
def test_blank_masks_warn(media: MediaFactory, conformer: Conformer, colour: str) -> None:
    target = VideoTarget(width=320, height=240, fps=24, frame_count=24, duration=1)
    src = ffmpeg_file(
        media.root / f"blank-{colour}.png",
        "-f", "lavfi", "-i", f"color=c={colour}:s=320x240", "-frames:v", "1", "-update", "1",
    )  # fmt: skip
    report, _ = conform(conformer, src, Role.MASK_IMAGE, target=target)
    assert any(f"all {colour}" in w for w in report.warnings)


@pytest.mark.parametrize(("fps", "seconds", "size"), [(24, 1.5, (320, 180)), (30, 3.0, (640, 360))])
def test_mask_video_matches_the_conformed_video(
    media: MediaFactory,
    conformer: Conformer,
    fps: int,
    seconds: float,
    size: tuple[int, int],
) -> None:
    video = media.video(width=640, height=360, fps=12, seconds=2)
    _, conformed = conform(conformer, video, Role.VIDEO)
    target = VideoTarget.of(conformed)
    src = media.mask_video(width=size[0], height=size[1], fps=fps, seconds=seconds)
    _, out = conform(conformer, src, Role.MASK_VIDEO, target=target)
    assert (out.width, out.height) == (conformed.width, conformed.height)
    assert out.fps == pytest.approx(conformed.fps, abs=0.01)
    assert out.frame_count == conformed.frame_count
    assert out.codec == "h264"


# --- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "role"),
    [
        (lambda m: m.text("empty.mp4", ""), Role.VIDEO),
        (lambda m: m.truncated(m.video(seconds=1)), Role.VIDEO),
        (lambda m: m.text("not-an-image.png"), Role.REF_IMAGE),
        (lambda m: m.audio_only(), Role.VIDEO),
        (lambda m: m.image(), Role.VIDEO),
        (lambda m: m.video(seconds=1), Role.FIRST_FRAME),
    ],
    ids=[
        "empty",
        "truncated-mp4",
        "text-named-png",
        "audio-only",
        "image-as-video",
        "video-as-image",
    ],
)
def test_unusable_inputs_are_refused(
    media: MediaFactory, conformer: Conformer, make: object, role: Role
) -> None:
    src = make(media)  # type: ignore[operator]
    with pytest.raises(InputRefused) as caught:
        conform(conformer, src, role)
    assert caught.value.input_name == role.value
    assert caught.value.rule
    assert not list(conformer.cache_dir.glob("*.mp4")) + list(conformer.cache_dir.glob("*.png"))


# --- cache -------------------------------------------------------------------------


def test_a_rerun_hits_the_cache(media: MediaFactory, conformer: Conformer) -> None:
    src = media.video(width=320, height=240, fps=12, seconds=1)
    first, _ = conform(conformer, src, Role.VIDEO)
    assert not first.cached
    mtime = Path(first.output).stat().st_mtime_ns
    again, _ = conform(conformer, src, Role.VIDEO)
    assert again.cached
    assert again.output == first.output
    assert again.sha256 == first.sha256
    assert Path(again.output).stat().st_mtime_ns == mtime
    # Another context (a clip window) is another entry.
    clip, _ = conform(conformer, src, Role.LAST_CLIP, window=clip_windows(None, (1.0, 16.0))[1])
    assert not clip.cached

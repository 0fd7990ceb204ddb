"""The emulator's input checks and its rendering, on real media made by ffmpeg.

check_inputs is tried on both sides of every boundary; render's outputs are probed and
decoded to see the provider's output shape, the "EMULATED" mark and the inputs in them.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.media import MediaFactory
from vaceflow.emulator.inspect import CheckedInputs, InputProblem, check_inputs
from vaceflow.emulator.mark import Mark, emulated_mark, watermark_mark
from vaceflow.emulator.render import Rendered, render
from vaceflow.jobs import Job, parse_job
from vaceflow.limits import CLIPS_TOTAL_SECONDS, MEDIA_RULES, OUTPUT, Role, max_mask_frame_id
from vaceflow.media.ffmpeg import run_ffmpeg
from vaceflow.media.probe import MediaInfo, probe

Files = dict[Role, list[Path]]
RED, BLUE, ORANGE = np.array([255, 0, 0]), np.array([0, 0, 255]), np.array([255, 165, 0])


# --- helpers -----------------------------------------------------------------------


def job_of(function: str, parameters: dict[str, Any] | None = None, **urls: Any) -> Job:
    """A job whose URLs are placeholders: check_inputs and render read `files` only."""
    body: dict[str, Any] = {"input": {"function": function, "prompt": "a test", **urls}}
    if parameters is not None:
        body["parameters"] = parameters
    return parse_job(body)


def repainting(**parameters: Any) -> Job:
    return job_of("video_repainting", {"control_condition": "depth", **parameters}, video_url="u")


def refused(job: Job, files: Files) -> InputProblem:
    with pytest.raises(InputProblem) as info:
        check_inputs(job, files)
    return info.value


def rendered(job: Job, files: Files, out: Path) -> tuple[Rendered, MediaInfo]:
    result = render(job, check_inputs(job, files), out)
    return result, probe(out)


def frame(path: Path, index: int = 0) -> np.ndarray:
    """Frame `index` of a video (or the image) as int RGB."""
    with av.open(str(path)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i == index:
                return decoded.to_ndarray(format="rgb24").astype(np.int32)
    raise IndexError(f"{path} has no frame {index}")


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def unmarked(picture: np.ndarray, mark: Mark) -> np.ndarray:
    """The picture with the mark's box blanked in a copy, for comparisons with inputs."""
    out = picture.copy()
    out[mark.y : mark.y + mark.height, mark.x : mark.x + mark.width] = 0
    return out


def assert_mark(picture: np.ndarray, mark: Mark) -> None:
    box = picture[mark.y : mark.y + mark.height, mark.x : mark.x + mark.width].mean(axis=2)
    ink = mark.ink()
    inner = np.zeros_like(ink)
    inner[1:-1, 1:-1] = True  # compression blurs the box's outer ring
    letters, ground = box[ink], box[~ink & inner]
    assert letters.mean() > 180, f"mark letters not white: {letters.mean():.0f}"
    assert ground.mean() < 60, f"mark box not black: {ground.mean():.0f}"


def assert_output_shape(
    info: MediaInfo, result: Rendered, width: int, height: int, seconds: float
) -> None:
    assert (info.codec, info.pix_fmt, info.has_audio) == ("h264", "yuv420p", False)
    assert info.is_mp4
    assert (info.width, info.height) == (width, height) == (result.width, result.height)
    assert info.fps == pytest.approx(OUTPUT.fps, abs=0.01)
    assert info.frame_count == round(seconds * OUTPUT.fps) == result.frames
    assert info.duration == pytest.approx(seconds, abs=0.02)
    head = Path(info.path).read_bytes()
    assert head.find(b"moov") < head.find(b"mdat"), "moov must come first (faststart)"


def solid_image(path: Path, colour: str, width: int, height: int) -> Path:
    if not path.exists():
        run_ffmpeg(
            [
                "-f",
                "lavfi",
                "-i",
                f"color=c={colour}:s={width}x{height}",
                "-frames:v",
                "1",
                "-update",
                "1",
                str(path),
            ],
            what="making a test image",
        )
    return path


def padded(source: Path, out: Path, size: int) -> Path:
    """`source` grown to exactly `size` bytes and still one readable picture: a PNG gets
    a private ancillary chunk before IEND, an MP4 a trailing top-level `free` box."""
    data = source.read_bytes()
    missing = size - len(data)
    if source.suffix == ".mp4":
        data += struct.pack(">I4s", missing, b"free") + bytes(missing - 8)
    else:
        assert data.endswith(b"IEND\xaeB`\x82")
        body = bytes(missing - 12)
        chunk = struct.pack(">I4s", len(body), b"vfPd") + body
        chunk += struct.pack(">I", zlib.crc32(b"vfPd" + body))
        data = data[:-12] + chunk + data[-12:]
    out.write_bytes(data)
    return out


# --- check_inputs: unreadable and wrong formats --------------------------------------


def test_unreadable_inputs_are_data_inspection_errors(media: MediaFactory) -> None:
    ref = job_of("image_reference", ref_images_url=["u"])
    problem = refused(ref, {Role.REF_IMAGE: [media.text("not-an-image.png")]})
    assert problem.code == "InvalidParameter.DataInspection"
    assert problem.message.startswith("input.ref_images_url[0]:")
    assert str(media.root) not in problem.message

    truncated = media.truncated(media.video(seconds=2))
    problem = refused(repainting(), {Role.VIDEO: [truncated]})
    assert problem.code == "InvalidParameter.DataInspection"
    assert problem.message.startswith("input.video_url: ")
    assert str(truncated) not in problem.message
    audio = media.audio_only()
    problem = refused(repainting(), {Role.VIDEO: [audio]})
    assert problem.code == "InvalidParameter.DataInspection"
    assert "input.video_url" in problem.message


def test_formats_are_judged_by_content_not_suffix(media: MediaFactory, tmp_path: Path) -> None:
    ref = job_of("image_reference", ref_images_url=["u"])
    gif = media.image(fmt="gif")
    problem = refused(ref, {Role.REF_IMAGE: [gif]})
    assert (problem.code, problem.field) == ("InvalidParameter", "input.ref_images_url[0]")
    assert "gif" in problem.message

    mov = media.video(width=320, height=240, seconds=1, container="mov")
    assert "mov" in refused(repainting(), {Role.VIDEO: [mov]}).message
    webm = media.video(
        width=320,
        height=240,
        seconds=1,
        codec="libvpx-vp9",
        container="webm",
        extra=("-deadline", "realtime", "-cpu-used", "8"),
    )
    assert "webm" in refused(repainting(), {Role.VIDEO: [webm]}).message
    image_as_video = refused(repainting(), {Role.VIDEO: [media.image()]})
    assert image_as_video.code == "InvalidParameter"

    # A real MP4 named .png and a real PNG named .mp4 are what they are.
    named_png = tmp_path / "clip.png"
    named_png.write_bytes(media.video(seconds=1).read_bytes())
    named_mp4 = tmp_path / "picture.mp4"
    named_mp4.write_bytes(media.image().read_bytes())
    job = job_of(
        "video_repainting", {"control_condition": "depth"}, video_url="u", ref_images_url=["r"]
    )
    checked = check_inputs(job, {Role.VIDEO: [named_png], Role.REF_IMAGE: [named_mp4]})
    assert checked.get(Role.VIDEO).info.frame_count == 24


# --- check_inputs: boundaries --------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [
        (360, 640, True),
        (359, 640, False),
        (640, 359, False),
        (2000, 400, True),
        (2001, 400, False),
        (400, 2001, False),
    ],
)
def test_image_sides(tmp_path: Path, width: int, height: int, ok: bool) -> None:
    job = job_of("image_reference", ref_images_url=["u"])
    image = solid_image(tmp_path / "side.png", "gray", width, height)  # testsrc2 rounds to even
    assert (probe(image).width, probe(image).height) == (width, height)
    files = {Role.REF_IMAGE: [image]}
    if ok:
        check_inputs(job, files)
    else:
        problem = refused(job, files)
        assert problem.code == "InvalidParameter"
        bad = width if width in (359, 2001) else height
        assert f"{bad} px" in problem.message


def test_file_size_caps(media: MediaFactory, tmp_path: Path) -> None:
    image_cap = MEDIA_RULES[Role.FIRST_FRAME].max_bytes
    job = job_of("video_extension", first_frame_url="u")
    source = media.image(width=400, height=400)
    at_cap = padded(source, tmp_path / "at-cap.png", image_cap)
    assert check_inputs(job, {Role.FIRST_FRAME: [at_cap]}).get(Role.FIRST_FRAME).info.is_image
    over = padded(source, tmp_path / "over.png", image_cap + 1)
    problem = refused(job, {Role.FIRST_FRAME: [over]})
    assert (problem.code, problem.field) == ("InvalidParameter", "input.first_frame_url")
    assert "10 MB" in problem.message

    video_cap = MEDIA_RULES[Role.VIDEO].max_bytes
    clip = media.video(width=320, height=240, seconds=1)
    check_inputs(repainting(), {Role.VIDEO: [padded(clip, tmp_path / "at-cap.mp4", video_cap)]})
    big = padded(clip, tmp_path / "over.mp4", video_cap + 1)
    assert "50 MB" in refused(repainting(), {Role.VIDEO: [big]}).message


def test_frame_rate_minimum(media: MediaFactory) -> None:
    slow = media.video(width=320, height=240, fps=15, seconds=2)
    problem = refused(repainting(), {Role.VIDEO: [slow]})
    assert problem.code == "InvalidParameter"
    assert problem.message == "input.video_url: frame rate 15 fps is below the minimum of 16"
    ok = media.video(width=320, height=240, fps=16, seconds=2)
    assert check_inputs(repainting(), {Role.VIDEO: [ok]}).get(Role.VIDEO).info.fps == 16


def test_long_video_and_clip_are_cut_not_refused(media: MediaFactory) -> None:
    five = media.video(width=320, height=240, seconds=5.0)
    longer = media.video(width=320, height=240, seconds=5.5)
    assert check_inputs(repainting(), {Role.VIDEO: [five]}).get(Role.VIDEO).seconds == 5.0
    cut = check_inputs(repainting(), {Role.VIDEO: [longer]}).get(Role.VIDEO)
    assert (cut.info.duration, cut.seconds) == (5.5, 5.0)

    clip = media.video(width=320, height=240, seconds=3.5)
    job = job_of("video_extension", first_clip_url="u")
    assert check_inputs(job, {Role.FIRST_CLIP: [clip]}).get(Role.FIRST_CLIP).seconds == 3.0


@pytest.mark.parametrize(("seconds", "ok"), [(1.5, True), (2.0, False)])
def test_clips_together(media: MediaFactory, seconds: float, ok: bool) -> None:
    clip = media.video(width=320, height=240, seconds=seconds)
    job = job_of("video_extension", first_clip_url="a", last_clip_url="b")
    files = {Role.FIRST_CLIP: [clip], Role.LAST_CLIP: [clip]}
    if ok:
        assert 2 * seconds == CLIPS_TOTAL_SECONDS
        check_inputs(job, files)
    else:
        problem = refused(job, files)
        assert problem.code == "InvalidParameter"
        assert "4 s" in problem.message
        assert "first_clip_url" in problem.message


def test_mask_image_must_match_the_video(media: MediaFactory) -> None:
    video = media.video(width=640, height=360, seconds=1)
    job = job_of("video_edit", video_url="v", mask_image_url="m")
    check_inputs(job, {Role.VIDEO: [video], Role.MASK_IMAGE: [media.mask_image()]})
    other = media.mask_image(width=640, height=352)
    problem = refused(job, {Role.VIDEO: [video], Role.MASK_IMAGE: [other]})
    assert problem.field == "input.mask_image_url"
    assert "640x352" in problem.message
    assert "640x360" in problem.message


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        ({"width": 320, "height": 240, "fps": 24, "seconds": 2}, None),
        ({"width": 320, "height": 240, "fps": 25, "seconds": 2}, "frame rate"),
        ({"width": 320, "height": 256, "fps": 24, "seconds": 2}, "resolution"),
        ({"width": 320, "height": 240, "fps": 24, "seconds": 1.5}, "frames"),
    ],
)
def test_mask_video_must_match_the_video(
    media: MediaFactory, mask: dict[str, Any], words: str | None
) -> None:
    video = media.video(width=320, height=240, fps=24, seconds=2)
    job = job_of("video_edit", video_url="v", mask_video_url="m")
    files = {Role.VIDEO: [video], Role.MASK_VIDEO: [media.mask_video(**mask)]}
    if words is None:
        check_inputs(job, files)
    else:
        problem = refused(job, files)
        assert problem.field == "input.mask_video_url"
        assert words in problem.message


def test_mask_frame_id_range(media: MediaFactory) -> None:
    video = media.video(width=320, height=240, fps=16, seconds=5)
    mask = media.mask_image(width=320, height=240)
    highest = max_mask_frame_id(16, 5)
    assert highest == 81
    for frame_id, ok in ((highest, True), (highest + 1, False)):
        job = job_of("video_edit", video_url="v", mask_image_url="m", mask_frame_id=frame_id)
        files = {Role.VIDEO: [video], Role.MASK_IMAGE: [mask]}
        if ok:
            check_inputs(job, files)
        else:
            problem = refused(job, files)
            assert (problem.code, problem.field) == ("InvalidParameter", "input.mask_frame_id")
            assert "82" in problem.message
            assert "81" in problem.message


def test_extension_guide_must_match_clips_and_frames(media: MediaFactory) -> None:
    job = job_of(
        "video_extension",
        {"control_condition": "depth"},
        first_clip_url="c",
        last_frame_url="f",
        video_url="g",
    )
    consistent: Files = {
        Role.FIRST_CLIP: [media.video(width=640, height=360, fps=24, seconds=1)],
        Role.LAST_FRAME: [media.image(width=640, height=360)],
        Role.VIDEO: [media.video(width=640, height=360, fps=24, seconds=2)],
    }
    check_inputs(job, consistent)

    faster = {**consistent, Role.VIDEO: [media.video(width=640, height=360, fps=30, seconds=2)]}
    problem = refused(job, faster)
    assert problem.field == "input.video_url"
    assert "frame rate 30 fps" in problem.message

    narrower = {**consistent, Role.VIDEO: [media.video(width=480, height=360, seconds=2)]}
    assert "resolution 480x360" in refused(job, narrower).message

    taller_frame = {**consistent, Role.LAST_FRAME: [media.image(width=640, height=480)]}
    problem = refused(job, taller_frame)
    assert problem.field == "input.video_url"
    assert "input.last_frame_url (640x480)" in problem.message


# --- render ---------------------------------------------------------------------------


def test_repainting_transforms_the_input_by_strength(media: MediaFactory, tmp_path: Path) -> None:
    video = media.video(width=640, height=360, fps=24, seconds=3)
    source = frame(video)
    mark = emulated_mark(640, 360)
    results = {}
    for strength in (0.0, 1.0):
        out = tmp_path / f"repaint-{strength}.mp4"
        result, info = rendered(repainting(strength=strength), {Role.VIDEO: [video]}, out)
        assert_output_shape(info, result, 640, 360, 3.0)
        picture = frame(out)
        assert_mark(picture, mark)
        assert_mark(frame(out, result.frames - 1), mark)
        results[strength] = diff(unmarked(picture, mark), unmarked(source, mark))
    assert results[0.0] < 4, "strength 0 keeps the input as it is"
    assert results[1.0] > 40, "strength 1 shows the control transform"


def test_repainting_scribble_with_reference(media: MediaFactory, tmp_path: Path) -> None:
    video = media.video(width=640, height=360, fps=24, seconds=2)
    plain = tmp_path / "plain.mp4"
    rendered(
        job_of("video_repainting", {"control_condition": "scribble"}, video_url="v"),
        {Role.VIDEO: [video]},
        plain,
    )
    with_ref = tmp_path / "ref.mp4"
    job = job_of(
        "video_repainting", {"control_condition": "scribble"}, video_url="v", ref_images_url=["r"]
    )
    ref = solid_image(tmp_path / "red.png", "red", 400, 400)
    result, info = rendered(job, {Role.VIDEO: [video], Role.REF_IMAGE: [ref]}, with_ref)
    assert_output_shape(info, result, 640, 360, 2.0)
    corner = frame(with_ref)[300:340, 560:600]  # the thumbnail's place, bottom right
    assert diff(corner, RED) < 30
    assert diff(frame(plain)[:200, 100:400], frame(with_ref)[:200, 100:400]) < 4


@pytest.mark.parametrize(
    ("function", "condition"),
    [
        ("video_repainting", "posebody"),
        ("video_repainting", "posebodyface"),
        ("video_edit", "depth"),
        ("video_edit", "posebodyface"),
    ],
)
def test_every_control_condition_renders(
    media: MediaFactory, tmp_path: Path, function: str, condition: str
) -> None:
    video = media.video(width=320, height=240, fps=16, seconds=1)
    files: Files = {Role.VIDEO: [video]}
    urls: dict[str, Any] = {"video_url": "v"}
    if function == "video_edit":
        files[Role.MASK_IMAGE] = [media.mask_image(width=320, height=240)]
        urls["mask_image_url"] = "m"
    job = job_of(function, {"control_condition": condition}, **urls)
    out = tmp_path / "control.mp4"
    result, info = rendered(job, files, out)
    assert_output_shape(info, result, 320, 240, 1.0)
    mark = emulated_mark(320, 240)
    assert diff(unmarked(frame(out), mark), unmarked(frame(video), mark)) > 5


def test_edit_changes_only_the_masked_area(media: MediaFactory, tmp_path: Path) -> None:
    video = media.video(width=640, height=360, fps=24, seconds=2)
    job = job_of("video_edit", video_url="v", mask_image_url="m")
    out = tmp_path / "edit.mp4"
    result, info = rendered(job, {Role.VIDEO: [video], Role.MASK_IMAGE: [media.mask_image()]}, out)
    assert_output_shape(info, result, 640, 360, 2.0)
    mark = emulated_mark(640, 360)
    got, source = frame(out), frame(video)
    assert_mark(got, mark)
    # The mask's white box is x 160..480, y 90..270; keep 8 px clear of its edge.
    inside = (slice(98, 262), slice(168, 472))
    outside = np.ones((360, 640), dtype=bool)
    outside[82:278, 152:488] = False
    outside[: mark.y + mark.height, : mark.x + mark.width] = False
    assert diff(got[outside], source[outside]) < 4
    assert diff(got[inside], source[inside]) > 30


def test_edit_with_mask_video_and_reference_at_requested_size(
    media: MediaFactory, tmp_path: Path
) -> None:
    video = media.video(width=640, height=360, fps=24, seconds=2)
    mask = media.mask_video(width=640, height=360, fps=24, seconds=2)
    ref = solid_image(tmp_path / "blue.png", "blue", 500, 500)
    job = job_of(
        "video_edit", {"size": "960*960"}, video_url="v", mask_video_url="m", ref_images_url=["r"]
    )
    out = tmp_path / "edit-ref.mp4"
    result, info = rendered(
        job, {Role.VIDEO: [video], Role.MASK_VIDEO: [mask], Role.REF_IMAGE: [ref]}, out
    )
    assert_output_shape(info, result, 960, 960, 2.0)
    got = frame(out, 20)
    # 640x360 covers 960x960: scaled by 960/360, centre crop; the mask box stays central.
    centre = got[430:530, 430:530]
    assert diff(centre, BLUE) < 30
    assert_mark(got, emulated_mark(960, 960))


def test_outpainting_centres_the_input_on_the_wider_canvas(
    media: MediaFactory, tmp_path: Path
) -> None:
    video = media.video(width=640, height=360, fps=24, seconds=2)
    job = job_of("video_outpainting", {"left_scale": 1.5, "right_scale": 1.5}, video_url="v")
    out = tmp_path / "outpaint.mp4"
    result, info = rendered(job, {Role.VIDEO: [video]}, out)
    assert_output_shape(info, result, 1280, 360, 2.0)
    got, source = frame(out), frame(video)
    assert diff(got[:, 320:960], source) < 4
    assert diff(got[:, 0:320], source[:, 0:320]) > 20  # the new area is generated
    assert_mark(got, emulated_mark(1280, 360))


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1280, 720, (1280, 720)),
        (1920, 1080, (1280, 720)),
        (1080, 1920, (720, 1280)),
        (480, 640, (480, 640)),
    ],
)
def test_video_output_keeps_720p_and_below_and_scales_down_above(
    media: MediaFactory, tmp_path: Path, width: int, height: int, expected: tuple[int, int]
) -> None:
    video = media.video(width=width, height=height, fps=16, seconds=1)
    job = job_of("video_outpainting", video_url="v")
    result, info = rendered(job, {Role.VIDEO: [video]}, tmp_path / "fit.mp4")
    assert_output_shape(info, result, *expected, 1.0)


def test_outpainting_of_a_large_input_fits_720p_after_padding(
    media: MediaFactory, tmp_path: Path
) -> None:
    video = media.video(width=1280, height=720, fps=16, seconds=1)
    job = job_of("video_outpainting", {"top_scale": 1.5, "bottom_scale": 1.5}, video_url="v")
    result, info = rendered(job, {Role.VIDEO: [video]}, tmp_path / "tall.mp4")
    assert_output_shape(info, result, 720, 810, 1.0)  # 1280x1440 fitted into 720x1280


def test_long_video_renders_its_first_five_seconds(media: MediaFactory, tmp_path: Path) -> None:
    video = media.video(width=320, height=240, seconds=5.5)
    out = tmp_path / "cut.mp4"
    result, info = rendered(repainting(strength=0.0), {Role.VIDEO: [video]}, out)
    assert_output_shape(info, result, 320, 240, OUTPUT.max_seconds)
    # The last output frame is from near 5 s of the input (testsrc2 moves), not 5.5 s.
    last = unmarked(frame(out, result.frames - 1), emulated_mark(320, 240))
    near_five = unmarked(frame(video, round(4.97 * 24)), emulated_mark(320, 240))
    assert diff(last, near_five) < 6


def test_extension_from_a_first_frame(media: MediaFactory, tmp_path: Path) -> None:
    image = media.image(width=640, height=480)
    job = job_of("video_extension", first_frame_url="f")
    out = tmp_path / "ext-first.mp4"
    result, info = rendered(job, {Role.FIRST_FRAME: [image]}, out)
    assert_output_shape(info, result, 640, 480, OUTPUT.fixed_seconds)
    mark = emulated_mark(640, 480)
    first, last = frame(out), frame(out, result.frames - 1)
    assert diff(unmarked(first, mark), unmarked(frame(image), mark)) < 4
    assert diff(unmarked(last, mark), unmarked(frame(image), mark)) > 20  # generated
    assert_mark(last, mark)


def test_extension_towards_a_last_frame(media: MediaFactory, tmp_path: Path) -> None:
    image = media.image(width=640, height=480)
    job = job_of("video_extension", last_frame_url="f")
    out = tmp_path / "ext-last.mp4"
    result, info = rendered(job, {Role.LAST_FRAME: [image]}, out)
    assert_output_shape(info, result, 640, 480, OUTPUT.fixed_seconds)
    mark = emulated_mark(640, 480)
    last = frame(out, result.frames - 1)
    assert diff(unmarked(last, mark), unmarked(frame(image), mark)) < 4
    assert diff(unmarked(frame(out), mark), unmarked(frame(image), mark)) > 20


def test_extension_joins_the_clips(media: MediaFactory, tmp_path: Path) -> None:
    first = media.video(width=640, height=360, fps=24, seconds=1.5)
    last = solid_image(tmp_path / "green.png", "green", 640, 360)
    last_clip = tmp_path / "green.mp4"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "color=c=green:s=640x360:r=24:d=1.5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(last_clip),
        ],
        what="making a test clip",
    )
    job = job_of("video_extension", first_clip_url="a", last_clip_url="b")
    out = tmp_path / "ext-clips.mp4"
    result, info = rendered(job, {Role.FIRST_CLIP: [first], Role.LAST_CLIP: [last_clip]}, out)
    assert_output_shape(info, result, 640, 360, OUTPUT.fixed_seconds)
    mark = emulated_mark(640, 360)
    assert diff(unmarked(frame(out), mark), unmarked(frame(first), mark)) < 4
    assert diff(unmarked(frame(out, 149), mark), unmarked(frame(last), mark)) < 4
    middle = unmarked(frame(out, 75), mark)
    assert diff(middle, unmarked(frame(last), mark)) > 10  # still changing halfway


def test_extension_between_two_frames_guided_by_a_video(
    media: MediaFactory, tmp_path: Path
) -> None:
    red = solid_image(tmp_path / "red.png", "red", 640, 360)
    blue = solid_image(tmp_path / "blue.png", "blue", 640, 360)
    guide = media.video(width=640, height=360, fps=24, seconds=5)
    job = job_of(
        "video_extension",
        {"control_condition": "scribble"},
        first_frame_url="a",
        last_frame_url="b",
        video_url="g",
    )
    out = tmp_path / "between.mp4"
    files: Files = {Role.FIRST_FRAME: [red], Role.LAST_FRAME: [blue], Role.VIDEO: [guide]}
    result, info = rendered(job, files, out)
    assert_output_shape(info, result, 640, 360, OUTPUT.fixed_seconds)
    centre = (slice(100, 300), slice(100, 600))
    assert diff(frame(out)[centre], RED) < 30
    assert diff(frame(out, 149)[centre], BLUE) < 30
    middle = frame(out, 75)[centre]
    assert diff(middle, RED) > 60
    assert diff(middle, BLUE) > 60


def test_image_reference_composes_subject_over_background(
    media: MediaFactory, tmp_path: Path
) -> None:
    background = solid_image(tmp_path / "orange.png", "orange", 800, 600)
    subject = solid_image(tmp_path / "blue.png", "blue", 400, 400)
    job = job_of(
        "image_reference",
        {"obj_or_bg": ["obj", "bg"], "size": "960*960", "watermark": True},
        ref_images_url=["s", "b"],
    )
    out = tmp_path / "reference.mp4"
    result, info = rendered(job, {Role.REF_IMAGE: [subject, background]}, out)
    assert_output_shape(info, result, 960, 960, OUTPUT.fixed_seconds)
    start, later = frame(out), frame(out, 37)
    assert diff(start[880:940, 100:200], ORANGE) < 12  # background, clear of the subject
    centre = start[500:560, 450:510]
    assert diff(centre, BLUE) < 30  # the subject
    assert diff(start[200:760, 150:810], later[200:760, 150:810]) > 1  # it drifts
    assert_mark(start, emulated_mark(960, 960))
    assert_mark(later, watermark_mark(960, 960))


def test_image_reference_single_subject_default_size(media: MediaFactory, tmp_path: Path) -> None:
    subject = media.image(width=400, height=600, fmt="jpg")
    job = job_of("image_reference", ref_images_url=["s"])
    out = tmp_path / "single.mp4"
    result, info = rendered(job, {Role.REF_IMAGE: [subject]}, out)
    assert_output_shape(info, result, 1280, 720, OUTPUT.fixed_seconds)
    assert frame_count(out) == 150
    assert_mark(frame(out, 149), emulated_mark(1280, 720))


def test_unmarked_frame_fails_the_mark_check(media: MediaFactory) -> None:
    """The mark assertion itself can fail: an input frame has no mark."""
    with pytest.raises(AssertionError):
        assert_mark(frame(media.image(width=640, height=360)), emulated_mark(640, 360))


def test_checked_inputs_keep_request_order(media: MediaFactory) -> None:
    a, b = media.image(width=400, height=400), media.image(width=500, height=400)
    job = job_of("image_reference", {"obj_or_bg": ["obj", "obj"]}, ref_images_url=["a", "b"])
    checked: CheckedInputs = check_inputs(job, {Role.REF_IMAGE: [a, b]})
    assert [c.info.width for c in checked.all(Role.REF_IMAGE)] == [400, 500]
    assert [c.field for c in checked] == ["input.ref_images_url[0]", "input.ref_images_url[1]"]

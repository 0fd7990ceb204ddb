"""Sample inputs for the demo and for first tries, drawn by ffmpeg (nothing downloaded).

Each sample looks like what a user would bring for its role, at a size the contract
accepts, so the demo shows vaceflow's path rather than its refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vaceflow.media.ffmpeg import run_ffmpeg

__all__ = ["Samples", "make_samples"]


@dataclass(frozen=True)
class Samples:
    subject: Path
    """A red disc on white: a subject reference image (PNG, 640x640)."""
    background: Path
    """A Mandelbrot landscape: a background reference image (JPEG, 1280x720)."""
    video: Path
    """A 4 s 640x360 24 fps H.264 test pattern with a moving ball."""
    mask: Path
    """A white ellipse on black at the video's resolution: the area to edit."""
    first_clip: Path
    """The video's first 2 s: a clip to extend."""
    first_frame: Path
    """A still of the video: a first frame to extend from."""


_DISC = (
    "geq=r='if(lt(hypot(X-W/2,Y-H/2),W/4),215,250)'"
    ":g='if(lt(hypot(X-W/2,Y-H/2),W/4),40,250)'"
    ":b='if(lt(hypot(X-W/2,Y-H/2),W/4),50,250)'"
)
_ELLIPSE = "geq=lum='if(lt(hypot((X-W/2)/(W/4),(Y-H/2)/(H/3)),1),255,0)':cb=128:cr=128"


def make_samples(folder: Path) -> Samples:
    """Draw the samples into `folder` (kept if already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    s = Samples(
        subject=folder / "subject.png",
        background=folder / "background.jpg",
        video=folder / "video.mp4",
        mask=folder / "mask.png",
        first_clip=folder / "first_clip.mp4",
        first_frame=folder / "first_frame.png",
    )
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-an"]
    _draw(
        s.subject,
        ["-f", "lavfi", "-i", "color=white:s=640x640", "-vf", _DISC, "-frames:v", "1"],
        "drawing the subject sample",
    )
    _draw(
        s.background,
        ["-f", "lavfi", "-i", "mandelbrot=s=1280x720", "-frames:v", "1", "-q:v", "3"],
        "drawing the background sample",
    )
    _draw(
        s.video,
        ["-f", "lavfi", "-i", "testsrc2=s=640x360:r=24:d=4", *x264, "-movflags", "+faststart"],
        "drawing the video sample",
    )
    _draw(
        s.mask,
        [
            "-f",
            "lavfi",
            "-i",
            "color=black:s=640x360",
            "-vf",
            f"format=yuv444p,{_ELLIPSE},format=gray",
            "-frames:v",
            "1",
        ],
        "drawing the mask sample",
    )
    _draw(
        s.first_clip,
        ["-i", str(s.video), "-t", "2", *x264, "-movflags", "+faststart"],
        "cutting the clip sample",
    )
    _draw(s.first_frame, ["-i", str(s.video), "-frames:v", "1"], "taking the frame sample")
    return s


def _draw(out: Path, args: list[str], what: str) -> None:
    if out.exists() and out.stat().st_size > 0:
        return
    tmp = out.with_name(f".{out.stem}.part{out.suffix}")
    run_ffmpeg([*args, str(tmp)], what=what)
    tmp.replace(out)

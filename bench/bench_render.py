"""How long the emulator takes to check and render each function's 5 s 720p result.

    .venv/bin/python bench/bench_render.py [--repeat 3]

Inputs are 1280x720 30 fps testsrc2 clips and stills (made once in a temporary folder).
For each case: median wall time of check_inputs and of render, and render's ffmpeg CPU
time (user + system of the child process), which says more than wall time on a machine
shared with other work. Results go to bench/results/bench_render-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vaceflow.emulator.inspect import check_inputs
from vaceflow.emulator.render import render
from vaceflow.jobs import parse_job
from vaceflow.limits import Role
from vaceflow.media.ffmpeg import find_ffmpeg

RESULTS = Path(__file__).resolve().parent / "results"


def make(folder: Path, name: str, source: str, *output: str) -> Path:
    out = folder / name
    subprocess.run(
        [find_ffmpeg().path, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", source, *output, str(out)],
        check=True,
    )  # fmt: skip
    return out


def cases(folder: Path) -> dict[str, tuple[dict[str, Any], dict[Role, list[Path]]]]:
    x264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    video = make(folder, "video.mp4", "testsrc2=s=1280x720:r=30:d=5", *x264)
    clip = make(folder, "clip.mp4", "testsrc2=s=1280x720:r=30:d=1.5", *x264)
    still = make(folder, "still.png", "testsrc2=s=1280x720", "-frames:v", "1", "-update", "1")
    box = "drawbox=x=320:y=180:w=640:h=360:c=white:t=fill"
    mask = make(folder, "mask.png", f"color=c=black:s=1280x720,{box}", "-frames:v", "1",
                "-update", "1")  # fmt: skip

    def body(function: str, parameters: dict[str, Any], **urls: Any) -> dict[str, Any]:
        return {"input": {"function": function, "prompt": "bench", **urls},
                "parameters": parameters}  # fmt: skip

    return {
        "video_repainting depth": (
            body("video_repainting", {"control_condition": "depth"}, video_url="v"),
            {Role.VIDEO: [video]},
        ),
        "video_edit mask image": (
            body("video_edit", {}, video_url="v", mask_image_url="m"),
            {Role.VIDEO: [video], Role.MASK_IMAGE: [mask]},
        ),
        "video_outpainting 1.5x sides": (
            body("video_outpainting", {"left_scale": 1.5, "right_scale": 1.5}, video_url="v"),
            {Role.VIDEO: [video]},
        ),
        "video_extension first frame": (
            body("video_extension", {}, first_frame_url="f"),
            {Role.FIRST_FRAME: [still]},
        ),
        "video_extension clips + guide": (
            body(
                "video_extension",
                {"control_condition": "depth"},
                first_clip_url="a",
                last_clip_url="b",
                video_url="g",
            ),
            {Role.FIRST_CLIP: [clip], Role.LAST_CLIP: [clip], Role.VIDEO: [video]},
        ),
        "image_reference 3 images": (
            body(
                "image_reference",
                {"obj_or_bg": ["obj", "bg", "obj"]},
                ref_images_url=["a", "b", "c"],
            ),
            {Role.REF_IMAGE: [still, still, still]},
        ),
    }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (body, files) in cases(folder).items():
            job = parse_job(body)
            checks, walls, cpus = [], [], []
            for _ in range(args.repeat):
                start = time.perf_counter()
                checked = check_inputs(job, files)
                checks.append(time.perf_counter() - start)
                cpu, start = children_cpu(), time.perf_counter()
                result = render(job, checked, folder / "out.mp4")
                walls.append(time.perf_counter() - start)
                cpus.append(children_cpu() - cpu)
            row = {
                "case": name,
                "output": f"{result.width}x{result.height} {result.duration:g} s",
                "check_s": statistics.median(checks),
                "render_wall_s": statistics.median(walls),
                "render_cpu_s": statistics.median(cpus),
            }
            rows.append(row)
            wall, cpu = row["render_wall_s"], row["render_cpu_s"]
            print(
                f"{name:32} {row['output']:>16}  check {row['check_s']:.2f} s  "
                f"render {wall:.2f} s wall, {cpu:.2f} s CPU"
            )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {"machine": platform.platform(), "repeat": args.repeat, "results": rows}
    (RESULTS / f"bench_render-{stamp}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

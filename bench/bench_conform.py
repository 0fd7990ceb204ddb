"""Conform time of a 60 s 1080p H.264 clip: stream copy against re-encode, one run.

    .venv/bin/python bench/bench_conform.py [--seconds 60] [--repeat 3]

Both cut the first 5 s for the `video` role; the re-encode is the plan vaceflow runs
when a source needs it (here forced). Prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from vaceflow.limits import Role
from vaceflow.media.execute import execute
from vaceflow.media.facts import gather_facts
from vaceflow.media.ffmpeg import find_ffmpeg
from vaceflow.media.plan import Plan, plan_for
from vaceflow.media.probe import probe


def make_source(folder: Path, seconds: float) -> Path:
    out = folder / "source-1080p.mp4"
    subprocess.run(
        [find_ffmpeg().path, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=30:d={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def timed(plan: Plan, source: Path, output: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        execute(plan, source, output)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = make_source(folder, args.seconds)
        facts = gather_facts(source, name="video")
        copy = plan_for(Role.VIDEO, facts, name="video")
        encode = plan_for(Role.VIDEO, facts, name="video", force_encode="benchmark")
        assert copy.mode == "copy", copy
        results = {}
        for label, plan in (("stream copy", copy), ("re-encode", encode)):
            out = folder / f"{label.replace(' ', '-')}.mp4"
            results[label] = statistics.median(timed(plan, source, out, args.repeat))
            info = probe(out)
            print(
                f"{label:12} {results[label]:7.3f} s  -> {info.duration} s, "
                f"{info.frame_count} frames, {info.size_bytes / 1e6:.1f} MB"
            )
        print(
            f"source {args.seconds:g} s 1920x1080 h264; re-encode / stream copy = "
            f"{results['re-encode'] / results['stream copy']:.0f}x"
        )


if __name__ == "__main__":
    main()

"""Find an ffmpeg binary: the system's on PATH, else the one bundled in imageio-ffmpeg.

The wheel-bundled binary (with libx264) means a fresh machine needs no apt step.
`VACEFLOW_FFMPEG` names a binary explicitly.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from vaceflow.errors import MediaError

__all__ = ["FFmpeg", "find_ffmpeg", "run_ffmpeg"]


@dataclass(frozen=True)
class FFmpeg:
    path: str
    version: str
    source: str
    """'VACEFLOW_FFMPEG', 'PATH' or 'imageio-ffmpeg'."""
    has_libx264: bool


@functools.cache
def find_ffmpeg() -> FFmpeg:
    """The ffmpeg to use; cached for the process. Raises MediaError when none exists."""
    candidates: list[tuple[str, str | None]] = [
        ("VACEFLOW_FFMPEG", os.environ.get("VACEFLOW_FFMPEG")),
        ("PATH", shutil.which("ffmpeg")),
    ]
    try:
        import imageio_ffmpeg

        candidates.append(("imageio-ffmpeg", imageio_ffmpeg.get_ffmpeg_exe()))
    except (ImportError, RuntimeError):
        pass
    for source, path in candidates:
        if not path:
            continue
        info = _inspect(path, source)
        if info is not None and info.has_libx264:
            return info
    raise MediaError(
        "no ffmpeg with libx264 found: install vaceflow's dependencies (imageio-ffmpeg "
        "bundles one) or put ffmpeg on PATH, or set VACEFLOW_FFMPEG"
    )


def _inspect(path: str, source: str) -> FFmpeg | None:
    try:
        out = subprocess.run(
            [path, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20
        )
        ver = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"ffmpeg version (\S+)", ver.stdout)
    return FFmpeg(
        path=path,
        version=match.group(1) if match else "unknown",
        source=source,
        has_libx264="libx264" in out.stdout,
    )


def run_ffmpeg(args: list[str], *, what: str, timeout: float = 600) -> None:
    """Run ffmpeg with `args` (without the binary); MediaError with its stderr tail on failure."""
    cmd = [find_ffmpeg().path, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"ffmpeg timed out after {timeout:.0f} s while {what}") from exc
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise MediaError(f"ffmpeg failed while {what}: {tail or 'exit ' + str(proc.returncode)}")

"""The conform report: per input, what it was, what was done and why, and the result.

Logged on `vaceflow.media`, printed by the dry run, stored by the catalog later.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from vaceflow.limits import MB, Role
from vaceflow.media.plan import Action, Mode
from vaceflow.media.probe import MediaInfo, rotation_label

__all__ = ["ConformReport", "MediaSummary"]


class MediaSummary(BaseModel):
    """The probe, reduced to what a person checks."""

    format: str
    width: int
    height: int
    size_bytes: int
    fps: float | None = None
    duration: float | None = None
    frame_count: int | None = None
    rotation: int = 0
    variable_frame_rate: bool = False
    has_audio: bool = False
    has_alpha: bool = False

    @classmethod
    def of(cls, info: MediaInfo) -> MediaSummary:
        fmt = info.image_format or info.codec
        if not info.is_image:
            # The mov demuxer reads .mov and .mp4 alike: the file name tells them apart.
            fmt = f"{info.codec} {Path(info.path).suffix.lstrip('.') or info.container}"
        return cls(
            format=fmt,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            fps=None if info.is_image else info.fps,
            duration=None if info.is_image else info.duration,
            frame_count=None if info.is_image else info.frame_count,
            rotation=info.rotation,
            variable_frame_rate=info.variable_frame_rate,
            has_audio=info.has_audio,
            has_alpha=info.has_alpha,
        )

    def __str__(self) -> str:
        parts = [self.format, f"{self.width}x{self.height}"]
        if self.fps is not None:
            parts.append(f"{self.fps:g} fps" + (" (variable)" if self.variable_frame_rate else ""))
        if self.duration is not None:
            parts.append(f"{self.duration:g} s ({self.frame_count} frames)")
        if self.rotation:
            parts.append(rotation_label(self.rotation))
        if self.has_audio:
            parts.append("audio")
        if self.has_alpha:
            parts.append("alpha")
        parts.append(f"{self.size_bytes / MB:.2f} MB")
        return ", ".join(parts)


class ConformReport(BaseModel):
    input: str
    """The input's name, e.g. 'video' or 'ref_image[2]'."""
    role: Role
    source: str
    """Where it came from, query strings and credentials removed."""
    source_sha256: str
    before: MediaSummary
    mode: Mode
    actions: list[Action] = Field(default_factory=list)
    after: MediaSummary
    output: str
    sha256: str
    cached: bool = False
    """True when the conformed file came from the cache: no ffmpeg ran."""
    warnings: list[str] = Field(default_factory=list)

    @property
    def done(self) -> str:
        if self.mode == "keep":
            return "unchanged"
        return "; ".join(f"{a.what} ({a.why})" for a in self.actions)

    def line(self) -> str:
        cached = " [cached]" if self.cached else ""
        return f"{self.input}: {self.before} -> {self.done}{cached}"

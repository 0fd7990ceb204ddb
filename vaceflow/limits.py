"""Every limit of the wan2.1-vace-plus contract, in one place.

The job models, the emulator and media preparation all read these tables; nothing
else restates a number. The choices of a field (sizes, control conditions, ...) are the
job models' enums (`vaceflow.jobs`), not restated here. Sources: the provider's reference
(`shared/reference/wan2.1-vace-plus-api.txt`) and the condensed wire contract
(`shared/reference/dashscope-contract.md`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ACCOUNT",
    "CLIPS_TOTAL_SECONDS",
    "IMAGE_FORMATS",
    "MAX_REF_IMAGES",
    "MAX_REF_IMAGES_WITH_VIDEO",
    "MB",
    "MEDIA_RULES",
    "OUTPUT",
    "PROMPT_MAX_CHARS",
    "SEED_MAX",
    "VIDEO_FORMATS",
    "AccountLimits",
    "MediaKind",
    "MediaRule",
    "OutputRules",
    "Role",
    "max_mask_frame_id",
]

PROMPT_MAX_CHARS = 800
"""The service cuts longer prompts silently; vaceflow refuses them instead."""

SEED_MAX = 2_147_483_647

MAX_REF_IMAGES = 3
"""image_reference takes 1-3 images; the service keeps the first 3 of a longer list."""
MAX_REF_IMAGES_WITH_VIDEO = 1
"""video_repainting and video_edit take a single reference image."""

CLIPS_TOTAL_SECONDS = 3.0
"""first_clip + last_clip together (video_extension)."""

IMAGE_FORMATS: frozenset[str] = frozenset({"jpg", "jpeg", "png", "bmp", "tiff", "tif", "webp"})
VIDEO_FORMATS: frozenset[str] = frozenset({"mp4"})

MB = 1024 * 1024


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


class Role(StrEnum):
    """What an input is for; the value is the API field without its `_url` suffix."""

    REF_IMAGE = "ref_image"
    VIDEO = "video"
    MASK_IMAGE = "mask_image"
    MASK_VIDEO = "mask_video"
    FIRST_FRAME = "first_frame"
    LAST_FRAME = "last_frame"
    FIRST_CLIP = "first_clip"
    LAST_CLIP = "last_clip"

    @property
    def api_field(self) -> str:
        """The request field that carries this role's URL(s)."""
        return "ref_images_url" if self is Role.REF_IMAGE else f"{self.value}_url"

    @property
    def rule(self) -> MediaRule:
        return MEDIA_RULES[self]


@dataclass(frozen=True)
class MediaRule:
    """The contract for one input role.

    `max_seconds` with `cut_when_longer` means the service keeps the first
    `max_seconds` of a longer input instead of failing; `match_video` means the input
    must equal the main video in resolution (and, for videos, frame rate and length).
    """

    kind: MediaKind
    formats: frozenset[str]
    max_bytes: int
    min_side: int | None = None
    max_side: int | None = None
    min_fps: float | None = None
    max_seconds: float | None = None
    cut_when_longer: bool = False
    match_video: bool = False


_IMAGE = MediaRule(MediaKind.IMAGE, IMAGE_FORMATS, 10 * MB, min_side=360, max_side=2000)
_VIDEO = MediaRule(
    MediaKind.VIDEO, VIDEO_FORMATS, 50 * MB, min_fps=16.0, max_seconds=5.0, cut_when_longer=True
)
_CLIP = MediaRule(
    MediaKind.VIDEO, VIDEO_FORMATS, 50 * MB, min_fps=16.0, max_seconds=3.0, cut_when_longer=True
)

MEDIA_RULES: dict[Role, MediaRule] = {
    Role.REF_IMAGE: _IMAGE,
    Role.FIRST_FRAME: _IMAGE,
    Role.LAST_FRAME: _IMAGE,
    Role.MASK_IMAGE: MediaRule(MediaKind.IMAGE, IMAGE_FORMATS, 10 * MB, match_video=True),
    Role.VIDEO: _VIDEO,
    Role.FIRST_CLIP: _CLIP,
    Role.LAST_CLIP: _CLIP,
    Role.MASK_VIDEO: MediaRule(
        MediaKind.VIDEO, VIDEO_FORMATS, 50 * MB, min_fps=16.0, match_video=True
    ),
}


def max_mask_frame_id(fps: float, duration: float) -> int:
    """Largest valid `mask_frame_id`: fps x duration + 1 (16 fps, 5 s -> 81)."""
    return round(fps * duration) + 1


@dataclass(frozen=True)
class OutputRules:
    """What the service returns (the provider's guide)."""

    fps: int = 30
    codec: str = "h264"
    max_seconds: float = 5.0
    fixed_seconds: float = 5.0
    """image_reference and video_extension always make 5 s."""
    max_long_side: int = 1280
    max_short_side: int = 720
    """Inputs above 720p are scaled down to fit 1280x720 (either orientation)."""


OUTPUT = OutputRules()


@dataclass(frozen=True)
class AccountLimits:
    """Shared by every key of one Alibaba Cloud account (the contract's table). An
    account with other figures says so in its settings (`Settings.account`)."""

    submit_per_second: float = 2.0
    concurrent_tasks: int = 2
    query_per_second: float = 20.0
    list_per_second: float = 20.0
    cancel_per_second: float = 20.0
    in_flight: int = 4
    """Jobs submitted and not yet ended at once, across every worker (vaceflow's choice,
    within what the service accepts: it queues what it cannot run yet): every running
    slot busy plus one queued behind each. A task that ends is then followed at once by
    one already there, whenever its end is noticed; a queued task waits no longer than
    one task runs, far from the 24 h a task id lives. 4 = 2 running x (1 + 1 queued):
    an account with more running slots raises both."""
    task_ttl_seconds: int = 24 * 3600
    """task_id and video_url both expire after 24 h."""
    upload_ttl_seconds: int = 48 * 3600
    """Files in the provider's temporary storage live 48 h."""
    list_window_seconds: int = 24 * 3600
    list_default_page_size: int = 10
    typical_task_seconds: float = 7 * 60
    """One task, submit to end, by the provider's "5 to 10 minutes": the one typical
    duration (estimates, progress) until the catalog has measured medians. Prices are
    settings (`Settings.pricing`)."""


ACCOUNT = AccountLimits()

"""The "EMULATED" mark stamped on every emulator frame, drawn without a font file.

The letters are vaceflow's built-in pixel font (`vaceflow.pixelfont`) scaled up: white
on an opaque black box, handed to ffmpeg as one raw RGBA frame to overlay. Opaque, so a
test can read the mark back from any decoded frame whatever lies under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vaceflow.pixelfont import GLYPH_HEIGHT, text_mask, text_width

__all__ = ["EMULATED", "Mark", "emulated_mark", "watermark_mark"]

EMULATED = "EMULATED"
AI_GENERATED = "AI-GENERATED"
"""What the service's own `watermark: true` writes at the bottom right."""


@dataclass(frozen=True)
class Mark:
    """A text box at (x, y) in a frame; `scale` pixels per font pixel."""

    text: str
    x: int
    y: int
    scale: int

    @property
    def pad(self) -> int:
        return 2 * self.scale

    @property
    def width(self) -> int:
        inner = text_width(self.text, self.scale) + 2 * self.pad
        return inner + inner % 2

    @property
    def height(self) -> int:
        inner = GLYPH_HEIGHT * self.scale + 2 * self.pad
        return inner + inner % 2

    def ink(self) -> npt.NDArray[np.bool_]:
        """(height, width) mask of the letter pixels inside the box."""
        letters = text_mask(self.text, self.scale)
        out = np.zeros((self.height, self.width), dtype=bool)
        h, w = letters.shape
        out[self.pad : self.pad + h, self.pad : self.pad + w] = letters
        return out

    def rgba(self) -> npt.NDArray[np.uint8]:
        """The box as an opaque (height, width, 4) image: white ink on black."""
        image = np.zeros((self.height, self.width, 4), dtype=np.uint8)
        image[..., 3] = 255
        image[self.ink(), :3] = 255
        return image

    def write(self, path: Path) -> list[str]:
        """Write the box as one raw RGBA frame; returns the ffmpeg input arguments for it."""
        path.write_bytes(self.rgba().tobytes())
        size = f"{self.width}x{self.height}"
        return ["-f", "rawvideo", "-pix_fmt", "rgba", "-s", size, "-i", str(path)]


def _scale_for(width: int, height: int) -> int:
    """2 font pixels per pixel up to 360p, 4 at 720p: readable, never dominant."""
    return max(2, min(width, height) // 180)


def emulated_mark(width: int, height: int) -> Mark:
    """The top-left "EMULATED" box for a width x height frame."""
    scale = _scale_for(width, height)
    margin = 2 * scale
    return Mark(EMULATED, margin, margin, scale)


def watermark_mark(width: int, height: int) -> Mark:
    """The bottom-right "AI-GENERATED" box the service adds when `watermark` is true."""
    scale = _scale_for(width, height)
    margin = 2 * scale
    probe = Mark(AI_GENERATED, 0, 0, scale)
    x = width - probe.width - margin
    y = height - probe.height - margin
    return Mark(AI_GENERATED, x - x % 2, y - y % 2, scale)

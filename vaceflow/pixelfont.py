"""One built-in 5x7 pixel font: text drawn into frames without a font file.

ffmpeg's drawtext needs a font a fresh machine may lack, so vaceflow draws its few
words itself: the emulator's "EMULATED" and "AI-GENERATED" marks
(`vaceflow.emulator.mark`) and the contact sheet's time labels (`vaceflow.thumbnail`).
Only the characters those need are here; `text_mask` says which one is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where text is drawn (a run loads it after its wait)
    import numpy as np
    import numpy.typing as npt

__all__ = ["GLYPH_HEIGHT", "GLYPH_WIDTH", "text_mask", "text_width"]

GLYPH_WIDTH, GLYPH_HEIGHT = 5, 7

_FONT: dict[str, tuple[str, ...]] = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".###."),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "s": (".....", ".....", ".####", "#....", ".###.", "....#", "####."),
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    " ": (".....", ".....", ".....", ".....", ".....", ".....", "....."),
}


def text_width(text: str, scale: int = 1) -> int:
    """Pixels `text` spans: one blank font column between letters."""
    return (len(text) * (GLYPH_WIDTH + 1) - 1) * scale


def text_mask(text: str, scale: int = 1) -> npt.NDArray[np.bool_]:
    """(7 x scale, `text_width`) mask, True where ink is; KeyError names a missing glyph."""
    import numpy as np

    row = np.zeros((GLYPH_HEIGHT, text_width(text)), dtype=bool)
    for i, char in enumerate(text):
        glyph = np.array([[c == "#" for c in line] for line in _FONT[char]], dtype=bool)
        x = i * (GLYPH_WIDTH + 1)
        row[:, x : x + GLYPH_WIDTH] = glyph
    return np.kron(row, np.ones((scale, scale), dtype=bool)).astype(bool)

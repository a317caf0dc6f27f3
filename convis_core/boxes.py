"""The padded canvas and the box grid of ConVis (Giulivi & Boracchi 2024, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .images import FRAME


@dataclass(frozen=True)
class Canvas:
    """The 224x224 frame pasted at (pad, pad) on uniform RGB noise (the reference's convention)."""

    pixels: np.ndarray  # (size, size, 3) uint8
    pad: int

    @classmethod
    def make(cls, frame_pixels: np.ndarray, pad: int = 128, seed: int = 0) -> Canvas:
        n = frame_pixels.shape[0]
        size = n + 2 * pad
        canvas = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
        canvas[pad : pad + n, pad : pad + n] = frame_pixels
        return cls(canvas, pad)

    @property
    def size(self) -> int:
        return int(self.pixels.shape[0])

    def crop(self, box: np.ndarray | tuple[int, int, int, int]) -> Image.Image:
        """The box's pixels ``[y0:y1, x0:x1]`` as a PIL image."""
        y0, x0, y1, x1 = (int(v) for v in box)
        return Image.fromarray(self.pixels[y0:y1, x0:x1])


def grid_boxes(canvas_size: int, box_sizes: tuple[int, ...], stride: int, pad: int | None = None,
               frame: int = FRAME) -> np.ndarray:
    """All boxes ``(y0, x0, y1, x1)``, scale by scale, corners on a ``stride`` grid, clipped.

    With ``pad`` given, only boxes that overlap the frame ``[pad, pad + frame)`` are kept: the
    others add only to pixels that are cut away, so the map is identical without them.
    """
    out = []
    corners = range(0, canvas_size, stride)
    for s in box_sizes:
        for y in corners:
            for x in corners:
                y1, x1 = min(y + s, canvas_size), min(x + s, canvas_size)
                if pad is not None and not (y < pad + frame and y1 > pad and x < pad + frame and x1 > pad):
                    continue
                out.append((y, x, y1, x1))
    return np.array(out, dtype=np.int64).reshape(-1, 4)


def accumulate(boxes: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    """Add each box's score to every pixel it covers: ``(size, size)`` float64.

    Uses a 2-D difference array (exact for integer scores).
    """
    diff = np.zeros((size + 1, size + 1), dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    y0, x0, y1, x1 = boxes.T
    np.add.at(diff, (y0, x0), s)
    np.add.at(diff, (y0, x1), -s)
    np.add.at(diff, (y1, x0), -s)
    np.add.at(diff, (y1, x1), s)
    return diff.cumsum(0).cumsum(1)[:size, :size]


def gamma_score(rank: np.ndarray | int) -> np.ndarray:
    """The reference's optional score: ``2 * exp(-5 * rank / 91) - 0.5`` for rank < 91, else -0.5."""
    r = np.asarray(rank, dtype=np.float64)
    return 2.0 * np.where(r < 91, np.exp(-5.0 * r / 91.0), 0.0) - 0.5

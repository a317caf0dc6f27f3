"""Occlusion / sliding window (Zeiler & Fergus 2014) on ConVis's box grid.

The boxes are exactly ConVis's (:func:`convis_core.boxes.grid_boxes`: sizes 128 and 64 px, corners
every 16 px on the frame padded by 128 px, only boxes overlapping the frame), so the map is
ConVis's closest non-WordNet relative. Each box's part of the frame is blanked (CLIP's mean
colour, 0 after normalisation) and the drop in cosine similarity to the concept text,
``f(I) - f(I with box blanked)``, is added to the pixels the box covers; the sum is divided by
the number of boxes covering each pixel.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from ..boxes import accumulate, grid_boxes
from ..images import FRAME
from ._clip import similarities
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register


class OcclusionParams(MethodParams):
    box_sizes: tuple[Annotated[int, Field(ge=8, le=1024)], ...] = Field((128, 64), min_length=1)
    stride: int = Field(16, ge=1, le=256)
    pad: int = Field(128, ge=0, le=512)
    batch_size: int = Field(64, ge=1, le=4096)


def frame_boxes(params: OcclusionParams, frame: int = FRAME) -> tuple[np.ndarray, int]:
    """ConVis's boxes ``(y0, x0, y1, x1)`` on the padded canvas, and the canvas size."""
    size = frame + 2 * params.pad
    return grid_boxes(size, params.box_sizes, params.stride, pad=params.pad, frame=frame), size


def occlusion_map(x: torch.Tensor, boxes: np.ndarray, pad: int, drops_of, batch_size: int,
                  canvas: int, frame: int = FRAME) -> tuple[np.ndarray, np.ndarray]:
    """Blank each box (in model pixels) in batches; returns the per-pixel mean drop over the
    frame and the per-box drops. ``drops_of(batch) -> (n,)`` gives the similarity drops."""
    s = x.shape[-1]
    fy = np.clip(boxes - pad, 0, frame)  # frame coordinates
    m = np.rint(fy * (s / frame)).astype(int)  # model-input coordinates
    drops = np.empty(len(boxes), dtype=np.float64)
    for i in range(0, len(boxes), batch_size):
        chunk = m[i : i + batch_size]
        batch = x.repeat(len(chunk), 1, 1, 1)
        for j, (y0, x0, y1, x1) in enumerate(chunk):
            batch[j, :, y0:y1, x0:x1] = 0.0
        drops[i : i + len(chunk)] = drops_of(batch)
    total = accumulate(boxes, drops, canvas)[pad : pad + frame, pad : pad + frame]
    cover = accumulate(boxes, np.ones(len(boxes)), canvas)[pad : pad + frame, pad : pad + frame]
    return total / np.maximum(cover, 1.0), drops


class Occlusion(SaliencyMethod):
    name = "occlusion"
    label = "Occlusion (ConVis boxes)"
    summary = "Similarity drop when each ConVis grid box is blanked, averaged per pixel (Zeiler & Fergus 2014)"
    Params = OcclusionParams

    def compute(self, ctx: ExplainContext, params: OcclusionParams) -> MethodOutput:
        x = ctx.frame_tensor()
        boxes, canvas = frame_boxes(params)
        base = float(similarities(ctx.model, x, ctx.text_embedding)[0])
        done = [0]

        def drops_of(batch: torch.Tensor) -> np.ndarray:
            d = base - similarities(ctx.model, batch, ctx.text_embedding, params.batch_size).numpy()
            done[0] += len(batch)
            if ctx.progress is not None:
                ctx.progress(done[0], len(boxes))
            return d

        m, drops = occlusion_map(x, boxes, params.pad, drops_of, params.batch_size, canvas)
        return MethodOutput(m, extras={"boxes": boxes, "drops": drops},
                            meta={"boxes": len(boxes), "similarity": base})


register(Occlusion, aliases=("sliding_window",))

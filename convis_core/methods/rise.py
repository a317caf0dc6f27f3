"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, BMVC 2018).

``N`` binary ``s x s`` grids (each cell on with probability ``p``) are upsampled bilinearly to
``(s + 1) * cell`` and cropped at a random shift, giving smooth masks ``M_i``; the map is
``sum_i f(I * M_i) M_i / (N p)`` with ``f`` the cosine similarity to the concept text. Masking is
done after CLIP's normalisation, so masked pixels are CLIP's mean colour. Seeded, batched.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from ._clip import similarities
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register


class RiseParams(MethodParams):
    n_masks: int = Field(1000, ge=1, le=100_000)
    grid: int = Field(8, ge=2, le=64, description="cells per side of the coarse mask")
    p: float = Field(0.5, gt=0.0, lt=1.0, description="probability that a cell is kept")
    batch_size: int = Field(64, ge=1, le=4096)
    centred: bool = Field(True, description="subtract the mean score before weighting (control variate)")
    seed: int = 0


def mask_seeds(n: int, grid: int, p: float, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All coarse grids ``(n, grid, grid)`` and shifts ``(n, 2)`` up front, so that the map does
    not depend on the batch size."""
    rng = np.random.default_rng(seed)
    cell = math.ceil(size / grid)
    return rng.random((n, grid, grid)) < p, rng.integers(0, cell, size=(n, 2))


def rise_masks(coarse: np.ndarray, shifts: np.ndarray, size: int) -> torch.Tensor:
    """``(n, size, size)`` float32 smooth masks in [0, 1] (Petsiuk et al. 2018, Sec. 3.2)."""
    n, grid = coarse.shape[0], coarse.shape[1]
    cell = math.ceil(size / grid)
    up = (grid + 1) * cell
    c = torch.from_numpy(coarse.astype(np.float32))[:, None]
    big = F.interpolate(c, size=(up, up), mode="bilinear", align_corners=False)[:, 0]
    out = torch.empty(n, size, size, dtype=torch.float32)
    for i, (dy, dx) in enumerate(shifts):
        out[i] = big[i, dy : dy + size, dx : dx + size]
    return out


class Rise(SaliencyMethod):
    name = "rise"
    label = "RISE"
    summary = "Similarity-weighted average of random smooth masks (Petsiuk et al. 2018)"
    Params = RiseParams

    def compute(self, ctx: ExplainContext, params: RiseParams) -> MethodOutput:
        x = ctx.frame_tensor()
        size = x.shape[-1]
        weighted = torch.zeros(size, size, dtype=torch.float64)
        count = torch.zeros(size, size, dtype=torch.float64)
        total = 0.0
        coarse, shifts = mask_seeds(params.n_masks, params.grid, params.p, size, params.seed)
        for start in range(0, params.n_masks, params.batch_size):
            n = min(params.batch_size, params.n_masks - start)
            masks = rise_masks(coarse[start : start + n], shifts[start : start + n], size)
            scores = similarities(ctx.model, x * masks[:, None].to(x.device, x.dtype), ctx.text_embedding, n)
            weighted += torch.einsum("n,nhw->hw", scores, masks.double())
            count += masks.double().sum(dim=0)
            total += float(scores.sum())
            if ctx.progress is not None:
                ctx.progress(start + n, params.n_masks)
        mean = total / params.n_masks
        sal = weighted - mean * count if params.centred else weighted
        return MethodOutput((sal / (params.n_masks * params.p)).numpy(), meta={"mean_similarity": mean})


register(Rise)

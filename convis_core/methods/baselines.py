"""Sanity baselines that ignore the model: seeded smooth noise and a centre-bias Gaussian.

A method that does no better than these on a metric explains nothing beyond chance or the
photographer's habit of centring objects (cf. Adebayo et al. 2018; Bylinskii et al. 2019).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from ..images import FRAME
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register


class RandomParams(MethodParams):
    cells: int = Field(7, ge=1, le=224, description="noise cells per side before smooth upsampling")
    seed: int = 0


class CentreParams(MethodParams):
    sigma: float = Field(0.25, gt=0.0, le=10.0, description="std of the Gaussian, as a fraction of the frame side")


class RandomMap(SaliencyMethod):
    name = "random"
    label = "Random (baseline)"
    summary = "Seeded smooth noise: Gaussian cells upsampled bicubically; ignores image and model"
    Params = RandomParams
    is_baseline = True

    def compute(self, ctx: ExplainContext, params: RandomParams) -> MethodOutput:
        noise = np.random.default_rng(params.seed).standard_normal((params.cells, params.cells))
        t = torch.from_numpy(noise)[None, None]
        return MethodOutput(F.interpolate(t, size=(FRAME, FRAME), mode="bicubic", align_corners=False)[0, 0].numpy())


class CentreBias(SaliencyMethod):
    name = "centre"
    label = "Centre bias (baseline)"
    summary = "An isotropic Gaussian at the frame centre; ignores image and model"
    Params = CentreParams
    is_baseline = True

    def compute(self, ctx: ExplainContext, params: CentreParams) -> MethodOutput:
        c = (np.arange(FRAME) + 0.5) / FRAME - 0.5
        r2 = c[:, None] ** 2 + c[None, :] ** 2
        return MethodOutput(np.exp(-r2 / (2 * params.sigma**2)))


register(RandomMap, aliases=("random_map",))
register(CentreBias, aliases=("center", "centre_bias", "center_bias"))

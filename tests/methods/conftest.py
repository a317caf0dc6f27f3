"""Real tiny open_clip models (no mocks) and a hand-built one whose embedding depends on known pixels.

``half_model``: convis-tiny (32-px ViT, 8-px patches) with zero positional embeddings, zero query
and key projections (every token attends uniformly), identity value/output projections and no
MLP. Its class token is then a pooled function of the patch tokens, and patches of CLIP's mean
colour (0 after normalisation) contribute nothing. On ``half_image`` (a random texture on one
half, mean colour on the other) with the target text ``normalize(f(image) - f(grey))``, only the
textured half carries signal: a correct method's map must lean to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from convis_core import load_image, load_model  # noqa: E402
from convis_core.methods import ExplainContext  # noqa: E402
from convis_core.methods._clip import ImageEmbedder  # noqa: E402
from convis_core.models import ClipModel  # noqa: E402
from convis_core.wordnet import nouns  # noqa: E402

MEAN_RGB = np.rint(np.array([0.48145466, 0.4578275, 0.40821073]) * 255).astype(np.uint8)
BANK = "subtree=canine.n.02"  # small: the ConVis entries embed it once per model
CONCEPT = "dog.n.01"


@pytest.fixture(scope="session")
def tiny_vit() -> ClipModel:
    return load_model("convis-tiny", "none", device="cpu", seed=0)


@pytest.fixture(scope="session")
def tiny_rn() -> ClipModel:
    return load_model("convis-tiny-rn", "none", device="cpu", seed=0)


@pytest.fixture(scope="session")
def tiny_cnn() -> ClipModel:
    """The Shapes-world architecture (timm-registered CNN tower), randomly initialised."""
    return load_model("shapes-world", "none", device="cpu", seed=0)


def half_model(seed: int = 0) -> ClipModel:
    """The hand-built ViT described in the module docstring."""
    m = load_model("convis-tiny", "none", device="cpu", seed=seed)
    v = m.model.visual
    with torch.no_grad():
        v.positional_embedding.zero_()
        for blk in v.transformer.resblocks:
            d = blk.attn.embed_dim
            blk.attn.in_proj_weight[: 2 * d] = 0
            blk.attn.in_proj_bias.zero_()
            blk.attn.in_proj_weight[2 * d :] = torch.eye(d)
            blk.attn.out_proj.weight.copy_(torch.eye(d))
            blk.attn.out_proj.bias.zero_()
            blk.mlp.c_proj.weight.zero_()
            blk.mlp.c_proj.bias.zero_()
    m.weights_id = f"hand-built-half-{seed}"
    return m


def half_image(seed: int = 0, side: str = "left") -> np.ndarray:
    """224x224: a blocky random texture on ``side`` (left/right/top/bottom), CLIP's mean colour elsewhere."""
    rng = np.random.default_rng(seed)
    px = np.empty((224, 224, 3), dtype=np.uint8)
    px[:] = MEAN_RGB
    px[:, :112] = rng.integers(0, 256, (8, 4, 3), dtype=np.uint8).repeat(28, 0).repeat(28, 1)
    if side == "right":
        px = px[:, ::-1]
    elif side == "top":
        px = px.transpose(1, 0, 2)
    elif side == "bottom":
        px = px.transpose(1, 0, 2)[::-1]
    return np.ascontiguousarray(px)


def context(model: ClipModel, pixels: np.ndarray, synthetic_target: bool = True) -> ExplainContext:
    """An explanation context; with ``synthetic_target`` the text embedding is the direction the
    image's content moves the embedding away from a blank (mean-colour) image."""
    ctx = ExplainContext(model, load_image(pixels), nouns().synset(CONCEPT), bank_spec=BANK)
    if synthetic_target:
        grey = ExplainContext(model, load_image(np.broadcast_to(MEAN_RGB, (224, 224, 3)).copy()), ctx.concept)
        with torch.no_grad():
            e = ImageEmbedder(model)(torch.cat([ctx.frame_tensor(), grey.frame_tensor()]))
        ctx.text_embedding = F.normalize(e[0] - e[1], dim=0)
    return ctx


def lean(m: np.ndarray, side: str) -> float:
    """Mean of the map on ``side``'s half minus the other half's."""
    h = m.shape[0] // 2
    halves = {"left": (m[:, :h], m[:, h:]), "right": (m[:, h:], m[:, :h]),
              "top": (m[:h], m[h:]), "bottom": (m[h:], m[:h])}
    a, b = halves[side]
    return float(a.mean() - b.mean())

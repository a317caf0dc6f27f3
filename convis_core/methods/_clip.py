"""Small pieces the baseline methods share: the similarity target, the ViT token grid, batching.

Every baseline explains the same quantity: the cosine similarity between CLIP's image embedding
and the concept's text embedding (``ctx.text_embedding``). "Blank" pixels are CLIP's mean colour,
i.e. 0 after CLIP's normalisation, for every perturbation method (RISE, occlusion, deletion).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer

from ..models import ClipModel


def visual(model: ClipModel) -> torch.nn.Module:
    """The image tower of an open_clip model."""
    return model.model.visual


def is_vit(model: ClipModel) -> bool:
    return isinstance(visual(model), VisionTransformer)


def is_resnet(model: ClipModel) -> bool:
    return isinstance(visual(model), ModifiedResNet)


def declared_cam_layer(model: ClipModel) -> torch.nn.Module | None:
    """The Grad-CAM layer a timm-wrapped tower declares (``trunk.gradcam_layer``), if any."""
    trunk = getattr(visual(model), "trunk", None)
    return getattr(trunk, "gradcam_layer", None)


def avg_pooled_trunk(v: torch.nn.Module) -> bool:
    """A timm-wrapped tower whose trunk average-pools its feature map (the Shapes-world CNN)."""
    trunk = getattr(v, "trunk", None)
    return getattr(trunk, "global_pool", None) == "avg" and hasattr(trunk, "forward_features")


def tower_name(model: ClipModel) -> str:
    return type(visual(model)).__name__


def token_grid(vit: VisionTransformer) -> tuple[int, int]:
    """The patch grid ``(rows, cols)`` derived from the tower's image and patch sizes."""
    ih, iw = _pair(vit.image_size)
    ph, pw = _pair(vit.patch_size)
    return ih // ph, iw // pw


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, tuple | list) else (int(v), int(v))


@dataclass(frozen=True)
class TokensToGrid:
    """Reshape transform for ViT activations: ``(B, L, C)`` tokens -> ``(B, C, rows, cols)``.

    The prefix tokens (class token, registers) are the ``L - rows * cols`` first ones; the grid
    comes from :func:`token_grid`, never a hard-coded 7x7.
    """

    grid: tuple[int, int]
    batch_first: bool = True

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if not self.batch_first:
            t = t.transpose(0, 1)
        rows, cols = self.grid
        prefix = t.shape[1] - rows * cols
        if prefix < 0:
            raise ValueError(f"{t.shape[1]} tokens cannot hold a {rows}x{cols} patch grid")
        t = t[:, prefix:]
        return t.reshape(t.shape[0], rows, cols, t.shape[2]).permute(0, 3, 1, 2)


class ImageEmbedder(torch.nn.Module):
    """``pixels -> L2-normalised image embedding``; the module gradient methods hook into."""

    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.clip = model.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.clip.encode_image(x)
        if isinstance(e, tuple):
            e = e[0]
        return F.normalize(e, dim=-1)


@dataclass(frozen=True)
class CosineTarget:
    """The one target: cosine similarity of a (normalised) image embedding with the text's."""

    text: torch.Tensor

    def __call__(self, embedding: torch.Tensor) -> torch.Tensor:
        return embedding @ self.text.to(embedding.device, embedding.dtype)


def text_vector(ctx_text: torch.Tensor, model: ClipModel) -> torch.Tensor:
    """The concept's text embedding on the model's device and dtype, ``(d,)``."""
    return F.normalize(ctx_text.to(model.device, model.dtype), dim=-1)


@torch.no_grad()
def similarities(model: ClipModel, x: torch.Tensor, text: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Cosine similarity with ``text`` of each image in ``x`` ``(n, 3, s, s)``; ``(n,)`` float64 on CPU."""
    embed = ImageEmbedder(model)
    t = text_vector(text, model)
    out = [embed(x[i : i + batch_size].to(model.device, model.dtype)) @ t for i in range(0, len(x), batch_size)]
    return torch.cat(out).double().cpu() if out else torch.empty(0, dtype=torch.float64)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Parameters do not require gradients inside the block (no ``.grad`` left on the shared
    model); their previous flags are restored in ``finally``."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)

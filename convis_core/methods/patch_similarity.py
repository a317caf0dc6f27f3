"""Raw patch-text similarity: CLIP's "patch token" map, the cheapest baseline.

ViT: the final patch tokens go through the same ``ln_post`` and ``proj`` as the pooled token and
are compared (cosine) with the concept text. ResNet: each position of the last feature map goes
through the attention pool's value and output projections (MaskCLIP, Zhou et al. ECCV 2022).
An average-pooled timm tower (the Shapes-world CNN): each position of the trunk's feature map
goes through the tower's head (the linear projection commutes with the average, as in CAM).
CLIP was never trained to align single patches with text, so this map is what a naive reading of
the patch tokens says, not an attribution; it is labelled as such.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import ClipModel
from ._clip import avg_pooled_trunk, is_resnet, is_vit, text_vector, token_grid, tower_name, visual
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register


class PatchParams(MethodParams):
    pass


@torch.no_grad()
def patch_embeddings(model: ClipModel, x: torch.Tensor) -> torch.Tensor:
    """Per-position embeddings in CLIP's joint space, ``(rows, cols, d)``, for one image."""
    v = visual(model)
    if is_vit(model):
        t = v.transformer(v._embeds(x))
        rows, cols = token_grid(v)
        t = v.ln_post(t[:, t.shape[1] - rows * cols :])
        if v.proj is not None:
            t = t @ v.proj
        return t[0].reshape(rows, cols, -1)
    if avg_pooled_trunk(v):
        f = v.trunk.forward_features(x)  # (1, C, h, w)
        t = v.head(f[0].flatten(1).T)
        return t.reshape(f.shape[2], f.shape[3], -1)
    f = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))  # (1, C, h, w)
    pool = v.attnpool
    t = pool.c_proj(pool.v_proj(f[0].flatten(1).T))
    return t.reshape(f.shape[2], f.shape[3], -1)


class PatchSimilarity(SaliencyMethod):
    name = "patch_similarity"
    label = "Raw patch-text similarity (not an attribution)"
    summary = ("Cosine of each final patch token (ln_post + proj; MaskCLIP values for ResNets) with the "
               "concept text: CLIP's raw patch-token map, which CLIP was not trained to make meaningful")
    Params = PatchParams

    def unsupported_reason(self, model: ClipModel) -> str | None:
        v = visual(model)
        if is_vit(model):
            return "attentional pooling towers have no patch tokens in the joint space" if v.attn_pool is not None else None
        if is_resnet(model) or avg_pooled_trunk(v):
            return None
        return f"no patch tokens known for {tower_name(model)}"

    def compute(self, ctx: ExplainContext, params: PatchParams) -> MethodOutput:
        e = F.normalize(patch_embeddings(ctx.model, ctx.frame_tensor()), dim=-1)
        sims = e @ text_vector(ctx.text_embedding, ctx.model)
        return MethodOutput(sims.double().cpu().numpy(),
                            meta={"similarity_range": [float(sims.min()), float(sims.max())]})


register(PatchSimilarity, aliases=("patch", "patch_text"))

"""Gradient-weighted attention relevance for ViT CLIP (Chefer, Gur & Wolf, ICCV 2021,
"Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers").

For every block ``b`` with attention probabilities ``A_b`` (heads x tokens x tokens) and their
gradient ``G_b`` w.r.t. the target (cosine similarity with the concept text)::

    R = I;  R = R + mean_h(relu(G_b * A_b)) @ R   (b = start_layer .. last)

and the map is the class token's row of ``R`` over the patch tokens. open_clip's blocks call
``nn.MultiheadAttention`` with ``need_weights=False``; while the method runs, each block's
``attention`` is replaced by an exact re-computation of the same attention that keeps the
probabilities in the graph, and the original is restored in ``finally``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from pydantic import Field

from ..models import ClipModel
from ._clip import CosineTarget, ImageEmbedder, is_vit, token_grid, tower_name, visual
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register


class RelevanceParams(MethodParams):
    start_layer: int = Field(0, ge=0, description="first block whose attention is accumulated")


def _attention_fn(block: ResidualAttentionBlock, store: list[torch.Tensor]):
    """A drop-in for ``block.attention`` (self-attention) that records the probabilities."""
    mha = block.attn
    batch_first = mha.batch_first

    def attention(q_x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                  attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if k_x is not None or v_x is not None:
            raise RuntimeError("attention relevance supports self-attention blocks only")
        x = q_x if batch_first else q_x.transpose(0, 1)
        b, n, d = x.shape
        h = mha.num_heads
        qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).reshape(b, n, 3, h, d // h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        scores = (q * (d // h) ** -0.5) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores + attn_mask.to(scores.dtype)
        probs = scores.softmax(dim=-1)
        store.append(probs)
        out = mha.out_proj((probs @ v).transpose(1, 2).reshape(b, n, d))
        return out if batch_first else out.transpose(0, 1)

    return attention


@contextmanager
def recording_attention(model: ClipModel) -> Iterator[list[torch.Tensor]]:
    """Patch every image block to record its attention probabilities (restored in ``finally``)."""
    blocks = list(visual(model).transformer.resblocks)
    store: list[torch.Tensor] = []
    try:
        for blk in blocks:
            blk.attention = _attention_fn(blk, store)
        yield store
    finally:
        for blk in blocks:
            blk.__dict__.pop("attention", None)


class AttentionRelevance(SaliencyMethod):
    name = "attention_relevance"
    label = "Attention relevance"
    summary = "Gradient-weighted attention rolled out through the ViT blocks (Chefer et al. 2021)"
    Params = RelevanceParams

    def unsupported_reason(self, model: ClipModel) -> str | None:
        if not is_vit(model):
            return f"it needs a Vision Transformer image tower, and this one is a {tower_name(model)}"
        v = visual(model)
        if getattr(v, "attn_pool", None) is not None:
            return "attentional pooling (CoCa-style) towers are not supported"
        for blk in v.transformer.resblocks:
            mha = getattr(blk, "attn", None)
            if not isinstance(blk, ResidualAttentionBlock) or not isinstance(mha, torch.nn.MultiheadAttention):
                return f"its blocks are {type(blk).__name__}, not open_clip's ResidualAttentionBlock"
            if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
                return "its attention layers use separate q/k/v sizes or extra key/value biases"
        return None

    def compute(self, ctx: ExplainContext, params: RelevanceParams) -> MethodOutput:
        v = visual(ctx.model)
        n_layers = len(v.transformer.resblocks)
        if params.start_layer >= n_layers:
            from ..errors import ConvisError

            raise ConvisError(f"invalid parameters for {self.name}: start_layer {params.start_layer} is beyond the model's {n_layers} blocks")
        x = ctx.frame_tensor().requires_grad_(True)
        target = CosineTarget(ctx.text_embedding)
        with recording_attention(ctx.model) as store:
            sim = target(ImageEmbedder(ctx.model)(x))[0]
            grads = torch.autograd.grad(sim, store)
        n = store[0].shape[-1]
        rel = torch.eye(n, dtype=torch.float64)
        for attn, grad in list(zip(store, grads, strict=True))[params.start_layer:]:
            cam = (grad.detach() * attn.detach()).clamp(min=0).mean(dim=1)[0].double()
            rel = rel + cam @ rel
        rows, cols = token_grid(v)
        prefix = n - rows * cols
        patch_rel = rel[0, prefix:] if v.pool_type == "tok" else rel[prefix:, prefix:].mean(dim=0)
        return MethodOutput(patch_rel.reshape(rows, cols).numpy(), meta={"similarity": float(sim.detach())})


register(AttentionRelevance, aliases=("chefer", "relevance"))

"""Grad-CAM (Selvaraju et al. 2017) through the ``grad-cam`` package (pytorch-grad-cam).

``cam = relu(sum_c mean_xy(d target / d A_c) * A_c)`` at one layer, where the target is the
cosine similarity between the image embedding and the concept's text embedding. Layers: the
input of the last block's attention (``resblocks[-1].ln_1``, patch tokens reshaped to the grid
derived from image and patch size) for a ViT, the last bottleneck of ``layer4`` for a ResNet,
and the layer a project tower declares (``gradcam_layer``, e.g. the Shapes-world CNN's last stage).
"""

from __future__ import annotations

import torch
from pytorch_grad_cam import GradCAM as _LibGradCAM

from ..models import ClipModel
from ._clip import (
    CosineTarget,
    ImageEmbedder,
    TokensToGrid,
    declared_cam_layer,
    frozen,
    is_resnet,
    is_vit,
    token_grid,
    tower_name,
    visual,
)
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register


class GradCAMParams(MethodParams):
    pass


def target_layer(model: ClipModel) -> tuple[torch.nn.Module, TokensToGrid | None]:
    """The layer Grad-CAM reads and the reshape its activations need, per architecture."""
    v = visual(model)
    if is_vit(model):
        return v.transformer.resblocks[-1].ln_1, TokensToGrid(token_grid(v), v.transformer.batch_first)
    if is_resnet(model):
        return v.layer4[-1], None
    declared = declared_cam_layer(model)
    if declared is not None:
        return declared, None
    raise ValueError(f"no Grad-CAM layer for {tower_name(model)}")


class GradCAM(SaliencyMethod):
    name = "gradcam"
    label = "Grad-CAM"
    summary = "Gradient-weighted activations of the last ViT block / CNN stage (Selvaraju et al. 2017, via pytorch-grad-cam)"
    Params = GradCAMParams

    def unsupported_reason(self, model: ClipModel) -> str | None:
        if is_vit(model) or is_resnet(model) or declared_cam_layer(model) is not None:
            return None
        return (f"Grad-CAM knows the target layer of ViT and ModifiedResNet towers and of towers that "
                f"declare one, not {tower_name(model)}")

    def compute(self, ctx: ExplainContext, params: GradCAMParams) -> MethodOutput:
        layer, reshape = target_layer(ctx.model)
        cam = _LibGradCAM(model=ImageEmbedder(ctx.model), target_layers=[layer], reshape_transform=reshape)
        cam.compute_input_gradient = True  # the graph comes from the input, not from parameter grads
        try:
            with frozen(ctx.model.model):
                out = cam(input_tensor=ctx.frame_tensor(), targets=[CosineTarget(ctx.text_embedding)])
        finally:
            cam.activations_and_grads.release()
        return MethodOutput(out[0], meta={"target_layer": type(layer).__name__})


register(GradCAM, aliases=("grad_cam", "grad-cam"))

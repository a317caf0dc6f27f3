"""Small image towers for the project's own open_clip configs, registered with timm.

open_clip builds a timm tower for any config whose ``vision_cfg`` names ``timm_model_name``
(pooled by ``timm_pool``, projected by ``timm_proj``). Registering a model here makes such a config
load through open_clip's ordinary path, checkpoints included. ``convis_small_cnn`` is the
``shapes-world`` tower: a plain VGG-style network (four stages of two 3x3 conv-BN-ReLU and a
2x2 max-pool, 4x4 features at 64 px). At 64 px, stride-32 towers (open_clip's ModifiedResNet,
timm's small ResNets) and a ViT/8 learned the Shapes world several times more slowly on this CPU:
their stems discard the detail that tells a hexagon from a circle at 15 px.
"""

from __future__ import annotations

import torch
from timm.models import register_model
from torch import nn

__all__ = ["SmallCNN", "convis_small_cnn"]


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """VGG-style trunk with timm's classifier interface (``num_features``, ``reset_classifier``)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 96, 128), num_classes: int = 0,
                 global_pool: str = "avg", in_chans: int = 3) -> None:
        super().__init__()
        chans = (in_chans, *widths)
        self.stages = nn.ModuleList(_stage(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.pool = nn.MaxPool2d(2)
        self.num_features = widths[-1]
        self.default_cfg: dict = {"pool_size": None}
        self.pretrained_cfg = self.default_cfg
        self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int = 0, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"SmallCNN pools by 'avg' or not at all, not {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    @property
    def gradcam_layer(self) -> nn.Module:
        """The module whose output Grad-CAM weighs (the last stage, before pooling)."""
        return self.stages[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = self.pool(stage(x))
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def convis_small_cnn(pretrained: bool = False, **kwargs) -> SmallCNN:  # noqa: ANN003
    """The ``shapes-world`` tower (random init; no pretrained weights exist for it)."""
    if pretrained:
        raise ValueError("convis_small_cnn has no pretrained weights; load a checkpoint instead")
    for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(k, None)
    return SmallCNN(**kwargs)

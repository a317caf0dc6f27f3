"""The per-image work of a run, as top-level picklable functions of frozen task objects, so any
executor (a plain ``map``, a process pool, Ray) can map them. Each returns the item's record and
stores it in the run's cache first; a task whose record is stored returns it without work."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .cache import read_item, write_item


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the CLIP model (the same weights in every process)."""

    name: str
    pretrained: str
    seed: int = 0
    device: str | None = None

    def load(self):  # noqa: ANN201 - ClipModel, imported lazily
        from ..models import load_model_cached

        return load_model_cached(self.name, self.pretrained, self.device, self.seed)


@dataclass(frozen=True)
class WsolTask:
    """One (image, method) of a localisation run."""

    cache_path: str
    model: ModelSpec
    image: str
    boxes: tuple[tuple[float, float, float, float], ...]  # original pixels
    concept: str
    method: str
    params_json: str
    bank: str
    text_mode: str


def wsol_map(task: WsolTask) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """The task's map and its ground-truth boxes in the frame (for galleries)."""
    from ..images import load_image
    from ..methods import explain
    from .datasets import boxes_in_frame

    img = load_image(task.image)
    res = explain(task.model.load(), img, task.concept, method=task.method, bank=task.bank,
                  text_mode=task.text_mode, **json.loads(task.params_json))
    return res.map, boxes_in_frame(task.boxes, img.frame)


def wsol_item(task: WsolTask) -> dict[str, Any]:
    """IoU curves (MaxBoxAcc and V2), the pointing game and timings of one (image, method)."""
    from ..errors import ConvisError
    from ..images import load_image
    from ..metrics import pointing_game
    from .datasets import boxes_in_frame
    from .localisation import v1_curve, v2_curve

    path = Path(task.cache_path)
    cached = read_item(path)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    try:
        img = load_image(task.image)
        gt = boxes_in_frame(task.boxes, img.frame)
        if not gt:
            raise ConvisError("no ground-truth box lies inside the centre crop the maps cover")
        from ..methods import explain

        res = explain(task.model.load(), img, task.concept, method=task.method, bank=task.bank,
                      text_mode=task.text_mode, **json.loads(task.params_json))
    except ConvisError as e:
        rec: dict[str, Any] = {"error": str(e)}
    else:
        v1 = v1_curve(res.map, gt)
        rec = {"error": "", "pointing": bool(pointing_game(res.map, gt)), "flat": bool(res.meta.get("flat")),
               "seconds": round(time.perf_counter() - t0, 4), "seed": res.meta.get("seed"),
               "v1_iou": v1.iou, "v1_boxes": v1.boxes, "v2_iou": v2_curve(res.map, gt),
               "frame_boxes": np.asarray(gt, dtype=np.float64)}
    write_item(path, rec)
    return rec


@dataclass(frozen=True)
class OodTask:
    """One image of an OOD run: its CLIP embedding and, with a ResNet-50 file, its maximum logit."""

    cache_path: str
    model: ModelSpec
    image: str
    resnet50: str | None = None


@lru_cache(maxsize=2)
def load_resnet50(path: str):  # noqa: ANN201 - torchvision model, imported lazily
    """torchvision's ResNet-50 with a local state dict (a clear error when it does not fit)."""
    import torch
    from torchvision.models import resnet50

    from ..errors import ConvisError

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise ConvisError(f"cannot read ResNet-50 weights {path}: {e}") from e
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    model = resnet50(weights=None)
    try:
        model.load_state_dict(sd)
    except (RuntimeError, TypeError) as e:
        raise ConvisError(f"{path} is not a torchvision ResNet-50 state dict: {str(e).splitlines()[0]}") from e
    return model.eval()


def resnet_max_logit(path: str, image: str) -> float:
    """Maximum logit of the ResNet-50 on ImageNet's evaluation preprocessing of ``image``
    (resize 256, centre crop 224, ImageNet mean/std)."""
    import torch
    from torchvision import transforms

    from ..images import open_image

    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        return float(load_resnet50(path)(tf(open_image(image))[None]).max())


def ood_item(task: OodTask) -> dict[str, Any]:
    """The image's L2-normalised CLIP embedding of the frame (and the ResNet-50 maximum logit)."""
    from ..concepts import image_embedding
    from ..errors import ConvisError

    path = Path(task.cache_path)
    cached = read_item(path)
    if cached is not None:
        return cached
    try:
        rec: dict[str, Any] = {"error": "", "embedding": image_embedding(task.model.load(), task.image).float().cpu().numpy(),
                               "resnet_max_logit": resnet_max_logit(task.resnet50, task.image) if task.resnet50 else math.nan}
    except ConvisError as e:
        if task.resnet50 and "ResNet-50" in str(e):
            raise
        rec = {"error": str(e)}
    write_item(path, rec)
    return rec

"""Saliency metrics: deletion/insertion, pointing game, box IoU and MaxBoxAcc, model randomisation.

Conventions: maps are ``(224, 224)`` arrays over the frame (higher = more concept); boxes are
``(x0, y0, x1, y1)`` in frame pixels, half-open (pixel ``(x, y)`` is inside when
``x0 <= x < x1`` and ``y0 <= y < y1``), so a box's area is ``(x1 - x0) * (y1 - y0)``.
The model-dependent metrics use the same target as the methods: the cosine similarity between
CLIP's image embedding and the concept's text embedding, with "removed" pixels set to CLIP's
mean colour (0 after normalisation).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from .methods import ExplainContext, get_method
from .methods._clip import is_resnet, is_vit, similarities, visual
from .models import ClipModel

Box = tuple[float, float, float, float]
THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.01), 2)


# ------------------------------------------------------------------------------ boxes
def box_area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two half-open boxes (0 when both are empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def largest_component_box(saliency: np.ndarray, threshold: float) -> Box | None:
    """Bounding box of the largest 4-connected component of ``saliency >= threshold``
    (Choe et al. CVPR 2020, WSOL evaluation); ``None`` when nothing passes. Ties: the component
    found first in row-major order."""
    mask = np.asarray(saliency) >= threshold
    labels, n = ndimage.label(mask)  # default structure: 4-connectivity
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    ys, xs = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def box_iou_at(saliency: np.ndarray, gt: Box | Sequence[Box], threshold: float) -> float:
    """IoU of the largest-component box at ``threshold`` with the best-matching ground-truth box."""
    pred = largest_component_box(saliency, threshold)
    if pred is None:
        return 0.0
    return max(box_iou(pred, g) for g in _boxes(gt))


def _boxes(gt: Box | Sequence[Box]) -> list[Box]:
    arr = np.asarray(gt, dtype=np.float64)
    return [tuple(arr)] if arr.ndim == 1 else [tuple(r) for r in arr]


@dataclass
class MaxBoxAcc:
    """MaxBoxAcc (Choe et al. 2020): the best, over map thresholds, of the fraction of images whose
    largest-component box has IoU >= ``iou_threshold`` with a ground-truth box."""

    value: float
    best_threshold: float
    iou_threshold: float
    thresholds: np.ndarray
    accuracy: np.ndarray  # per threshold


def max_box_acc(maps: Sequence[np.ndarray], gt_boxes: Sequence[Box | Sequence[Box]],
                iou_threshold: float = 0.5, thresholds: np.ndarray = THRESHOLDS) -> MaxBoxAcc:
    """MaxBoxAcc over ``maps`` (each in [0, 1]) and their ground-truth box(es)."""
    if len(maps) != len(gt_boxes) or not maps:
        raise ValueError("max_box_acc needs one ground truth per map and at least one map")
    hits = np.array([[box_iou_at(m, g, t) >= iou_threshold for t in thresholds] for m, g in zip(maps, gt_boxes, strict=True)])
    acc = hits.mean(axis=0)
    best = int(np.argmax(acc))
    return MaxBoxAcc(float(acc[best]), float(thresholds[best]), iou_threshold, np.asarray(thresholds), acc)


def pointing_game(saliency: np.ndarray, gt: Box | Sequence[Box], tolerance: int = 0) -> bool:
    """Pointing game (Zhang et al. ECCV 2016): a hit when every pixel attaining the map's maximum
    lies in a ground-truth box grown by ``tolerance`` px. A flat map never hits."""
    s = np.asarray(saliency)
    if s.max() == s.min():
        return False
    ys, xs = np.nonzero(s == s.max())
    for x0, y0, x1, y1 in _boxes(gt):
        inside = (xs >= x0 - tolerance) & (xs < x1 + tolerance) & (ys >= y0 - tolerance) & (ys < y1 + tolerance)
        if inside.all():
            return True
    return False


# ------------------------------------------------------------------- deletion / insertion
def auc(y: np.ndarray, x: np.ndarray | None = None) -> float:
    """Trapezoidal area under ``y``; ``x`` defaults to ``len(y)`` points evenly on [0, 1]."""
    y = np.asarray(y, dtype=np.float64)
    x = np.linspace(0.0, 1.0, len(y)) if x is None else np.asarray(x, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


@dataclass
class Curve:
    """A deletion or insertion curve: similarity after removing/inserting ``fractions`` of pixels."""

    kind: str
    fractions: np.ndarray
    scores: np.ndarray
    auc: float

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "auc": self.auc, "fractions": self.fractions.tolist(), "scores": self.scores.tolist()}


def _order(saliency: np.ndarray, size: int) -> torch.Tensor:
    """Model-input pixels from most to least salient (stable, ties in row-major order)."""
    s = torch.from_numpy(np.asarray(saliency, dtype=np.float32))[None, None]
    if s.shape[-1] != size:
        s = F.interpolate(s, size=(size, size), mode="bilinear", align_corners=False)
    return torch.from_numpy(np.argsort(-s.flatten().numpy(), kind="stable"))


def perturbation_curve(model: ClipModel, x: torch.Tensor, saliency: np.ndarray, text: torch.Tensor,
                       kind: str = "deletion", steps: int = 32, batch_size: int = 32,
                       blur_sigma: float = 5.0) -> Curve:
    """Deletion or insertion curve (Petsiuk et al. 2018) of one preprocessed image ``x`` (1, 3, s, s).

    Deletion sets the most salient pixels to CLIP's mean colour first; insertion starts from a
    blurred copy (Gaussian, ``blur_sigma`` model pixels) and puts the most salient pixels back
    first. ``steps + 1`` points from 0 to all pixels; AUC over the fraction on [0, 1].
    """
    if kind not in ("deletion", "insertion"):
        raise ValueError("kind must be 'deletion' or 'insertion'")
    size = x.shape[-1]
    order = _order(saliency, size)
    n = size * size
    counts = np.rint(np.linspace(0, n, steps + 1)).astype(int)
    if kind == "deletion":
        start, end = x[0], torch.zeros_like(x[0])
    else:
        blurred = ndimage.gaussian_filter(x[0].cpu().double().numpy(), sigma=(0, blur_sigma, blur_sigma))
        start, end = torch.from_numpy(blurred).to(x.dtype).to(x.device), x[0]
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    rank = rank.reshape(size, size).to(x.device)
    batch = torch.stack([torch.where(rank < c, end, start) for c in counts])
    scores = similarities(model, batch, text, batch_size).numpy()
    fr = counts / n
    return Curve(kind, fr, scores, auc(scores, fr))


def deletion_insertion(ctx: ExplainContext, saliency: np.ndarray, steps: int = 32,
                       batch_size: int = 32) -> dict[str, Curve]:
    """Both curves for a map of ``ctx``'s image and concept (see :func:`perturbation_curve`)."""
    x, t = ctx.frame_tensor(), ctx.text_embedding
    return {k: perturbation_curve(ctx.model, x, saliency, t, k, steps, batch_size) for k in ("deletion", "insertion")}


# ------------------------------------------------------------------ model randomisation
def randomisation_groups(model: ClipModel) -> list[tuple[str, list[torch.nn.Module | torch.nn.Parameter]]]:
    """The image tower's layers from the top (output) down, as named groups."""
    v = visual(model)
    if is_vit(model):
        top: list[Any] = [v.ln_post] + ([v.proj] if v.proj is not None else [])
        groups = [("head", top)]
        blocks = list(v.transformer.resblocks)
        groups += [(f"block{i}", [b]) for i, b in reversed(list(enumerate(blocks)))]
        groups.append(("embeddings", [v.conv1, v.ln_pre, v.class_embedding, v.positional_embedding]))
        return groups
    if is_resnet(model):
        return [("attnpool", [v.attnpool]), ("layer4", [v.layer4]), ("layer3", [v.layer3]),
                ("layer2", [v.layer2]), ("layer1", [v.layer1]),
                ("stem", [v.conv1, v.bn1, v.conv2, v.bn2, v.conv3, v.bn3])]
    if hasattr(v, "trunk") and hasattr(v, "head"):     # a timm tower (open_clip's TimmModel)
        return [("head", [v.head])] + [(name, [m]) for name, m in reversed(_trunk_blocks(v.trunk))]
    raise ValueError(f"no layer groups known for {type(v).__name__}")


def _trunk_blocks(trunk: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """A timm trunk's blocks from the input up: its top-level children with parameters, a
    ModuleList or Sequential of stages opened into its stages."""
    blocks: list[tuple[str, torch.nn.Module]] = []
    for name, child in trunk.named_children():
        kids = (list(child.named_children()) if isinstance(child, torch.nn.ModuleList | torch.nn.Sequential)
                else [("", child)])
        blocks += [(f"{name}.{k}" if k else name, m) for k, m in kids if any(True for _ in m.parameters())]
    return blocks


def _reinit(t: torch.Tensor, gen: torch.Generator) -> None:
    """Redraw a tensor as Gaussian noise with the tensor's own mean and std (constant tensors,
    such as LayerNorm gains, stay constant)."""
    with torch.no_grad():
        mean, std = t.float().mean(), t.float().std() if t.numel() > 1 else torch.tensor(0.0)
        noise = torch.randn(t.shape, generator=gen, dtype=torch.float32)
        t.copy_((mean + std * noise).to(t.dtype))


def randomised_copy(model: ClipModel, n_groups: int, seed: int = 0) -> ClipModel:
    """A deep copy with the top ``n_groups`` layer groups re-initialised (Adebayo et al. 2018,
    cascading randomisation). The original model is untouched; the copy's ``weights_id`` names
    the randomisation so no cache is shared with the original."""
    m = copy.deepcopy(model.model)
    cm = dataclasses.replace(model, model=m, weights_id=f"{model.weights_id}+randtop{n_groups}-s{seed}")
    gen = torch.Generator().manual_seed(seed)
    for _, members in randomisation_groups(cm)[:n_groups]:
        for mod in members:
            tensors = [mod] if isinstance(mod, torch.Tensor) else list(mod.parameters())
            for t in tensors:
                _reinit(t, gen)
    return cm


@dataclass
class RandomisationResult:
    """Per method: Spearman and SSIM of the map after each cumulative step vs the original map."""

    steps: list[str]
    spearman: dict[str, list[float]] = field(default_factory=dict)
    ssim: dict[str, list[float]] = field(default_factory=dict)
    flagged: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def map_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Spearman rank correlation, SSIM with data range 1) of two maps; a flat map's Spearman is 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.std() == 0 or b.std() == 0:
        rho = 1.0 if np.array_equal(a, b) else 0.0
    else:
        rho = float(spearmanr(a.ravel(), b.ravel()).statistic)
    return rho, float(structural_similarity(a, b, data_range=1.0))


def model_randomisation(ctx: ExplainContext, methods: Sequence[str], params: dict[str, dict] | None = None,
                        max_steps: int | None = None, seed: int = 0, flag_at: float = 0.5) -> RandomisationResult:
    """The model-randomisation sanity check (Adebayo et al. NeurIPS 2018).

    Layer groups of the image tower are re-initialised cumulatively from the top; after each step
    every method's map is compared with its map on the original model. A method is flagged when,
    with all the randomised groups, its map still has Spearman >= ``flag_at`` with the original:
    its map does not depend on what the model learned.
    """
    params = params or {}
    groups = randomisation_groups(ctx.model)
    k = len(groups) if max_steps is None else max(1, min(max_steps, len(groups)))
    originals = {m: get_method(m).explain(ctx, **params.get(m, {})).map for m in methods}
    res = RandomisationResult(steps=[name for name, _ in groups[:k]])
    for step in range(1, k + 1):
        rctx = dataclasses.replace(ctx, model=randomised_copy(ctx.model, step, seed))
        for cached in ("text_embedding", "bank"):  # the text tower and the bank are not randomised
            if cached in ctx.__dict__:
                rctx.__dict__[cached] = ctx.__dict__[cached]
        for m in methods:
            rho, ss = map_similarity(originals[m], get_method(m).explain(rctx, **params.get(m, {})).map)
            res.spearman.setdefault(m, []).append(rho)
            res.ssim.setdefault(m, []).append(ss)
    res.flagged = {m: bool(res.spearman[m][-1] >= flag_at) for m in methods}
    return res

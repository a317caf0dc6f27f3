"""Localisation metrics from a saliency map and ground-truth boxes, per image and over a set.

Per image, a map becomes an *IoU curve*: for each map threshold, the IoU of the predicted box(es)
with the ground truth. The set's figure is then the best, over thresholds, of the fraction of
images whose IoU clears the bar, so a run stores the curves (small) and never the maps.

- ``MaxBoxAcc`` as the ConVis authors computed it: thresholds 0.00, 0.01, ..., 0.99, the box of the
  largest 4-connected component of ``map >= t``, its IoU with the best-matching ground-truth box,
  a hit when IoU > 0.5 (strictly).
- ``MaxBoxAccV2`` (Choe et al., CVPR 2020, "Evaluating weakly supervised object localization methods
  right"): thresholds 0.000, 0.001, ..., 0.999; the boxes of *every* connected component of
  ``map >= t`` (their multi-contour evaluation) against *every* ground-truth box, the best pair
  counts; a hit when IoU >= delta; the mean over delta in {0.3, 0.5, 0.7} of each delta's best
  accuracy. Components are 4-connected (``scipy.ndimage.label``), where their code traces OpenCV
  contours: a map region touching only at a corner can be one box there and two here.

Boxes are half-open frame pixels ``(x0, y0, x1, y1)`` (see :mod:`convis_core.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..metrics import THRESHOLDS, Box, largest_component_box

#: MaxBoxAcc (the authors): 100 thresholds, IoU > 0.5.
V1_THRESHOLDS = THRESHOLDS
V1_IOU = 0.5
#: MaxBoxAccV2 (Choe et al. 2020): 1,000 thresholds, IoU >= 0.3 / 0.5 / 0.7.
V2_THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.001), 3)
V2_IOUS = (0.3, 0.5, 0.7)


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every predicted box (rows) with every ground-truth box (columns); ``(n, 4)`` arrays."""
    pred, gt = np.asarray(pred, dtype=np.float64).reshape(-1, 4), np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(pred[:, None, 2], gt[None, :, 2]) - np.maximum(pred[:, None, 0], gt[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(pred[:, None, 3], gt[None, :, 3]) - np.maximum(pred[:, None, 1], gt[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    union = area(pred)[:, None] + area(gt)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class V1Curve:
    """Per threshold: the largest component's box (``-1`` rows where nothing passes) and its IoU."""

    boxes: np.ndarray  # (len(V1_THRESHOLDS), 4) int
    iou: np.ndarray  # (len(V1_THRESHOLDS),) float


def v1_curve(saliency: np.ndarray, gt: Sequence[Box], thresholds: np.ndarray = V1_THRESHOLDS) -> V1Curve:
    """The authors' per-image curve: largest 4-connected component, best-matching GT box."""
    gt_arr = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    boxes = np.full((len(thresholds), 4), -1, dtype=np.int64)
    iou = np.zeros(len(thresholds))
    for i, t in enumerate(thresholds):
        b = largest_component_box(saliency, float(t))
        if b is not None:
            boxes[i] = b
            iou[i] = iou_matrix(np.asarray(b), gt_arr).max()
    return V1Curve(boxes, iou)


def component_boxes(saliency: np.ndarray, threshold: float) -> np.ndarray:
    """Boxes of every 4-connected component of ``saliency >= threshold``, ``(k, 4)``."""
    labels, n = ndimage.label(np.asarray(saliency) >= threshold)
    if n == 0:
        return np.zeros((0, 4))
    sl = ndimage.find_objects(labels)
    return np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in sl], dtype=np.float64)


def v2_curve(saliency: np.ndarray, gt: Sequence[Box], thresholds: np.ndarray = V2_THRESHOLDS) -> np.ndarray:
    """Choe et al.'s per-image curve: the best IoU between any component's box and any GT box."""
    gt_arr = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(saliency)
    out = np.zeros(len(thresholds))
    levels = np.unique(s)
    last_level, last_iou = None, 0.0
    for i, t in enumerate(thresholds):
        # the mask only changes when t passes a value the map takes: reuse the previous answer
        level = levels[np.searchsorted(levels, t)] if t <= levels[-1] else None
        if level is None:
            out[i] = 0.0
            continue
        if level != last_level:
            boxes = component_boxes(s, float(t))
            last_level, last_iou = level, float(iou_matrix(boxes, gt_arr).max()) if len(boxes) else 0.0
        out[i] = last_iou
    return out


@dataclass
class BoxAcc:
    """Box accuracy per threshold over a set of images, and its best point."""

    value: float
    best_threshold: float
    best_index: int
    accuracy: np.ndarray  # per threshold


def box_accuracy(curves: np.ndarray, thresholds: np.ndarray, iou: float, strict: bool) -> BoxAcc:
    """Best over thresholds of the fraction of images (rows of ``curves``) whose IoU clears ``iou``
    (``>`` when ``strict``, else ``>=``). Ties between thresholds: the lowest threshold."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[0] == 0:
        raise ValueError("box_accuracy needs one IoU curve per image and at least one image")
    hits = curves > iou if strict else curves >= iou
    acc = hits.mean(axis=0)
    best = int(np.argmax(acc))
    return BoxAcc(float(acc[best]), float(thresholds[best]), best, acc)


def max_box_acc_v1(curves: np.ndarray) -> BoxAcc:
    """MaxBoxAcc as the ConVis authors computed it, from :func:`v1_curve` IoU curves."""
    return box_accuracy(curves, V1_THRESHOLDS, V1_IOU, strict=True)


def max_box_acc_v2(curves: np.ndarray) -> tuple[float, dict[float, BoxAcc]]:
    """MaxBoxAccV2 from :func:`v2_curve` curves: the mean over the three IoU bars, and each bar's result."""
    per = {d: box_accuracy(curves, V2_THRESHOLDS, d, strict=False) for d in V2_IOUS}
    return float(np.mean([r.value for r in per.values()])), per

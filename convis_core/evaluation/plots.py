"""A run's PNG plots (matplotlib, Agg): box accuracy per threshold, ROC curves, and a gallery of
the best and worst localisations with predicted (red) and true (green) boxes over the map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .localisation import V1_THRESHOLDS
from .tasks import WsolTask, wsol_map


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def box_acc_plot(summary: dict[str, Any], path: Path) -> None:
    """Box accuracy (IoU > 0.5, largest component) against the map threshold, one line per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, r in summary["methods"].items():
        if r.get("n"):
            ax.plot(V1_THRESHOLDS, r["box_acc_curve"], label=f"{m} (max {100 * r['max_box_acc']:.1f} %)")
    ax.set_xlabel("map threshold")
    ax.set_ylabel("box accuracy (IoU > 0.5)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(f"{summary['concept']}, {summary['n_images']} images")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def roc_plot(labels: np.ndarray, scores: dict[str, np.ndarray], summary: dict[str, Any], path: Path) -> None:
    """ROC curve of every score (in-distribution = positive)."""
    from .detection import roc_points

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    for k, s in scores.items():
        fpr, tpr = roc_points(labels, s)
        ax.plot(fpr, tpr, label=f"{k} (AUROC {summary['scores'][k]['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false-positive rate (out accepted)")
    ax.set_ylabel("true-positive rate (in accepted)")
    ax.set_title(f"in {summary['in']} vs out {summary['out']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def gallery(path: Path, method: str, tasks: list[WsolTask], records: list[dict], threshold: float, k: int) -> None:
    """The ``k`` best and ``k`` worst images of ``method`` by IoU at its MaxBoxAcc threshold."""
    if k <= 0:
        return
    from matplotlib.patches import Rectangle
    from PIL import Image

    from ..images import load_image

    i_t = int(np.argmin(np.abs(V1_THRESHOLDS - threshold)))
    items = [(float(r["v1_iou"][i_t]), t, r) for t, r in zip(tasks, records, strict=True)
             if t.method == method and not r.get("error")]
    items.sort(key=lambda x: (-x[0], x[1].image))
    best = list(range(min(k, len(items))))
    worst = [i for i in range(len(items) - 1, -1, -1) if i not in best][:k]
    picks = [("best", items[i]) for i in best] + [("worst", items[i]) for i in worst]
    if not picks:
        return
    plt = _plt()
    cols = min(k, len(picks))
    rows = (len(picks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (kind, (iou, t, r)) in zip(axes.ravel(), picks, strict=False):
        smap, gt = wsol_map(t)
        ax.imshow(Image.fromarray(load_image(t.image).pixels))
        ax.imshow(smap, cmap="viridis", alpha=0.45, vmin=0, vmax=1)
        for x0, y0, x1, y1 in gt:
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1.5))
        b = r["v1_boxes"][i_t]
        if b[0] >= 0:
            ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, color="red", lw=1.5))
        ax.set_title(f"{kind}: IoU {iou:.2f}", fontsize=8)
    fig.suptitle(f"{method}: threshold {threshold:.2f}; green = truth, red = predicted", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

"""A run's figures and files: per-image CSV, summary JSON, printed table, plots."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import Sample
from .detection import detection
from .localisation import (
    V1_IOU,
    V1_THRESHOLDS,
    V2_IOUS,
    V2_THRESHOLDS,
    max_box_acc_v1,
    max_box_acc_v2,
)
from .runs import write_json
from .stats import bootstrap, wilson
from .tasks import WsolTask


def _ci(pair: tuple[float, float]) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 4) for v in pair]


def _maxacc_ci(curves: np.ndarray, thresholds: np.ndarray, bars: tuple[float, ...], strict: bool, seed: int) -> tuple[float, float]:
    """Bootstrap interval of the (mean over ``bars`` of the) best-threshold accuracy; the threshold
    is chosen again in each resample, as the figure itself chooses it."""
    hits = [(curves > b if strict else curves >= b).astype(np.float64) for b in bars]
    n = len(curves)

    def stat(idx: np.ndarray) -> float:
        w = np.bincount(idx, minlength=n) / len(idx)
        return float(np.mean([(w @ h).max() for h in hits]))

    return bootstrap(stat, n, seed)


def wsol_summary(cfg: Any, model: Any, samples: list[Sample], methods: list[str], tasks: list[WsolTask],
                 records: list[dict], skipped: dict[str, str], software: dict) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for m in methods:
        recs = [r for t, r in zip(tasks, records, strict=True) if t.method == m]
        ok = [r for r in recs if not r.get("error")]
        errors = sorted({r["error"] for r in recs if r.get("error")})
        if not ok:
            per[m] = {"n": 0, "n_failed": len(recs), "errors": errors[:5]}
            continue
        v1c = np.stack([r["v1_iou"] for r in ok])
        v2c = np.stack([r["v2_iou"] for r in ok])
        v1 = max_box_acc_v1(v1c)
        v2, v2per = max_box_acc_v2(v2c)
        hits = int(sum(bool(r["pointing"]) for r in ok))
        k_best = int((v1c[:, v1.best_index] > V1_IOU).sum())
        per[m] = {
            "n": len(ok), "n_failed": len(recs) - len(ok), "errors": errors[:5],
            "max_box_acc": v1.value, "max_box_acc_threshold": v1.best_threshold,
            "max_box_acc_ci_bootstrap": _ci(_maxacc_ci(v1c, V1_THRESHOLDS, (V1_IOU,), True, cfg.seed)),
            "max_box_acc_ci_wilson_at_threshold": _ci(wilson(k_best, len(ok))),
            "max_box_acc_v2": v2,
            "max_box_acc_v2_ci_bootstrap": _ci(_maxacc_ci(v2c, V2_THRESHOLDS, V2_IOUS, False, cfg.seed)),
            "max_box_acc_v2_per_iou": {f"{d:.1f}": {"value": r.value, "threshold": r.best_threshold} for d, r in v2per.items()},
            "box_acc_curve": v1.accuracy.round(4).tolist(),
            "pointing": hits / len(ok), "pointing_ci_wilson": _ci(wilson(hits, len(ok))),
            "flat_maps": int(sum(bool(r["flat"]) for r in ok)),
            "mean_seconds_per_image": float(np.mean([r["seconds"] for r in ok])),
        }
    return {
        "kind": "wsol", "config": asdict(cfg), "model": model.identity, "concept": cfg.concept,
        "bank": cfg.bank, "text_mode": cfg.text_mode, "n_images": len(samples), "methods": per,
        "skipped_methods": skipped, "software": software,
        "definitions": {
            "max_box_acc": "ConVis authors: thresholds 0.00..0.99, largest 4-connected component, IoU > 0.5 "
                           "with the best-matching ground-truth box, best threshold",
            "max_box_acc_v2": "Choe et al. CVPR 2020: thresholds 0.000..0.999, every 4-connected component's box "
                              "against every ground-truth box, IoU >= 0.3/0.5/0.7, mean of the three best accuracies",
            "pointing": "Zhang et al. 2016: every pixel at the map's maximum lies in a ground-truth box (flat maps miss)",
            "intervals": "95 %: bootstrap over images (1,000 resamples, threshold re-chosen in each), Wilson for proportions",
            "frame": "boxes moved through the maps' centre crop and resize to 224x224 (ImageFrame)",
        },
    }


def _fmt(v: float | None, ci: list | None = None, pct: bool = True) -> str:
    if v is None:
        return "-"
    s = f"{100 * v:.1f}" if pct else f"{v:.3f}"
    if ci and ci[0] is not None:
        s += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if pct else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return s


def wsol_table(summary: dict[str, Any]) -> str:
    """The printed table (percentages, 95 % intervals in brackets)."""
    rows = [("method", "n", "MaxBoxAcc % (t)", "MaxBoxAccV2 %", "IoU .3/.5/.7 %", "pointing %", "s/img")]
    for m, r in summary["methods"].items():
        if not r.get("n"):
            rows.append((m, "0", f"failed: {'; '.join(r.get('errors', []))[:60]}", "", "", "", ""))
            continue
        per = r["max_box_acc_v2_per_iou"]
        rows.append((m, str(r["n"]), f"{_fmt(r['max_box_acc'], r['max_box_acc_ci_bootstrap'])} ({r['max_box_acc_threshold']:.2f})",
                     _fmt(r["max_box_acc_v2"], r["max_box_acc_v2_ci_bootstrap"]),
                     "/".join(f"{100 * per[k]['value']:.0f}" for k in sorted(per)),
                     _fmt(r["pointing"], r["pointing_ci_wilson"]), f"{r['mean_seconds_per_image']:.2f}"))
    skipped = summary.get("skipped_methods", {})
    rows += [(m, "-", "not applicable (below)", "", "", "", "") for m in skipped]
    head = (f"WSOL: concept {summary['concept']}, {summary['n_images']} images, model {summary['model'].get('model')} "
            f"({summary['model'].get('pretrained')}{', RANDOM WEIGHTS' if summary['model'].get('random_weights') else ''}), "
            f"bank {summary['bank']}")
    notes = "".join(f"\n{m}: not applicable: {why}" for m, why in skipped.items())
    return head + "\n" + _table(rows) + notes


def _table(rows: list[tuple[str, ...]]) -> str:
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows)


def write_wsol_files(out: Path, cfg: Any, samples: list[Sample], tasks: list[WsolTask], records: list[dict],
                     summary: dict[str, Any]) -> None:
    by_path = {str(s.path): s for s in samples}
    best = {m: r["max_box_acc_threshold"] for m, r in summary["methods"].items() if r.get("n")}
    with open(out / "per_image.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "path", "method", "n_gt_boxes_in_frame", "pointing_hit", "iou_at_best_threshold",
                    "pred_box_at_best_threshold", "best_iou_any_threshold", "v2_best_iou_any_threshold", "flat_map",
                    "seconds", "error"])
        for t, r in zip(tasks, records, strict=True):
            s = by_path[t.image]
            if r.get("error"):
                w.writerow([s.id, t.image, t.method, "", "", "", "", "", "", "", "", r["error"]])
                continue
            i = int(np.argmin(np.abs(V1_THRESHOLDS - best[t.method])))
            w.writerow([s.id, t.image, t.method, len(r["frame_boxes"]), int(bool(r["pointing"])),
                        f"{r['v1_iou'][i]:.4f}", " ".join(map(str, r["v1_boxes"][i].tolist())),
                        f"{r['v1_iou'].max():.4f}", f"{r['v2_iou'].max():.4f}", int(bool(r["flat"])), r["seconds"], ""])
    write_json(out / "summary.json", summary)
    table = wsol_table(summary)
    (out / "table.txt").write_text(table + "\n")
    if cfg.plots:
        from .plots import box_acc_plot, gallery

        box_acc_plot(summary, out / "box_acc.png")
        for m in best:
            gallery(out / f"gallery_{m}.png", m, tasks, records, best[m], cfg.gallery)


# ------------------------------------------------------------------------------------- OOD
def ood_summary(cfg: Any, model: Any, samples: list[Sample], scores: dict[str, np.ndarray], texts: dict[str, list[str]],
                folders: dict, records: list[dict], software: dict) -> dict[str, Any]:
    y = np.array([1 if s.label == "in" else 0 for s in samples])
    det = {k: detection(y, v, seed=cfg.seed).as_dict() for k, v in scores.items()}
    return {
        "kind": "ood", "config": asdict(cfg), "model": model.identity, "in": cfg.in_synset, "out": cfg.out_synset,
        "preset": cfg.preset, "n_in": int(y.sum()), "n_out": int((1 - y).sum()),
        "n_failed": sum(1 for r in records if r.get("error")), "scores": det,
        "n_texts": {k: len(v) for k, v in texts.items()}, "folders": folders, "software": software,
        "definitions": {
            "naive": "max cosine of the image's frame with the in-distribution synset's definition",
            "hierarchy": "max cosine with the definitions of the in-synset's WordNet subtree",
            "lemmas": "max cosine with the lemmas of the in-synset's subtree",
            "resnet50_max_logit": "max logit of a torchvision ResNet-50 (the user's weights file) over its 1,000 "
                                  "outputs (the paper's baseline was a linear probe trained on the in-classes)",
            "metrics": "in-distribution = positive; AUROC and FPR at 95 % TPR with 95 % stratified bootstrap "
                       "intervals (1,000 resamples); AUPR-in / AUPR-out = average precision",
        },
    }


def ood_table(summary: dict[str, Any]) -> str:
    rows = [("score", "AUROC", "FPR@95TPR %", "AUPR-in", "AUPR-out")]
    for k, d in summary["scores"].items():
        rows.append((k, _fmt(d["auroc"], d["auroc_ci"], pct=False), _fmt(d["fpr_at_95_tpr"], d["fpr_at_95_tpr_ci"]),
                     f"{d['aupr_in']:.3f}", f"{d['aupr_out']:.3f}"))
    head = (f"OOD: in {summary['in']} ({summary['n_in']} images) vs out {summary['out']} ({summary['n_out']}), "
            f"model {summary['model'].get('model')} ({summary['model'].get('pretrained')}"
            f"{', RANDOM WEIGHTS' if summary['model'].get('random_weights') else ''})")
    return head + "\n" + _table(rows)


def write_ood_files(out: Path, cfg: Any, samples: list[Sample], records: list[dict], ok: list[int],
                    scores: dict[str, np.ndarray], summary: dict[str, Any]) -> None:
    pos = {i: j for j, i in enumerate(ok)}
    with open(out / "per_image.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "path", "part", "synset", *scores, "error"])
        for i, (s, r) in enumerate(zip(samples, records, strict=True)):
            vals = [f"{scores[k][pos[i]]:.6f}" if i in pos else "" for k in scores]
            w.writerow([s.id, str(s.path), s.label, s.extra.get("synset", ""), *vals, r.get("error", "")])
    write_json(out / "summary.json", summary)
    (out / "table.txt").write_text(ood_table(summary) + "\n")
    if cfg.plots:
        from .plots import roc_plot

        y = np.array([1 if samples[i].label == "in" else 0 for i in ok])
        roc_plot(y, scores, summary, out / "roc.png")

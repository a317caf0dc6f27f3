"""Out-of-distribution detection metrics (scikit-learn underneath).

Convention: in-distribution is the positive class (label 1) and a higher score means "more
in-distribution", as for the paper's similarity scores and a classifier's maximum logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from .stats import bootstrap


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """False-positive rate at the first ROC point whose true-positive rate reaches ``tpr``."""
    fpr, tprs, _ = roc_curve(labels, scores)
    return float(fpr[np.searchsorted(tprs, tpr, side="left")])


@dataclass
class Detection:
    """One score's detection figures (95 % bootstrap intervals, in/out counts kept)."""

    auroc: float
    auroc_ci: tuple[float, float]
    fpr95: float
    fpr95_ci: tuple[float, float]
    aupr_in: float
    aupr_out: float
    n_in: int
    n_out: int

    def as_dict(self) -> dict:
        return {"auroc": self.auroc, "auroc_ci": list(self.auroc_ci), "fpr_at_95_tpr": self.fpr95,
                "fpr_at_95_tpr_ci": list(self.fpr95_ci), "aupr_in": self.aupr_in, "aupr_out": self.aupr_out,
                "n_in": self.n_in, "n_out": self.n_out}


def detection(labels: np.ndarray, scores: np.ndarray, seed: int = 0, resamples: int = 1000) -> Detection:
    """AUROC, FPR at 95 % TPR, AUPR-in (in = positive) and AUPR-out (out = positive, scores negated)."""
    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError("OOD detection needs both in-distribution (1) and out-of-distribution (0) images")
    auroc_ci = bootstrap(lambda i: roc_auc_score(y[i], s[i]), len(y), seed, resamples, strata=y)
    fpr_ci = bootstrap(lambda i: fpr_at_tpr(y[i], s[i]), len(y), seed, resamples, strata=y)
    return Detection(float(roc_auc_score(y, s)), auroc_ci, fpr_at_tpr(y, s), fpr_ci,
                     float(average_precision_score(y, s)), float(average_precision_score(1 - y, -s)),
                     int(y.sum()), int((1 - y).sum()))


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the ROC curve."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr

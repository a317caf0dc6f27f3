"""Out-of-distribution detection metrics (scikit-learn and scipy underneath).

Convention: in-distribution is the positive class (label 1) and a higher score means "more
in-distribution", as for the paper's similarity scores and a classifier's maximum logit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from .stats import LEVEL


def _fpr_rows(pos: np.ndarray, neg: np.ndarray, tpr: float) -> np.ndarray:
    """Per row: the share of out-scores at or above the threshold that first accepts ``tpr`` of
    the in-scores (the ``ceil(tpr * n_in)``-th highest in-score)."""
    k = math.ceil(tpr * pos.shape[1] - 1e-9)
    t = np.sort(pos, axis=1)[:, pos.shape[1] - k]
    return (neg >= t[:, None]).mean(axis=1)


def _auroc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Per row: the Mann-Whitney AUROC (ties count one half), as ``roc_auc_score``."""
    n1, n0 = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    return (ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """False-positive rate at the first ROC point whose true-positive rate reaches ``tpr``."""
    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    return float(_fpr_rows(s[y == 1][None], s[y == 0][None], tpr)[0])


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


def detection(labels: np.ndarray, scores: np.ndarray, seed: int = 0, resamples: int = 1000,
              level: float = LEVEL) -> Detection:
    """AUROC, FPR at 95 % TPR, AUPR-in (in = positive) and AUPR-out (out = positive, scores
    negated); percentile bootstrap intervals resampling in- and out-images separately."""
    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError("OOD detection needs both in-distribution (1) and out-of-distribution (0) images")
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(seed)
    bp = pos[rng.integers(0, len(pos), (resamples, len(pos)))]
    bn = neg[rng.integers(0, len(neg), (resamples, len(neg)))]
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    auroc_ci = tuple(float(v) for v in np.percentile(_auroc_rows(bp, bn), q))
    fpr_ci = tuple(float(v) for v in np.percentile(_fpr_rows(bp, bn, 0.95), q))
    return Detection(float(roc_auc_score(y, s)), auroc_ci, fpr_at_tpr(y, s), fpr_ci,
                     float(average_precision_score(y, s)), float(average_precision_score(1 - y, -s)),
                     len(pos), len(neg))


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the ROC curve."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr

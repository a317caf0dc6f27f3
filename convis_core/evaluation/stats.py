"""Confidence intervals: Wilson for proportions, percentile bootstrap for anything else."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

LEVEL = 0.95


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials (``(nan, nan)`` when ``n == 0``)."""
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(int(k), int(n), alpha=1 - level, method="wilson")
    return float(lo), float(hi)


def bootstrap(statistic: Callable[[np.ndarray], float], n: int, seed: int = 0, resamples: int = 1000,
              level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval (``scipy.stats.bootstrap``) of ``statistic(indices)`` over
    ``n`` items resampled with replacement."""
    if n < 2:
        return float("nan"), float("nan")
    res = stats.bootstrap((np.arange(n),), lambda idx: statistic(idx.astype(int)), vectorized=False,
                          n_resamples=resamples, confidence_level=level, method="percentile",
                          random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)

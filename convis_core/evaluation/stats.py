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
              level: float = LEVEL, strata: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n`` items resampled with
    replacement (within each stratum of ``strata`` when given: OOD sets keep their in/out counts).
    ``scipy.stats.bootstrap`` does the resampling for unstratified data."""
    if n < 2:
        return float("nan"), float("nan")
    if strata is None:
        res = stats.bootstrap((np.arange(n),), lambda idx: statistic(idx.astype(int)), vectorized=False,
                              n_resamples=resamples, confidence_level=level, method="percentile",
                              random_state=np.random.default_rng(seed))
        return float(res.confidence_interval.low), float(res.confidence_interval.high)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    vals = [statistic(np.concatenate([rng.choice(g, len(g)) for g in groups])) for _ in range(resamples)]
    lo, hi = np.percentile(vals, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)

"""The harness's metrics on hand-computed cases, and against scikit-learn / statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from convis_core.evaluation.detection import detection, fpr_at_tpr
from convis_core.evaluation.localisation import (
    V1_THRESHOLDS,
    V2_THRESHOLDS,
    box_accuracy,
    component_boxes,
    iou_matrix,
    max_box_acc_v1,
    max_box_acc_v2,
    v1_curve,
    v2_curve,
)
from convis_core.evaluation.stats import bootstrap, wilson


def block_map(*boxes: tuple[int, int, int, int], values: tuple[float, ...] | None = None) -> np.ndarray:
    m = np.zeros((224, 224), dtype=np.float32)
    for b, v in zip(boxes, values or (1.0,) * len(boxes), strict=True):
        m[b[1]:b[3], b[0]:b[2]] = v
    return m


def test_iou_matrix_hand_computed() -> None:
    pred = np.array([(0, 0, 10, 10), (5, 5, 15, 15), (20, 20, 30, 30)])
    gt = np.array([(0, 0, 10, 10), (0, 0, 20, 10)])
    m = iou_matrix(pred, gt)
    assert m[0, 0] == 1.0
    assert m[0, 1] == pytest.approx(100 / 200)
    assert m[1, 0] == pytest.approx(25 / 175)  # 5x5 overlap, 100 + 100 - 25
    assert m[1, 1] == pytest.approx(50 / 250)  # 10x5 overlap, 100 + 200 - 50
    assert m[2].tolist() == [0.0, 0.0]
    assert iou_matrix(np.array([(3, 3, 3, 9)]), np.array([(3, 3, 3, 9)]))[0, 0] == 0.0  # empty boxes


def test_v1_curve_on_a_block() -> None:
    m = block_map((10, 20, 50, 100))
    c = v1_curve(m, [(10, 20, 50, 100)])
    assert c.iou[0] == pytest.approx(40 * 80 / 224**2)  # t = 0: the whole frame passes
    assert c.boxes[0].tolist() == [0, 0, 224, 224]
    assert np.all(c.iou[1:] == 1.0) and c.boxes[50].tolist() == [10, 20, 50, 100]
    flat = v1_curve(np.zeros((224, 224)), [(10, 20, 50, 100)])
    assert np.all(flat.boxes[1:] == -1) and np.all(flat.iou[1:] == 0)


def test_max_box_acc_uses_iou_above_one_half_strictly_and_v2_at_least() -> None:
    gt = [(0, 0, 100, 100)]
    half = block_map((0, 0, 50, 100))  # IoU exactly 0.5
    v1 = max_box_acc_v1(np.stack([v1_curve(half, gt).iou]))
    assert v1.value == 0.0  # the authors: IoU > 0.5
    v2, per = max_box_acc_v2(np.stack([v2_curve(half, gt)]))
    assert per[0.5].value == 1.0 and per[0.3].value == 1.0 and per[0.7].value == 0.0  # Choe: IoU >= delta
    assert v2 == pytest.approx(2 / 3)


def test_v2_counts_every_component_and_every_box() -> None:
    gt = [(150, 150, 190, 190), (5, 5, 15, 15)]
    # the largest component (the big block) misses both boxes; the small one matches the first
    m = block_map((0, 60, 120, 140), (150, 150, 190, 190))
    assert max_box_acc_v1(np.stack([v1_curve(m, gt).iou])).value == 0.0
    assert v2_curve(m, gt)[500] == 1.0
    # a second, brighter component matching the second GT box; thresholds above 0.5 see only it
    m2 = block_map((0, 60, 120, 140), (5, 5, 15, 15), values=(0.5, 1.0))
    c = v2_curve(m2, gt)
    assert c[V2_THRESHOLDS.tolist().index(0.6)] == 1.0
    assert len(component_boxes(m2, 0.3)) == 2
    # 4-connectivity: blocks touching only at a corner are two components
    assert len(component_boxes(block_map((0, 0, 10, 10), (10, 10, 20, 20)), 0.5)) == 2


def test_max_box_acc_over_a_set_hand_computed() -> None:
    gt = (20, 20, 120, 120)
    good = block_map(gt)  # hits at every t > 0
    ramp = np.zeros((224, 224), dtype=np.float32)  # brighter towards the box: right only above 0.5
    ramp[:, :] = 0.3
    ramp[20:120, 20:120] = 0.8
    bad = block_map((150, 150, 220, 220))  # never
    curves = np.stack([v1_curve(m, [gt]).iou for m in (good, ramp, bad)])
    r = max_box_acc_v1(curves)
    assert r.value == pytest.approx(2 / 3)
    assert r.best_threshold == pytest.approx(0.31)  # the lowest threshold where both hit
    assert r.accuracy[V1_THRESHOLDS.tolist().index(0.2)] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        box_accuracy(np.zeros((0, 100)), V1_THRESHOLDS, 0.5, True)


def test_ood_metrics_against_scikit_learn_and_by_hand() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(60), np.zeros(40)].astype(int)
    s = np.r_[rng.normal(1, 1, 60), rng.normal(0, 1, 40)]
    d = detection(y, s, resamples=200)
    assert d.auroc == pytest.approx(roc_auc_score(y, s))
    assert d.aupr_in == pytest.approx(average_precision_score(y, s))
    assert d.aupr_out == pytest.approx(average_precision_score(1 - y, -s))
    assert d.auroc_ci[0] < d.auroc < d.auroc_ci[1]
    # the vectorised bootstrap statistics equal scikit-learn's on any resample
    from convis_core.evaluation.detection import _auroc_rows, _fpr_rows

    for seed in range(5):
        r = np.random.default_rng(seed)
        i = np.r_[r.integers(0, 60, 60), 60 + r.integers(0, 40, 40)]
        yi, si = y[i], np.round(s[i], 1)  # rounded: ties too
        assert _auroc_rows(si[yi == 1][None], si[yi == 0][None])[0] == pytest.approx(roc_auc_score(yi, si))
        fpr, tpr, _ = roc_curve(yi, si, drop_intermediate=False)
        assert _fpr_rows(si[yi == 1][None], si[yi == 0][None], 0.95)[0] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    # by hand: 20 in-scores 1..20, 10 out-scores; 95 % TPR = 19 of 20 in accepted -> threshold 2
    y2 = np.r_[np.ones(20), np.zeros(10)].astype(int)
    s2 = np.r_[np.arange(1, 21), [0.5, 1.5, 2.5, 3.5, 30, 31, 0.1, 0.2, 0.3, 0.4]]
    assert fpr_at_tpr(y2, s2) == pytest.approx(4 / 10)  # out scores >= 2: 2.5, 3.5, 30, 31
    assert detection(y2, s2, resamples=50).fpr95 == pytest.approx(0.4)
    with pytest.raises(ValueError):
        detection(np.ones(5, dtype=int), np.arange(5.0))


def test_wilson_and_bootstrap() -> None:
    lo, hi = wilson(8, 10)
    z = 1.959963984540054
    centre, half = (8 + z * z / 2) / (10 + z * z), z * math.sqrt(8 * 2 / 10 + z * z / 4) / (10 + z * z)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert all(math.isnan(v) for v in wilson(0, 0))
    x = np.r_[np.zeros(50), np.ones(50)]
    lo, hi = bootstrap(lambda i: x[i].mean(), 100, seed=1)
    assert lo < 0.5 < hi and hi - lo < 0.3
    assert bootstrap(lambda i: x[i].mean(), 100, seed=1) == (lo, hi)  # seeded

"""Metrics against hand-computed values, and on the hand-built model where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convis_core as cc
from convis_core.methods import get_method
from convis_core.methods._clip import similarities
from convis_core.metrics import (
    auc,
    box_iou,
    box_iou_at,
    deletion_insertion,
    largest_component_box,
    map_similarity,
    max_box_acc,
    model_randomisation,
    perturbation_curve,
    pointing_game,
    randomisation_groups,
    randomised_copy,
)

from .conftest import context, half_image, half_model


def test_box_iou_hand_computed() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (2, 2, 4, 4)) == pytest.approx(4 / 100)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # half-open: touching is not overlapping
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_pointing_game() -> None:
    m = np.zeros((224, 224))
    m[50, 60] = 1.0  # row y=50, column x=60
    assert pointing_game(m, (60, 50, 61, 51))
    assert not pointing_game(m, (50, 60, 51, 61))  # x/y swapped
    assert not pointing_game(m, (61, 50, 70, 60))
    assert pointing_game(m, (61, 50, 70, 60), tolerance=1)
    assert pointing_game(m, [(0, 0, 5, 5), (55, 45, 65, 55)])  # any of several boxes
    assert not pointing_game(np.ones((224, 224)), (0, 0, 224, 224))  # flat map never hits
    m[200, 200] = 1.0  # a tie outside the box: not every maximum is inside
    assert not pointing_game(m, (60, 50, 61, 51))


def test_auc_of_known_curves() -> None:
    assert auc(np.linspace(0, 1, 11)) == pytest.approx(0.5)
    assert auc(np.full(5, 0.3)) == pytest.approx(0.3)
    assert auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert auc(np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.5, 1.0])) == pytest.approx(0.75)


def test_largest_component_box_uses_4_connectivity() -> None:
    m = np.zeros((224, 224))
    m[10:20, 10:30] = 0.9  # 200 px
    m[100:110, 100:110] = 0.8  # 100 px
    for i in range(15):  # a diagonal of 15 single pixels: 15 components under 4-connectivity
        m[150 + i, 150 + i] = 1.0
    assert largest_component_box(m, 0.5) == (10, 10, 30, 20)
    assert largest_component_box(m, 0.85) == (10, 10, 30, 20)
    assert largest_component_box(m, 0.95) == (150, 150, 151, 151)
    assert largest_component_box(m, 1.01) is None
    assert box_iou_at(m, (10, 10, 30, 20), 0.5) == 1.0
    assert box_iou_at(m, [(0, 0, 5, 5), (10, 10, 30, 20)], 0.5) == 1.0


def test_max_box_acc_on_constructed_maps() -> None:
    gt = (50, 50, 150, 150)
    good = np.zeros((224, 224))
    good[50:150, 50:150] = 1.0
    ramp = np.zeros((224, 224))  # correct only for thresholds above 0.5
    ramp[:, :] = 0.5
    ramp[50:150, 50:150] = 1.0
    bad = np.zeros((224, 224))
    bad[0:40, 180:224] = 1.0
    r = max_box_acc([good, ramp, bad], [gt, gt, gt], iou_threshold=0.5)
    assert r.value == pytest.approx(2 / 3)
    assert r.best_threshold == pytest.approx(0.51)  # first threshold with both good and ramp right
    assert r.accuracy[0] == 0.0  # at 0.00 every map is one box over the frame: IoU 100²/224² < 0.5
    assert r.accuracy[1] == pytest.approx(1 / 3)  # only "good" at 0.01
    assert len(r.accuracy) == 100 and r.thresholds[-1] == pytest.approx(0.99)
    with pytest.raises(ValueError):
        max_box_acc([good], [gt, gt])


def test_deletion_insertion_curves_on_the_hand_built_model() -> None:
    model = half_model(0)
    ctx = context(model, half_image(10, "left"))
    good = get_method("occlusion").explain(ctx).map
    curves = deletion_insertion(ctx, good, steps=8)
    inverted = deletion_insertion(ctx, 1.0 - good, steps=8)
    x, t = ctx.frame_tensor(), ctx.text_embedding
    base = float(similarities(model, x, t)[0])
    grey = float(similarities(model, torch.zeros_like(x), t)[0])
    d, i = curves["deletion"], curves["insertion"]
    assert d.scores[0] == pytest.approx(base, abs=1e-5) and d.scores[-1] == pytest.approx(grey, abs=1e-5)
    assert i.scores[-1] == pytest.approx(base, abs=1e-5)
    assert len(d.scores) == 9 and d.fractions[0] == 0 and d.fractions[-1] == 1
    # the right map removes the signal first: lower deletion AUC, higher insertion AUC
    assert d.auc < inverted["deletion"].auc - 0.05
    assert i.auc > inverted["insertion"].auc + 0.05
    with pytest.raises(ValueError):
        perturbation_curve(model, x, good, t, kind="sideways")


def test_map_similarity() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((224, 224))
    assert map_similarity(a, a) == pytest.approx((1.0, 1.0))
    rho, ss = map_similarity(a, rng.random((224, 224)))
    assert abs(rho) < 0.05 and ss < 0.1
    assert map_similarity(a, a ** 3)[0] == pytest.approx(1.0)  # rank correlation ignores monotone maps


def test_randomised_copy_leaves_the_original_alone(tiny_vit, tiny_rn) -> None:
    assert [g for g, _ in randomisation_groups(tiny_vit)] == ["head", "block1", "block0", "embeddings"]
    assert [g for g, _ in randomisation_groups(tiny_rn)][:2] == ["attnpool", "layer4"]
    shapes = cc.load_model("shapes-world", "bundled")     # a timm tower: head, then its stages from the top
    assert [g for g, _ in randomisation_groups(shapes)] == ["head", "stages.3", "stages.2", "stages.1", "stages.0"]
    cp = randomised_copy(shapes, 2, seed=0)
    assert not torch.equal(cp.model.visual.trunk.stages[3][0].weight, shapes.model.visual.trunk.stages[3][0].weight)
    assert torch.equal(cp.model.visual.trunk.stages[1][0].weight, shapes.model.visual.trunk.stages[1][0].weight)
    before = {k: v.clone() for k, v in tiny_vit.model.visual.state_dict().items()}
    cp = randomised_copy(tiny_vit, 2, seed=0)
    after = tiny_vit.model.visual.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert cp.key != tiny_vit.key
    changed = cp.model.visual.transformer.resblocks[1].attn.in_proj_weight
    assert not torch.equal(changed, tiny_vit.model.visual.transformer.resblocks[1].attn.in_proj_weight)
    assert torch.equal(cp.model.visual.transformer.resblocks[0].attn.in_proj_weight,
                       tiny_vit.model.visual.transformer.resblocks[0].attn.in_proj_weight)


def test_model_randomisation_flags_model_independent_maps(tiny_vit) -> None:
    ctx = context(tiny_vit, half_image(6))
    res = model_randomisation(ctx, ["gradcam", "patch_similarity", "centre", "random"], max_steps=2)
    assert res.steps == ["head", "block1"]
    assert res.flagged == {"gradcam": False, "patch_similarity": False, "centre": True, "random": True}
    assert res.spearman["centre"] == [1.0, 1.0] and res.ssim["random"][-1] == pytest.approx(1.0)
    assert res.spearman["gradcam"][-1] < 0.5

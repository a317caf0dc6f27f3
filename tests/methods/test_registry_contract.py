"""The contract, checked for every entry of the one registry (Captum-style table of cases)."""

from __future__ import annotations

import numpy as np
import pytest

from convis_core import REGISTRY, ConvisError, UnsupportedModelError
from convis_core.methods import ALIASES, get_method

from .conftest import context, half_image

# Smaller-than-default settings so the whole registry runs in seconds; defaults are exercised by
# the per-method tests and the bench.
FAST: dict[str, dict] = {
    "convis_grid": {"stride": 48},
    "convis_stochastic": {"iterations": 12, "switch_at": 6, "restart_every": 4},
    "rise": {"n_masks": 48},
    "occlusion": {"stride": 48},
}
META = ("method", "method_label", "concept", "params", "seed", "model", "pretrained", "weights_id",
        "random_weights", "timings", "image_sha256", "flat")


def test_registry_lists_every_method_once_with_descriptions() -> None:
    expected = {"convis_grid", "convis_stochastic", "gradcam", "attention_relevance", "rise", "occlusion",
                "patch_similarity", "random", "centre"}
    assert expected <= set(REGISTRY)
    for name, m in REGISTRY.items():
        assert m.name == name and m.label and m.summary
    for alias, target in ALIASES.items():
        assert get_method(alias) is REGISTRY[target]
    assert {n for n, m in REGISTRY.items() if m.is_baseline} == {"random", "centre"}
    with pytest.raises(ConvisError, match="unknown method"):
        get_method("nope")


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("arch", ["tiny_vit", "tiny_rn", "tiny_cnn"])
def test_contract(name: str, arch: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(arch)
    method = REGISTRY[name]
    ctx = context(model, half_image(3), synthetic_target=False)
    reason = method.unsupported_reason(model)
    if reason:
        with pytest.raises(UnsupportedModelError, match=name) as e:
            method.explain(ctx, **FAST.get(name, {}))
        assert reason in str(e.value) and model.name in str(e.value)
        return
    r = method.explain(ctx, **FAST.get(name, {}))
    assert r.map.shape == (224, 224) and r.map.dtype == np.float32
    assert r.map.min() >= 0.0 and r.map.max() <= 1.0
    assert r.meta["flat"] or (r.map.min() == 0.0 and r.map.max() == 1.0)  # min-max normalised
    for key in META:
        assert key in r.meta, key
    assert r.meta["method"] == name and r.meta["concept"] == "dog.n.01"
    assert r.meta["model"] == model.name and r.meta["random_weights"] is True
    assert r.meta["timings"]["total_s"] >= 0
    assert r.meta["params"] == method.params(**FAST.get(name, {})).model_dump(mode="json")
    if method.uses_bank:
        assert r.meta["bank"].startswith("subtree=canine.n.02")
    else:
        assert r.meta["target_text"] == ctx.concept.definition
    # determinism with the same seed, through a fresh context
    again = method.explain(context(model, half_image(3), synthetic_target=False), **FAST.get(name, {}))
    np.testing.assert_array_equal(r.map, again.map)
    # JSON round trip of the result
    assert r.metadata_json()
    with pytest.raises(ConvisError, match=f"invalid parameters for {name}"):
        method.explain(ctx, no_such_parameter=1)


def test_vit_only_method_says_so_on_a_resnet(tiny_rn) -> None:
    ctx = context(tiny_rn, half_image(0), synthetic_target=False)
    with pytest.raises(UnsupportedModelError, match="needs a Vision Transformer.*ModifiedResNet"):
        get_method("attention_relevance").explain(ctx)


@pytest.mark.parametrize(("name", "bad"), [
    ("rise", {"n_masks": 0}), ("rise", {"p": 1.5}), ("rise", {"grid": "eight"}),
    ("occlusion", {"stride": 0}), ("occlusion", {"box_sizes": ()}), ("occlusion", {"box_sizes": (4,)}),
    ("centre", {"sigma": -1}), ("random", {"cells": 0}), ("attention_relevance", {"start_layer": 99}),
    ("gradcam", {"layer": "x"}),
])
def test_bad_params_are_rejected(tiny_vit, name: str, bad: dict) -> None:
    with pytest.raises(ConvisError, match=name):
        get_method(name).explain(context(tiny_vit, half_image(0), synthetic_target=False), **bad)

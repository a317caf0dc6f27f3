"""ConVis maps: contract, determinism, caches, reuse across concepts, what CLIP sees."""

from __future__ import annotations

import numpy as np
import pytest

from convis_core import (
    ConVisEngine,
    GridParams,
    explain,
    get_bank,
    load_image,
    top_concepts,
)
from convis_core.errors import ConvisError

BANK = "subtree=animal.n.01"


def count_forwards(model):
    """Count real forward passes of the image tower."""
    calls = []
    handle = model.model.visual.register_forward_hook(lambda mod, i, o: calls.append(o.shape[0]))
    return calls, handle


def test_grid_result_contract(tiny_model, chelsea):
    r = explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK, seed=2)
    assert r.map.shape == (224, 224) and r.map.dtype == np.float32
    assert r.map.min() == 0.0 and r.map.max() == 1.0
    m = r.meta
    assert m["method"] == "convis_grid" and m["concept"] == "cat.n.01" and m["seed"] == 2
    assert m["random_weights"] is True and m["model"] == "convis-tiny" and m["bank"] == f"{BANK}:definitions"
    assert m["params"]["box_sizes"] == [128, 64] and m["crops"] == 730
    assert r.frame.width == 451 and r.frame.height == 300 and r.frame.side == 300 and r.frame.left == 75
    orig = r.to_original()
    assert orig.shape == (300, 451) and orig[:, :75].max() == 0.0


def test_same_inputs_same_map_and_seed_matters(tiny_model, chelsea):
    a = explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK, seed=5)
    b = explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK, seed=5)
    c = explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK, seed=6)
    assert np.array_equal(a.map, b.map)
    assert not np.array_equal(a.map, c.map)
    s1 = explain(tiny_model, chelsea, "cat.n.01", method="stochastic", bank=BANK, iterations=120)
    s2 = explain(tiny_model, chelsea, "cat.n.01", method="stochastic", bank=BANK, iterations=120)
    assert np.array_equal(s1.map, s2.map)


def test_cached_equals_uncached_and_other_concepts_need_no_forward(tiny_model, chelsea, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVIS_DATA_DIR", str(tmp_path))
    bank = get_bank(BANK)
    img = load_image(chelsea)
    uncached = ConVisEngine(tiny_model, bank, disk_cache=False).grid(img, "cat.n.01", GridParams(seed=1))
    cold = ConVisEngine(tiny_model, bank).grid(img, "cat.n.01", GridParams(seed=1))
    assert list((tmp_path / "cache" / "crops").rglob("*.npz")), "crop embeddings are stored on disk"
    calls, h = count_forwards(tiny_model)
    try:
        fresh_engine = ConVisEngine(tiny_model, bank)  # new process-like state: disk cache only
        warm = fresh_engine.grid(img, "cat.n.01", GridParams(seed=1))
        other = fresh_engine.grid(img, "dog.n.01", GridParams(seed=1))
    finally:
        h.remove()
    assert calls == [], "a cached image needs no CLIP forward pass, for any concept"
    assert np.array_equal(uncached.map, cold.map) and np.array_equal(cold.map, warm.map)
    assert warm.meta["timings"]["crops_cached"] is True
    assert not np.array_equal(other.map, warm.map)
    ref_other = ConVisEngine(tiny_model, bank, disk_cache=False).grid(img, "dog.n.01", GridParams(seed=1))
    assert np.array_equal(ref_other.map, other.map)


def test_hypernym_map_is_at_least_as_strong_as_its_hyponym(tiny_model, chelsea):
    """A box's rank for a concept is the best over its subtree, so a hypernym ranks no worse."""
    cat = explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK)
    feline = explain(tiny_model, chelsea, "feline.n.01", method="grid", bank=BANK)
    assert (feline.extras["ranks"] <= cat.extras["ranks"]).all()
    assert (feline.extras["ranks"] < cat.extras["ranks"]).any()


def test_gamma_scoring_and_params(tiny_model, chelsea):
    g = explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK, scoring="gamma")
    assert g.meta["params"]["scoring"] == "gamma" and g.map.min() >= 0 and g.map.max() <= 1
    small = explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK, box_sizes=[64], stride=32)
    assert small.meta["crops"] < 730
    for bad in ({"stride": 0}, {"box_sizes": [2]}, {"scoring": "median"}, {"strides": 4}, {"iterations": 10}):
        with pytest.raises(ConvisError):
            explain(tiny_model, chelsea, "cat.n.01", method="grid", bank=BANK, **bad)


def test_what_clip_sees(tiny_model, chelsea):
    hits = top_concepts(tiny_model, chelsea, k=5, bank=BANK)
    assert len(hits) == 5 and hits[0].rank == 0
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    region = top_concepts(tiny_model, chelsea, k=3, bank=BANK, region=(0.0, 0.0, 0.5, 0.5))
    assert region[0].rank == 0
    with pytest.raises(ConvisError):
        top_concepts(tiny_model, chelsea, k=3, bank=BANK, region=(0.5, 0.0, 0.2, 1.0))


@pytest.mark.parametrize("n_leaves", [1, 7, 300])
def test_rank_index_counts_exactly_like_a_brute_force_count(n_leaves, monkeypatch):
    """Ranks from the sliced build and the chunked leaf gather equal a direct count, ties included."""
    import torch

    from convis_core.convis import RankIndex

    monkeypatch.setattr(RankIndex, "GATHER", 64)  # several gather chunks
    g = torch.Generator().manual_seed(n_leaves)
    crops = torch.nn.functional.normalize(torch.randn(23, 16, generator=g), dim=1)
    text = torch.nn.functional.normalize(torch.randn(1000, 16, generator=g), dim=1)
    text[500] = text[3]  # an exact tie with a possible leaf
    index = RankIndex.build(crops, text, slice_size=5)  # several slices, the last of 3 crops
    assert index.high.nbytes == 23 * 1000 * 2 and index.shift == 0
    leaves = np.sort(np.random.default_rng(n_leaves).choice(1000, n_leaves, replace=False))
    leaves = np.union1d(leaves, [3])
    sims = (text @ crops.T).T  # the product of all crops at once
    best = sims[:, torch.from_numpy(leaves)].max(dim=1).values
    expected = (sims > best[:, None]).sum(dim=1).numpy()
    assert np.array_equal(index.ranks(leaves), expected)


def test_index_cache_keeps_under_its_memory_budget_but_always_the_newest():
    from convis_core.convis import _LRU

    class Blob:
        def __init__(self, nbytes: int) -> None:
            self.nbytes = nbytes

    lru = _LRU(2, max_bytes=100)
    lru.get_or("a", lambda: Blob(60))
    lru.get_or("b", lambda: Blob(30))
    assert list(lru) == ["a", "b"]  # 90 bytes: both fit
    lru.get_or("c", lambda: Blob(50))
    assert list(lru) == ["b", "c"]  # two at most: "a" goes; 80 bytes fit
    lru.get_or("b", lambda: Blob(999))  # a hit: refreshed, not rebuilt
    lru.get_or("d", lambda: Blob(60))
    assert list(lru) == ["b", "d"]  # the least recent ("c") goes; 90 bytes fit
    lru.get_or("e", lambda: Blob(80))
    assert list(lru) == ["e"]  # "b" goes by count, "d" by budget (140 > 100)
    lru.get_or("f", lambda: Blob(500))
    assert list(lru) == ["f"]  # over budget alone, but the newest always stays

"""The progressive grid map and the compact rank index: the same bits as the straightforward
computation (canonical crop batches, one product, a brute-force rank count), on tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from convis_core import (
    ConVisEngine,
    ConvisError,
    GridParams,
    explain,
    explain_progressive,
    get_bank,
    load_image,
)
from convis_core.boxes import Canvas, accumulate, grid_boxes
from convis_core.convis import RankIndex, competition_ranks
from convis_core.result import normalise

BANK = "subtree=animal.n.01"


def straightforward_grid(model, image, text: torch.Tensor, leaves: np.ndarray, params: GridParams):
    """Today's grid map without any of the engine's machinery: crops encoded in their canonical
    order and batches, one product with the bank, each box's rank counted directly."""
    canvas = Canvas.make(image.pixels, params.pad, params.seed)
    boxes = grid_boxes(canvas.size, params.box_sizes, params.stride, pad=params.pad, frame=224)
    emb = torch.cat([model.encode_images(model.preprocess_pil([canvas.crop(b) for b in boxes[i : i + 64]]))
                     for i in range(0, len(boxes), 64)])
    sims = text @ emb.to(text.dtype).T  # (rows, crops)
    best = sims[torch.from_numpy(leaves)].max(dim=0).values
    ranks = (sims > best[None, :]).sum(dim=0).numpy()
    acc = accumulate(boxes, ranks, canvas.size)
    m = normalise(acc[params.pad : params.pad + 224, params.pad : params.pad + 224])
    return (1.0 - m).astype(np.float32), boxes, ranks


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    """No crop embeddings on disk yet (the bank's embeddings and WordNet stay where they are)."""
    def crops_dir(*parts: str):
        p = tmp_path.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    monkeypatch.setattr("convis_core.convis.cache_dir", crops_dir)


def test_cold_image_yields_coarse_then_the_faithful_map(tiny_model, chelsea, fresh_cache):
    params = {"seed": 11}  # a seed no other test uses: the shared engine has not seen these crops
    calls: list[tuple[int, int]] = []
    stages = []
    for r in explain_progressive(tiny_model, chelsea, "cat.n.01", bank=BANK, progress=lambda d, t: calls.append((d, t)),
                                 **params):
        stages.append((r, calls[-1][0]))
    assert [r.meta["stage"] for r, _ in stages] == ["coarse", "final"]
    (coarse, done_at_coarse), (final, _) = stages
    assert all(r.meta["stage_label"] for r, _ in stages)
    # the coarse map came when only its crops (a quarter) were encoded, not after all of them
    assert done_at_coarse == coarse.meta["crops"] == 164 and calls[-1] == (730, 730)
    assert [t for _, t in calls] == [730] * len(calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert final.meta["crops"] == 730 and final.meta["timings"]["crops_cached"] is False

    # the final map is today's map, bit for bit: the engine's explain and the straightforward one
    img = load_image(chelsea)
    bank = get_bank(BANK)
    again = explain(tiny_model, chelsea, "cat.n.01", bank=BANK, **params)
    assert np.array_equal(again.map, final.map)
    text = torch.from_numpy(ConVisEngine(tiny_model, bank, disk_cache=False).text_embeddings)
    plain, boxes, ranks = straightforward_grid(tiny_model, img, text, bank.leaves("cat.n.01"), GridParams(**params))
    assert np.array_equal(plain, final.map)
    assert np.array_equal(boxes, final.extras["boxes"]) and np.array_equal(ranks, final.extras["ranks"])

    # the coarse map is exactly the grid map with twice the stride
    wide = explain(tiny_model, chelsea, "cat.n.01", bank=BANK, stride=32, **params)
    assert np.array_equal(coarse.map, wide.map)
    assert np.array_equal(coarse.extras["boxes"], wide.extras["boxes"])
    assert not np.array_equal(coarse.map, final.map)


def test_cached_image_or_other_method_yields_only_the_final_map(tiny_model, chelsea, fresh_cache):
    first = explain(tiny_model, chelsea, "cat.n.01", bank=BANK, seed=12)
    out = list(explain_progressive(tiny_model, chelsea, "dog.n.01", bank=BANK, seed=12))
    assert [r.meta["stage"] for r in out] == ["final"] and out[0].meta["timings"]["crops_cached"] is True
    assert np.array_equal(out[0].map, explain(tiny_model, chelsea, "dog.n.01", bank=BANK, seed=12).map)
    assert not np.array_equal(out[0].map, first.map)
    for method in ("centre", "convis_stochastic"):
        kw = {"iterations": 20} if method == "convis_stochastic" else {}
        out = list(explain_progressive(tiny_model, chelsea, "cat.n.01", method=method, bank=BANK, **kw))
        assert [r.meta["stage"] for r in out] == ["final"] and out[0].meta["stage_label"]
        assert np.array_equal(out[0].map, explain(tiny_model, chelsea, "cat.n.01", method=method, bank=BANK, **kw).map)


def test_progressive_bad_input_is_a_clear_error(tiny_model, chelsea):
    with pytest.raises(ConvisError, match="invalid parameters for convis_grid"):
        next(explain_progressive(tiny_model, chelsea, "cat.n.01", bank=BANK, strides=3))
    with pytest.raises(ConvisError, match="unknown method"):
        next(explain_progressive(tiny_model, chelsea, "cat.n.01", method="nope"))


@pytest.mark.parametrize("params", [GridParams(seed=4, scoring="gamma", prune=False),
                                    GridParams(seed=4, box_sizes=(96, 40), stride=24)])
def test_engine_progressive_equals_grid_for_other_grids(tiny_model, chelsea, params):
    bank = get_bank(BANK)
    img = load_image(chelsea)
    eng = ConVisEngine(tiny_model, bank, batch_size=50, disk_cache=False)  # batches that do not divide
    stages = list(eng.grid_progressive(img, "feline.n.01", params))
    assert [r.meta["stage"] for r in stages] == ["coarse", "final"]
    plain = ConVisEngine(tiny_model, bank, disk_cache=False).grid(img, "feline.n.01", params)
    assert np.array_equal(stages[-1].map, plain.map)
    wide = ConVisEngine(tiny_model, bank, disk_cache=False).grid(
        img, "feline.n.01", dataclasses.replace(params, stride=2 * params.stride))
    assert np.array_equal(stages[0].map, wide.map)


@pytest.mark.parametrize("rows", [1000, 70_000, 140_000])  # no, one and two bit planes above 16 bits
def test_rank_index_gives_exactly_the_brute_force_ranks(rows):
    """Ranks from the compact index, filled in permuted batches (one of a single crop), equal a
    direct count on the product of all crops at once, ties included."""
    g = torch.Generator().manual_seed(rows)
    crops = torch.nn.functional.normalize(torch.randn(11, 8, generator=g), dim=1)
    text = torch.nn.functional.normalize(torch.randn(rows, 8, generator=g), dim=1)
    text[rows // 2] = text[3]  # an exact tie with a leaf
    text[rows // 3] = -text[5]
    sims = text @ crops.T  # the product of all crops at once
    order = np.random.default_rng(0).permutation(11)
    index = RankIndex.empty(rows, 11)
    for part in (order[:4], order[4:5], order[5:]):
        index.add(part, sims[:, torch.from_numpy(part)].numpy())
    bits = max(0, (rows - 1).bit_length() - 16)
    assert index.shift == bits and index.nbytes < rows * 11 * (2 + bits / 8) + 1024
    rng = np.random.default_rng(rows)
    for n_leaves in (1, 9, 3000, rows):
        leaves = np.union1d(rng.choice(rows, min(n_leaves, rows), replace=False), [3])
        best = sims[torch.from_numpy(leaves)].max(dim=0).values
        expected = (sims > best[None, :]).sum(dim=0).numpy()
        assert np.array_equal(index.ranks(leaves), expected), n_leaves
    # the lowest-ranked rows need the high bits
    worst = np.array([int(sims[:, 0].argmin())])
    assert index.ranks(worst)[0] == rows - 1 - int((sims[:, 0] == sims[worst[0], 0]).sum() - 1)


def test_competition_ranks_match_a_pairwise_count():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        x = (rng.integers(-20, 20, (5, 200)) / 7).astype(dtype)
        x[0, :3], x[0, 3:6] = -0.0, 0.0  # signed zeros compare equal
        expected = (x[:, None, :] > x[:, :, None]).sum(axis=2)
        assert np.array_equal(competition_ranks(x), expected)


def test_partial_index_marks_crops_not_added_yet():
    index = RankIndex.empty(10, 4)
    index.add(np.array([2, 0]), np.arange(20, dtype=np.float32).reshape(10, 2))
    r = index.ranks(np.array([9]))
    assert r[1] == -1 and r[3] == -1 and r[0] == 0 and r[2] == 0

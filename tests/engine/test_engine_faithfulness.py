"""The fast engine reproduces a plain port of the authors' loop (tests/engine/reference_convis.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convis_core import (
    ConVisEngine,
    GridParams,
    StochasticParams,
    bank_embeddings,
    get_bank,
    load_image,
)
from tests.engine import reference_convis as ref

BANK = "subtree=animal.n.01"


@pytest.fixture(scope="module")
def ref_crops(tiny_model, chelsea):
    return ref.grid_crop_embeddings(tiny_model, chelsea, seed=3)


@pytest.mark.parametrize(("mode", "scoring"), [("definitions", "rank"), ("lemmas", "rank"), ("definitions", "gamma")])
def test_grid_matches_reference(tiny_model, chelsea, ref_crops, mode, scoring):
    bank = get_bank(BANK, mode)
    text = torch.from_numpy(bank_embeddings(tiny_model, bank, use_cache=False))
    leaves = bank.leaves("cat.n.01")
    expected, ref_ranks = ref.grid_map(ref_crops, text, leaves.tolist(), scoring=scoring)

    eng = ConVisEngine(tiny_model, bank, disk_cache=False)
    eng._text = text.numpy()  # the same bank embeddings (their encoding is tested on its own)
    res = eng.grid(load_image(chelsea), "cat.n.01", GridParams(seed=3, scoring=scoring))
    # every box the engine scored has the reference's rank
    boxes, ranks = res.extras["boxes"], res.extras["ranks"]
    assert len(boxes) == 730  # the boxes that overlap the frame, of all 1,800
    for box, r in zip(boxes.tolist(), ranks.tolist(), strict=True):
        assert ref_ranks[tuple(box)] == r
    assert len(set(ranks.tolist())) > 3, "ranks should vary over the image"
    assert np.abs(res.map - expected).max() <= 1e-5


def test_stochastic_matches_reference(tiny_model, chelsea):
    bank = get_bank(BANK, "definitions")
    text = torch.from_numpy(bank_embeddings(tiny_model, bank, use_cache=False))
    leaves = bank.leaves("feline.n.01")
    expected = ref.stochastic_map(tiny_model, chelsea, text, leaves.tolist(), seed=1)
    eng = ConVisEngine(tiny_model, bank, disk_cache=False)
    eng._text = text.numpy()
    res = eng.stochastic(load_image(chelsea), "feline.n.01", StochasticParams(seed=1))
    assert len(np.unique(res.extras["samples"][:, 3])) > 3, "ranks should vary"
    assert np.abs(res.map - expected).max() <= 1e-5

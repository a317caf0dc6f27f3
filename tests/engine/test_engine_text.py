"""Bank text encoding: length-trimmed batches equal padded encoding; banks and their cache."""

from __future__ import annotations

import numpy as np
import pytest

from convis_core import bank as bankmod
from convis_core import get_bank, load_model, nouns
from convis_core.errors import ConvisError, EmptyConceptError


def test_trimmed_equals_padded_tiny(tiny_model):
    texts = [nouns().definitions[i] for i in range(0, 82115, 997)] + ["a", "dog"]
    trimmed = tiny_model.encode_texts(texts, trim=True)
    padded = tiny_model.encode_texts(texts, trim=False)
    assert float((trimmed - padded).abs().max()) <= 1e-5


def test_trimmed_equals_padded_vit_b32():
    m = load_model("ViT-B-32-quickgelu", "none", device="cpu", seed=1)
    texts = [nouns().definitions[i] for i in range(0, 82115, 4001)]
    trimmed = m.encode_texts(texts, trim=True, batch_size=8)
    padded = m.encode_texts(texts, trim=False, batch_size=8)
    assert float((trimmed - padded).abs().max()) <= 1e-5


def test_bank_presets():
    g = nouns()
    assert len(g) == 82115
    everything = get_bank("all")
    assert len(everything) == 82115 and everything.texts[g.index["dog.n.01"]] == g.definitions[g.index["dog.n.01"]]
    sub = get_bank("subtree=polygon.n.01")
    names = {g.names[i] for i in sub.synsets}
    assert {"polygon.n.01", "square.n.01", "triangle.n.01", "hexagon.n.01"} <= names
    assert "circle.n.01" not in names
    lem = get_bank("subtree=polygon.n.01", "lemmas")
    assert len(lem) > len(sub) and "square" in lem.texts and "_" not in "".join(lem.texts)
    coco = get_bank("words=coco80")
    cnames = {g.names[i] for i in coco.synsets}
    # every noun sense of 'dog' plus all hypernyms up to the root
    assert {"dog.n.01", "frump.n.01", "canine.n.02", "entity.n.01"} <= cnames
    assert 500 < len(coco) < 3000
    assert coco.key != sub.key and "coco80" in coco.spec.name


def test_bank_bad_input(tmp_path):
    for spec in ("everything", "subtree=", "subtree=dog.v.01", "words=nope_list"):
        with pytest.raises(ConvisError):
            get_bank(spec)
    with pytest.raises(ConvisError):
        get_bank("all", "sentences")
    f = tmp_path / "words.txt"
    f.write_text("# comment\nqwertyuiop\n")
    with pytest.raises(ConvisError, match="no word"):
        bankmod.build_bank(f"words={f}")
    with pytest.raises(EmptyConceptError, match="no leaves"):
        get_bank("subtree=polygon.n.01").leaves("dog.n.01")


def test_bank_build_resumes_after_a_kill(tiny_model, tmp_path, monkeypatch):
    """A build interrupted after its first chunk restarts from the chunks on disk."""
    monkeypatch.setenv("CONVIS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(bankmod, "CHUNK", 300)
    bank = bankmod.build_bank("subtree=mammal.n.01")
    assert len(bank) > 900
    calls: list[int] = []

    def die_after_first_chunk(done: int, total: int) -> None:
        calls.append(done)
        if done >= 400:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bankmod.bank_embeddings(tiny_model, bank, progress=die_after_first_chunk, batch_size=100)
    folder = bankmod._bank_dir(tiny_model, bank)
    assert [p.name for p in folder.glob("chunk-*.npy")] == ["chunk-00000.npy"]
    assert not (folder / "embeddings.npy").exists()
    resumed_from: list[int] = []
    emb = bankmod.bank_embeddings(tiny_model, bank, progress=lambda d, t: resumed_from.append(d), batch_size=100)
    assert resumed_from[0] >= 300, "the first chunk must not be encoded again"
    fresh = bankmod.bank_embeddings(tiny_model, bank, use_cache=False, batch_size=100)
    assert np.array_equal(emb, fresh)
    assert (folder / "embeddings.npy").exists() and not list(folder.glob("chunk-*.npy"))
    bankmod._MEMO.clear()
    assert np.array_equal(bankmod.bank_embeddings(tiny_model, bank), fresh)  # from disk

"""Models by name: random, local checkpoints, pretrained tags (offline here), errors."""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import save_file

from convis_core import load_model
from convis_core.errors import UnsupportedModelError, WeightsUnavailableError


def test_random_weights_are_seeded_and_flagged():
    a = load_model("convis-tiny", "none", device="cpu", seed=7)
    b = load_model("convis-tiny", "none", device="cpu", seed=7)
    c = load_model("convis-tiny", "none", device="cpu", seed=8)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(a.encode_images(x), b.encode_images(x))
    assert not torch.equal(a.encode_images(x), c.encode_images(x))
    assert a.random_weights and a.identity["random_weights"] and a.key != c.key


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_roundtrip(tmp_path, suffix):
    src = load_model("convis-tiny", "none", device="cpu", seed=3)
    path = tmp_path / f"tiny{suffix}"
    sd = {k: v.contiguous() for k, v in src.model.state_dict().items()}
    save_file(sd, path) if suffix == ".safetensors" else torch.save(sd, path)
    m = load_model("convis-tiny", str(path), device="cpu")
    assert not m.random_weights and m.weights_id.startswith("file:")
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(m.encode_images(x), src.encode_images(x))


def test_pretrained_tag_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("CONVIS_HUB_HOST", "hub.invalid")  # a reserved name that never resolves
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="--pretrained /path/to/checkpoint"):
        load_model("ViT-B-32-quickgelu", "openai", device="cpu")
    assert time.perf_counter() - t0 < 10


def test_bad_names():
    with pytest.raises(WeightsUnavailableError, match="known tags"):
        load_model("ViT-B-32-quickgelu", "opneai")
    with pytest.raises(WeightsUnavailableError, match="not found"):
        load_model("convis-tiny", "/nonexistent/weights.pt")
    with pytest.raises(UnsupportedModelError, match="did you mean"):
        load_model("ViT-B-32-quickgelo", "none")
    with pytest.raises(WeightsUnavailableError, match="bundled"):
        load_model("convis-tiny", "bundled")


def test_wrong_checkpoint_for_architecture(tmp_path):
    other = load_model("convis-tiny", "none", device="cpu")
    sd = {k: v for k, v in other.model.state_dict().items() if "visual" not in k}
    path = tmp_path / "partial.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsUnavailableError, match="could not load"):
        load_model("convis-tiny", str(path))

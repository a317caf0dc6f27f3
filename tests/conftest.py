"""Shared fixtures: real tiny open_clip models (seeded random weights), real WordNet, sample photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

# Tests run many tiny forwards; one intra-op thread avoids spin-waiting on a busy 2-core machine
# (measured here: 3.7 ms vs 41 ms per tiny-model crop with two threads while another job ran).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model():
    """The 32-px tiny ViT CLIP with seeded random weights (float32)."""
    from convis_core import load_model

    return load_model("convis-tiny", "none", device="cpu", seed=0)


@pytest.fixture(scope="session")
def chelsea() -> Image.Image:
    return Image.fromarray(data.chelsea())  # 451x300 cat photo


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

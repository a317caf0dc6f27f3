"""Shared fixtures: real tiny open_clip models (seeded random weights), real WordNet, sample photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data


@pytest.fixture(scope="session")
def tiny_model():
    """The 32-px tiny ViT CLIP with seeded random weights (float32)."""
    from convis_core import load_model

    return load_model("convis-tiny", "none", device="cpu", seed=0)


@pytest.fixture(scope="session")
def tiny_model64():
    """The same tiny model in float64: rank ties from float noise cannot occur."""
    from convis_core import load_model

    return load_model("convis-tiny", "none", device="cpu", seed=0).to(torch.float64)


@pytest.fixture(scope="session")
def chelsea() -> Image.Image:
    return Image.fromarray(data.chelsea())  # 451x300 cat photo


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

"""A plain, unbatched port of the authors' ConVis loop, written from ../shared/convis_reference.md.

Deliberately naive and independent of the engine: its own image preparation, canvas, box loop
over all 1,800 boxes (no pruning), one CLIP forward per crop, a per-crop rank count, and a pixel
loop accumulator. Used only to check that the fast engine computes the same maps.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def prepare(im: Image.Image) -> np.ndarray:
    """RGB, centre square (floor/ceil split of the excess), resized to 224x224."""
    im = im.convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((224, 224), Image.Resampling.BICUBIC)
    return np.asarray(im)


def padded(img224: np.ndarray, seed: int = 0, pad: int = 128) -> np.ndarray:
    size = 224 + 2 * pad
    noise = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    noise[pad : pad + 224, pad : pad + 224] = img224
    return noise


def crop_embedding(model, canvas: np.ndarray, y: int, x: int, s: int) -> torch.Tensor:
    crop = Image.fromarray(canvas[y : y + s, x : x + s])
    with torch.no_grad():
        px = model.preprocess(crop)[None].to(model.dtype)
        e = model.model.encode_image(px)[0]
    return e / e.norm()


def box_rank(e: torch.Tensor, text: torch.Tensor, leaf_rows: list[int]) -> int:
    """Smallest rank among the concept's rows; a row's rank = rows with strictly higher similarity."""
    sims_t = (text @ e).numpy()
    return min(int((sims_t > sims_t[r]).sum()) for r in leaf_rows)


def gamma(rank: int) -> float:
    return 2 * (np.exp(-5 * rank / 91) if rank < 91 else 0) - 0.5


def grid_crop_embeddings(model, im: Image.Image, seed: int = 0) -> dict:
    """One CLIP forward per box of the full grid (both scales): ``{(s, y, x): embedding}``.

    The crops do not depend on the concept, bank or scoring, so tests compute them once.
    """
    canvas = padded(prepare(im), seed)
    size = canvas.shape[0]
    return {(s, y, x): crop_embedding(model, canvas, y, x, s)
            for s in (128, 64) for y in range(0, size, 16) for x in range(0, size, 16)}


def grid_map(crops: dict, text: torch.Tensor, leaf_rows: list[int], scoring: str = "rank",
             size: int = 480) -> tuple[np.ndarray, dict]:
    acc = np.zeros((size, size), dtype=np.float64)
    ranks = {}
    for s in (128, 64):
        for y in range(0, size, 16):
            for x in range(0, size, 16):
                r = box_rank(crops[(s, y, x)], text, leaf_rows)
                ranks[(y, x, min(y + s, size), min(x + s, size))] = r
                acc[y : y + s, x : x + s] += gamma(r) if scoring == "gamma" else r
    acc = acc[128 : 128 + 224, 128 : 128 + 224]
    m = (acc - acc.min()) / (acc.max() - acc.min())
    return (m if scoring == "gamma" else 1 - m), ranks


def stochastic_map(model, im: Image.Image, text: torch.Tensor, leaf_rows: list[int], seed: int = 0,
                   iterations: int = 600) -> np.ndarray:
    canvas = padded(prepare(im), seed)
    size = canvas.shape[0]
    rng = np.random.default_rng([seed, 1])
    acc = np.ones((size, size))
    glob = np.zeros((size, size))
    for it in range(iterations):
        if it % 100 == 0 and it > 0:
            glob += acc
            acc = np.ones((size, size))
        s = 128 if it < 300 else 64
        region = acc[: 224 + 128, : 224 + 128]
        p = region.ravel() / region.sum()
        k = rng.choice(p.size, p=p)
        y, x = divmod(int(k), 224 + 128)
        r = box_rank(crop_embedding(model, canvas, y, x, s), text, leaf_rows)
        acc[y : y + s, x : x + s] *= 1 + 0.002 * gamma(r)
    glob += acc
    glob = glob[128 : 128 + 224, 128 : 128 + 224]
    return (glob - glob.min()) / (glob.max() - glob.min())

"""Tiny evaluation sets the tests write: CUB-200-2011 layout, a box CSV, ImageNet-style wnid folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# real WordNet ids: two finches (in) and two hounds (out), and a car (neither)
IN_WNIDS = ("n01530575", "n01531178")  # brambling, goldfinch (finch.n.01)
OUT_WNIDS = ("n02088364", "n02088238")  # beagle, basset (hound.n.01)
OTHER_WNID = "n02958343"  # car


def _image(rng: np.random.Generator, w: int, h: int, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    a = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        a[y0:y1, x0:x1] = rng.integers(150, 255, size=3, dtype=np.uint8)
    return Image.fromarray(a)


@pytest.fixture()
def cub_dir(tmp_path: Path) -> Path:
    """Six images (sizes vary, so the centre crop matters), one box each; ids 1-2 train, 3-6 test."""
    rng = np.random.default_rng(0)
    root = tmp_path / "cub"
    (root / "images" / "001.Bird").mkdir(parents=True)
    lines = {"images.txt": [], "bounding_boxes.txt": [], "train_test_split.txt": []}
    for i in range(1, 7):
        w, h = (96, 64) if i % 2 else (64, 80)
        box = (10 + i, 12, 40 + i, 50)
        _image(rng, w, h, box).save(root / "images" / "001.Bird" / f"b{i}.png")
        lines["images.txt"].append(f"{i} 001.Bird/b{i}.png")
        lines["bounding_boxes.txt"].append(f"{i} {box[0]}.0 {box[1]}.0 {box[2] - box[0]}.0 {box[3] - box[1]}.0")
        lines["train_test_split.txt"].append(f"{i} {1 if i <= 2 else 0}")
    for name, rows in lines.items():
        (root / name).write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture()
def box_csv(tmp_path: Path) -> Path:
    """Three images, one with two boxes, paths relative to the CSV."""
    rng = np.random.default_rng(1)
    (tmp_path / "imgs").mkdir()
    rows = ["path,x0,y0,x1,y1,label"]
    for i, boxes in enumerate([[(5, 5, 30, 30)], [(10, 10, 40, 30), (50, 40, 70, 60)], [(0, 0, 64, 64)]]):
        _image(rng, 72, 72, boxes[0]).save(tmp_path / "imgs" / f"x{i}.png")
        rows += [f"imgs/x{i}.png,{b[0]},{b[1]},{b[2]},{b[3]},thing" for b in boxes]
    p = tmp_path / "boxes.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.fixture()
def wnid_dir(tmp_path: Path) -> Path:
    """val/<wnid>/*.png: 3 images per in- and out-class, 2 of an unrelated class."""
    rng = np.random.default_rng(2)
    root = tmp_path / "inet"
    for wnid, n in [*((w, 3) for w in IN_WNIDS + OUT_WNIDS), (OTHER_WNID, 2)]:
        d = root / "val" / wnid
        d.mkdir(parents=True)
        for j in range(n):
            _image(rng, 48, 40).save(d / f"{wnid}_{j}.png")
    return root

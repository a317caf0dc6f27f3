"""The Shapes world's evaluation sets by name, written on first use under ``<data dir>/datasets``.

- ``shapes-cub``: a CUB-200-2011-style localisation set of single polygons (square, rectangle,
  triangle, hexagon), to be explained with ``polygon.n.01`` as CUB's birds are with ``bird.n.01``.
- ``shapes-imagenet``: ImageNet-style wnid folders, polygons (in) and digits (out): the
  ``shapes-polygon-digit`` OOD preset.

Scenes come from the test range of :mod:`convis_core.shapes.splits`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..paths import data_dir

SHAPES_SETS = {"shapes-cub": "polygon.n.01", "shapes-imagenet": "shapes-polygon-digit"}
CUB_IMAGES = 200
IMAGENET_PER_CLASS = 20


def ensure_shapes_set(name: str, progress: bool = True) -> Path:
    """The folder of a named Shapes-world set, written (atomically, by rename) when missing."""
    from ..shapes.datasets import concepts_under, write_cub_style, write_imagenet_style

    root = data_dir() / "datasets" / f"{name}-test"
    if root.is_dir():
        return root
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if name == "shapes-cub":
        write_cub_style(tmp, n=CUB_IMAGES, concepts=concepts_under("polygon.n.01"), train_fraction=0.0, progress=progress)
    elif name == "shapes-imagenet":
        write_imagenet_style(tmp, per_class=IMAGENET_PER_CLASS, progress=progress)
    else:
        raise ValueError(f"unknown Shapes-world set {name!r}")
    tmp.rename(root)
    return root

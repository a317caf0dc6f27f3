"""Read evaluation sets: CUB-200-2011's own layout, a generic CSV of boxes, ImageNet-style wnid folders.

Every reader returns :class:`Sample` rows with boxes in the *original* image's pixels
(``x0, y0, x1, y1``, half-open); :func:`boxes_in_frame` moves them into the 224x224 frame the maps
live in. Problems are :class:`~convis_core.errors.ConvisError` with the file and line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConvisError
from ..images import ImageFrame
from ..metrics import Box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".JPEG")
WNID_RE = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class Sample:
    """One evaluation image: ``id`` (stable, unique), path, boxes in original pixels, label."""

    id: str
    path: Path
    boxes: tuple[Box, ...] = ()
    label: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)


# ------------------------------------------------------------------------------------- CUB
def _table(path: Path, columns: int) -> dict[str, list[str]]:
    if not path.is_file():
        raise ConvisError(f"missing {path.name} in {path.parent} (CUB-200-2011 layout: images.txt, "
                          "bounding_boxes.txt, train_test_split.txt, images/)")
    rows: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < columns:
            raise ConvisError(f"{path}:{n}: expected {columns} fields, got {len(parts)}: {line!r}")
        rows[parts[0]] = parts[1:]
    return rows


def read_cub(root: Path, split: str = "test") -> list[Sample]:
    """CUB-200-2011: ``images.txt`` (id path), ``bounding_boxes.txt`` (id x y w h),
    ``train_test_split.txt`` (id 1=train/0=test); images under ``images/``. ``split``: test|train|all."""
    root = Path(root)
    if split not in ("test", "train", "all"):
        raise ConvisError(f"--split must be test, train or all, not {split!r}")
    images = _table(root / "images.txt", 2)
    boxes = _table(root / "bounding_boxes.txt", 5)
    flags = _table(root / "train_test_split.txt", 2)
    out = []
    for i, (rel, *_) in images.items():
        if i not in boxes:
            raise ConvisError(f"{root / 'bounding_boxes.txt'}: no box for image id {i}")
        if i not in flags:
            raise ConvisError(f"{root / 'train_test_split.txt'}: no split for image id {i}")
        is_train = flags[i][0] == "1"
        if (split == "train" and not is_train) or (split == "test" and is_train):
            continue
        try:
            x, y, w, h = map(float, boxes[i][:4])
        except ValueError as e:
            raise ConvisError(f"{root / 'bounding_boxes.txt'}: image id {i}: {e}") from e
        out.append(Sample(i, root / "images" / rel, ((x, y, x + w, y + h),), label=rel.split("/")[0]))
    if not out:
        raise ConvisError(f"no {split} images listed in {root / 'images.txt'}")
    return out


# ------------------------------------------------------------------------------------- CSV
CSV_HELP = ("a CSV with a header: 'path' (relative to the CSV's folder or absolute) and x0,y0,x1,y1 "
            "in original pixels; one row per box (rows with the same path are one image's boxes); "
            "optional 'id' and 'label'")


def read_box_csv(path: Path) -> list[Sample]:
    """A generic CSV of boxes (see :data:`CSV_HELP`)."""
    path = Path(path)
    if not path.is_file():
        raise ConvisError(f"CSV not found: {path}")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"path", "x0", "y0", "x1", "y1"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ConvisError(f"{path}: expected {CSV_HELP}; got columns {reader.fieldnames}")
        images: dict[str, dict] = {}
        for n, row in enumerate(reader, 2):
            try:
                box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            except (TypeError, ValueError) as e:
                raise ConvisError(f"{path}:{n}: box coordinates must be numbers ({e})") from e
            if box[2] <= box[0] or box[3] <= box[1]:
                raise ConvisError(f"{path}:{n}: empty box {box} (x1 must exceed x0 and y1 y0)")
            p = Path(row["path"])
            p = p if p.is_absolute() else path.parent / p
            key = row.get("id") or row["path"]
            entry = images.setdefault(key, {"path": p, "boxes": [], "label": row.get("label") or ""})
            entry["boxes"].append(box)
    if not images:
        raise ConvisError(f"{path}: no rows")
    return [Sample(k, v["path"], tuple(v["boxes"]), v["label"]) for k, v in images.items()]


def detect_format(data: Path) -> str:
    """``cub`` for a folder with images.txt, ``csv`` for a .csv file, else a clear error."""
    data = Path(data)
    if data.is_dir() and (data / "images.txt").is_file():
        return "cub"
    if data.is_file() and data.suffix.lower() == ".csv":
        return "csv"
    if not data.exists():
        raise ConvisError(f"data not found: {data}")
    raise ConvisError(f"cannot tell the format of {data}: give a CUB-200-2011 folder (with images.txt) "
                      f"or {CSV_HELP}")


def read_wsol(data: Path, fmt: str = "auto", split: str = "test") -> list[Sample]:
    fmt = detect_format(data) if fmt == "auto" else fmt
    if fmt == "cub":
        return read_cub(data, split)
    if fmt == "csv":
        return read_box_csv(data)
    raise ConvisError(f"unknown format {fmt!r} (auto, cub, csv)")


def boxes_in_frame(boxes: Sequence[Box], frame: ImageFrame) -> list[Box]:
    """Boxes in original pixels moved through the frame's centre crop and resize, clipped to the
    frame; boxes wholly outside the centre square are dropped."""
    out = []
    scale = frame.size / frame.side
    for x0, y0, x1, y1 in boxes:
        b = np.clip([(x0 - frame.left) * scale, (y0 - frame.top) * scale,
                     (x1 - frame.left) * scale, (y1 - frame.top) * scale], 0, frame.size)
        if b[2] > b[0] and b[3] > b[1]:
            out.append(tuple(float(v) for v in b))
    return out


# -------------------------------------------------------------------------------- wnid folders
def wnid_synset(wnid: str) -> str:
    """The noun synset name of an ImageNet-style WordNet id (``n02084071`` -> ``dog.n.01``)."""
    from ..wordnet import _wordnet

    try:
        return _wordnet().synset_from_pos_and_offset("n", int(wnid[1:])).name()
    except Exception as e:  # nltk raises WordNetError or a bare Exception for unknown offsets
        raise ConvisError(f"{wnid} is not a WordNet 3.0 noun id") from e


def read_wnid_folders(root: Path, in_synset: str, out_synset: str) -> tuple[list[Sample], dict]:
    """Images in folders named by WordNet ids (any depth: ``val/n01530575/x.JPEG``). A folder is
    in-distribution when its synset lies under ``in_synset``, out-of-distribution under
    ``out_synset``; others are skipped (counted). Labels: ``in`` or ``out``."""
    from ..wordnet import nouns

    root = Path(root)
    if not root.is_dir():
        raise ConvisError(f"data folder not found: {root}")
    g = nouns()
    under = {name: set(g.names[i] for i in g.subtree(g.lookup(name))) for name in (in_synset, out_synset)}
    if under[in_synset] & under[out_synset]:
        raise ConvisError(f"{in_synset} and {out_synset} overlap in WordNet: they cannot be in and out")
    samples, folders = [], {"in": {}, "out": {}, "skipped": {}}
    for d in sorted(p for p in root.rglob("n*") if p.is_dir() and WNID_RE.match(p.name)):
        name = wnid_synset(d.name)
        part = "in" if name in under[in_synset] else "out" if name in under[out_synset] else "skipped"
        files = sorted(f for f in d.iterdir() if f.suffix in IMAGE_SUFFIXES or f.suffix.lower() in IMAGE_SUFFIXES)
        folders[part][d.name] = {"synset": name, "images": len(files)}
        if part != "skipped":
            samples += [Sample(str(f.relative_to(root)), f, (), part, {"synset": name}) for f in files]
    if not any(s.label == "in" for s in samples) or not any(s.label == "out" for s in samples):
        found = ", ".join(f"{k}: {len(v)}" for k, v in folders.items())
        raise ConvisError(f"{root}: need image folders (named by WordNet id, e.g. n01530575) under both "
                          f"{in_synset} and {out_synset}; wnid folders found: {found}")
    return samples, folders


def subsample(samples: list[Sample], n: int | None, seed: int, stratify: bool = False) -> list[Sample]:
    """``n`` samples drawn without replacement with ``seed`` (all when ``n`` is None or larger),
    in their original order. ``stratify``: draw from each label in proportion (OOD in/out)."""
    if n is None or n >= len(samples):
        return list(samples)
    if n < 1:
        raise ConvisError("--sample must be at least 1")
    rng = np.random.default_rng(seed)
    if not stratify:
        return [samples[i] for i in np.sort(rng.choice(len(samples), n, replace=False))]
    labels = sorted({s.label for s in samples})
    keep: list[int] = []
    for lab in labels:
        idx = [i for i, s in enumerate(samples) if s.label == lab]
        k = max(1, round(n * len(idx) / len(samples)))
        keep += list(rng.choice(idx, min(k, len(idx)), replace=False))
    return [samples[i] for i in sorted(keep)]

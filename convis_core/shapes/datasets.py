"""Write Shapes-world data sets in the formats of the paper's experiments.

- ``write_cub_style``: a CUB-200-2011-style localisation set (``images.txt``, ``bounding_boxes.txt``
  with ``x y width height`` in pixels, ``train_test_split.txt`` with 1 = train, ``image_class_labels.txt``,
  ``classes.txt`` and ``images/<class>/<file>.png``). One object per image, so the box is the object.
- ``write_imagenet_style``: folders named by WordNet offset ids (``n04233124``) holding single-object
  scenes, split into an in-distribution part (default: concepts under ``polygon.n.01``) and an
  out-of-distribution part (default: under ``digit.n.01``), with a ``manifest.json``.

``python -m convis_core.shapes.datasets cub|imagenet OUT_DIR [--n N]`` writes them; scene ids are
recorded so every image can be regenerated with :func:`render_scene`. Read them with
``convis_core.evaluation.datasets`` (``read_cub``, ``read_wnid_folders``), as any other set.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from . import hierarchy as wnh
from .scenes import ALL_CONCEPTS, render_scene
from .splits import block

#: first scene id of the data sets: the test range (no training, monitoring or tuning saw them)
CUB_ID_START = block("test", "cub")
IMAGENET_ID_START = block("test", "imagenet")


def wnid(synset_name: str) -> str:
    """ImageNet-style WordNet id of a noun synset: ``n`` + 8-digit offset."""
    s = wnh.synset(synset_name)
    return f"{s.pos()}{s.offset():08d}"


def concepts_under(root: str, pool: Sequence[str] = ALL_CONCEPTS) -> list[str]:
    """The Shapes-world concepts at or below ``root`` in WordNet."""
    return [c for c in pool if wnh.is_under(c, root)]


def write_cub_style(
    out: Path, n: int = 200, concepts: Sequence[str] = ALL_CONCEPTS, train_fraction: float = 0.5,
    start: int = CUB_ID_START, progress: bool = True,
) -> Path:
    """Write ``n`` single-object scenes as a CUB-style localisation set; returns ``out``."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    concepts = list(concepts)
    images, boxes, split, labels, scene_ids = [], [], [], [], []
    n_train = int(round(n * train_fraction))
    for i in tqdm(range(n), disable=not progress, desc="cub-style"):
        concept = concepts[i % len(concepts)]
        scene = render_scene(start + i, concepts=[concept])
        cls = concepts.index(concept) + 1
        rel = f"{cls:03d}.{concept}/shapes_{start + i}.png"
        (out / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        scene.image.save(out / "images" / rel)
        x0, y0, x1, y1 = scene.objects[0].box
        images.append(f"{i + 1} {rel}")
        boxes.append(f"{i + 1} {float(x0):.1f} {float(y0):.1f} {float(x1 - x0):.1f} {float(y1 - y0):.1f}")
        split.append(f"{i + 1} {1 if i < n_train else 0}")
        labels.append(f"{i + 1} {cls}")
        scene_ids.append(start + i)
    (out / "images.txt").write_text("\n".join(images) + "\n")
    (out / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    (out / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (out / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (out / "classes.txt").write_text("\n".join(f"{i + 1} {i + 1:03d}.{c}" for i, c in enumerate(concepts)) + "\n")
    (out / "scene_ids.txt").write_text("\n".join(f"{i + 1} {s}" for i, s in enumerate(scene_ids)) + "\n")
    return out


def write_imagenet_style(
    out: Path, per_class: int = 20, in_root: str = "polygon.n.01", ood_root: str = "digit.n.01",
    start: int = IMAGENET_ID_START, progress: bool = True,
) -> Path:
    """Write ``out/in/<wnid>/*.png`` and ``out/ood/<wnid>/*.png`` plus ``manifest.json``."""
    out = Path(out)
    parts = {"in": concepts_under(in_root), "ood": concepts_under(ood_root)}
    if not parts["in"] or not parts["ood"]:
        raise ValueError(f"no Shapes-world concepts under {in_root!r} or {ood_root!r}")
    manifest: dict = {"in_root": in_root, "ood_root": ood_root, "parts": {}, "images": []}
    sid = start
    for part, concepts in parts.items():
        manifest["parts"][part] = {wnid(c): c for c in concepts}
        for c in tqdm(concepts, disable=not progress, desc=f"imagenet-style {part}"):
            folder = out / part / wnid(c)
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(per_class):
                scene = render_scene(sid, concepts=[c])
                name = f"{wnid(c)}_{sid}.png"
                scene.image.save(folder / name)
                manifest["images"].append({"path": f"{part}/{wnid(c)}/{name}", "part": part, "synset": c,
                                           "scene_id": sid, "box": list(scene.objects[0].box)})
                sid += 1
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write Shapes-world data sets (CUB-style or ImageNet-style).")
    p.add_argument("kind", choices=["cub", "imagenet"])
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=200, help="cub: images; imagenet: images per class")
    p.add_argument("--in-root", default="polygon.n.01")
    p.add_argument("--ood-root", default="digit.n.01")
    a = p.parse_args(argv)
    if a.kind == "cub":
        path = write_cub_style(a.out, n=a.n)
    else:
        path = write_imagenet_style(a.out, per_class=a.n, in_root=a.in_root, ood_root=a.ood_root)
    print(path)


if __name__ == "__main__":
    main()

"""Shapes world: WordNet truth, the scene generator and the data-set formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convis_core.evaluation.datasets import read_cub
from convis_core.shapes import hierarchy as wnh
from convis_core.shapes.datasets import wnid, write_cub_style, write_imagenet_style
from convis_core.shapes.scenes import (
    ALL_CONCEPTS,
    BACKGROUND_SYNSET,
    BACKGROUNDS,
    DIGIT_CONCEPTS,
    SHAPE_CONCEPTS,
    TEST_ID_START,
    digit_pool,
    render_scene,
)

POLYGONS = ["square.n.01", "rectangle.n.01", "triangle.n.01", "hexagon.n.01"]


def test_concepts_are_the_right_wordnet_senses() -> None:
    assert wnh.definition("circle.n.01").startswith("ellipse in which the two axes are of equal length")
    assert wnh.definition("square.n.01").startswith("(geometry) a plane rectangle with four equal sides")
    assert wnh.definition("triangle.n.01") == "a three-sided polygon"
    assert wnh.definition("hexagon.n.01") == "a six-sided polygon"
    assert wnh.definition("one.n.01").startswith("the smallest whole number")
    assert wnh.definition("five.n.01") == "the cardinal number that is the sum of four and one"
    assert "background" in wnh.lemma_texts(BACKGROUND_SYNSET)
    for i, c in enumerate(DIGIT_CONCEPTS, start=1):
        assert wnh.is_under(c, "digit.n.01"), c
        assert str(i) in wnh.lemma_texts(c), c
    assert len(wnh.all_noun_synsets()) == 82115


def test_hierarchy_is_real_wordnet() -> None:
    for c in POLYGONS:
        assert wnh.is_under(c, "polygon.n.01"), c
        assert not wnh.is_under(c, "conic_section.n.01"), c
    for c in ("circle.n.01", "ellipse.n.01"):
        assert wnh.is_under(c, "conic_section.n.01")
        assert not wnh.is_under(c, "polygon.n.01")
    assert wnh.is_under("circle.n.01", "ellipse.n.01")  # WordNet: a circle is an ellipse
    assert wnh.is_under("square.n.01", "rectangle.n.01")
    assert all(not wnh.is_under(c, "digit.n.01") for c in SHAPE_CONCEPTS)
    assert {"triangle.n.01", "hexagon.n.01", "square.n.01"} <= wnh.subtree("polygon.n.01")
    assert "circle.n.01" not in wnh.subtree("polygon.n.01")


def test_scene_is_a_pure_function_of_its_id() -> None:
    a, b = render_scene(123), render_scene(123)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.objects == b.objects and a.background == b.background
    c = render_scene(124)
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_scene_objects_boxes_and_masks_agree() -> None:
    counts, kinds, seen = set(), set(), set()
    for i in range(40):
        s = render_scene(i)
        assert s.image.size == (224, 224) and s.image.mode == "RGB"
        assert 1 <= len(s.objects) <= 4
        assert len(set(s.synsets)) == len(s.synsets)
        counts.add(len(s.objects))
        kinds.add(s.background)
        seen.update(s.synsets)
        for o, m in zip(s.objects, s.masks, strict=True):
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
            ys, xs = np.nonzero(m >= 0.5)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
            assert 10 <= max(x1 - x0, y1 - y0) <= 130
        # objects do not overlap
        for i1 in range(len(s.objects)):
            for i2 in range(i1 + 1, len(s.objects)):
                assert not ((s.masks[i1] > 0.02) & (s.masks[i2] > 0.02)).any()
    assert counts == {1, 2, 3, 4}
    assert len(kinds) >= 5 and kinds <= set(BACKGROUNDS)
    assert len(seen) >= 12


def test_fixed_concepts_and_held_out_digits() -> None:
    s = render_scene(TEST_ID_START + 5, concepts=["circle.n.01", "seven.n.01"])
    assert s.synsets == ["circle.n.01", "seven.n.01"] and s.meta["split"] == "test"
    for d in range(1, 10):
        tr, te = digit_pool(d, "train"), digit_pool(d, "test")
        assert len(te) >= 30 and len(tr) >= 4 * len(te) - 5
        assert not any(np.array_equal(x, y) for x in te[:10] for y in tr)
    with pytest.raises(ValueError):
        render_scene(1, concepts=["dog.n.01"])


def test_cub_style_set(tmp_path) -> None:  # noqa: ANN001
    root = write_cub_style(tmp_path / "cub", n=6, progress=False)
    for f in ("images.txt", "bounding_boxes.txt", "train_test_split.txt", "image_class_labels.txt", "classes.txt"):
        assert (root / f).is_file(), f
    rows = read_cub(root, split="all")
    assert [r.id for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r.id for r in read_cub(root, split="train")] == ["1", "2", "3"]
    line = (root / "bounding_boxes.txt").read_text().splitlines()[0].split()
    assert len(line) == 5  # id x y width height
    for r in rows:
        assert r.path.is_file()
        (x0, y0, x1, y1), = r.boxes
        assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
    sid = int((root / "scene_ids.txt").read_text().split()[1])
    assert render_scene(sid, concepts=[ALL_CONCEPTS[0]]).objects[0].box == tuple(int(v) for v in rows[0].boxes[0])


def test_imagenet_style_set(tmp_path) -> None:  # noqa: ANN001
    root = write_imagenet_style(tmp_path / "inet", per_class=2, progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    assert set(manifest["parts"]["in"].values()) == set(POLYGONS)
    assert set(manifest["parts"]["ood"].values()) == set(DIGIT_CONCEPTS)
    assert wnid("circle.n.01") == "n13873502"
    for part in ("in", "ood"):
        folders = sorted(p.name for p in (root / part).iterdir())
        assert folders == sorted(manifest["parts"][part])
        assert all(len(f) == 9 and f[0] == "n" and f[1:].isdigit() for f in folders)
        assert all(len(list((root / part / f).glob("*.png"))) == 2 for f in folders)

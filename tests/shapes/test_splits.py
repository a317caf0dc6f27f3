"""The Shapes world's id ranges: disjoint, used in one place, and read by every consumer."""

from __future__ import annotations

import inspect

import pytest

from convis_core.shapes import datasets, splits
from convis_core.shapes import evaluate as ev
from convis_core.shapes import train as tr


def test_ranges_are_disjoint_and_blocks_stay_inside() -> None:
    ranges = list(splits.SPLITS.values())
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            assert a.stop <= b.start or b.stop <= a.start, (a, b)
    starts = sorted(splits.BLOCKS.values())
    for split in ("validation", "test"):
        for check in splits.BLOCKS:
            assert splits.split_of_id(splits.block(split, check)) == split
    assert splits.split_of_id(splits.TEST.start + starts[-1] + 99_999) == "test"
    assert splits.split_of_id(3_000_000) == "unused"
    with pytest.raises(ValueError):
        splits.block("train", "cub")


def test_training_sees_only_train_ids_and_monitors_validation() -> None:
    assert inspect.signature(tr.zero_shot_accuracy).parameters["start"].default == splits.VALIDATION.start
    assert "% TRAIN.stop" in inspect.getsource(tr.StepData)


def test_data_sets_and_report_use_the_test_range() -> None:
    assert splits.split_of_id(datasets.CUB_ID_START) == "test"
    assert splits.split_of_id(datasets.IMAGENET_ID_START) == "test"
    assert inspect.signature(ev.evaluate).parameters["split"].default == "test"
    assert all(splits.split_of_id(s.scene_id) == "test" for s, _ in ev.pointing_cases("test", 3))


def test_the_pages_headline_is_read_from_the_committed_report(tmp_path) -> None:
    import json

    from convis_core.shapes.headline import REPORT_JSON, headline

    r = json.loads(REPORT_JSON.read_text())
    text = headline()
    assert f"{r['pointing_game']['convis_grid']['value']:.1%}" in text
    assert f"of {r['pointing_game']['convis_grid']['n']} two-object scenes" in text
    assert f"On {r['split']} scenes" in text
    (tmp_path / "report.json").write_text("{not json")
    assert "could not be read" in headline(tmp_path / "report.json")

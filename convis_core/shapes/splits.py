"""The Shapes world's scene-id ranges, in one place.

- ``TRAIN``: ids below 1,000,000, the only scenes training renders.
- ``VALIDATION``: 1,000,000-1,999,999. Training monitors its zero-shot accuracy here; any tuning
  of the recipe looks only here. The first report (before the split) also measured here, so
  its figures are validation figures.
- ``TEST``: 5,000,000-5,999,999, for the report and the harness demonstration only: no training
  run, monitor or tuning reads it.

Both held-out ranges draw digits from the held-out 20 % of scikit-learn's digit samples
(``scenes.split_of``); validation and test share that pool (different scenes, the same glyphs).
Each check of a report takes its scenes from its own block of a range (``block``), so checks
never share scenes.
"""

from __future__ import annotations

from .scenes import TEST_ID_START

TRAIN = range(0, TEST_ID_START)
VALIDATION = range(TEST_ID_START, 2_000_000)
TEST = range(5_000_000, 6_000_000)
SPLITS = {"train": TRAIN, "validation": VALIDATION, "test": TEST}
#: offsets of each check's block inside a held-out range
BLOCKS = {"zero_shot": 0, "pointing": 100_000, "hypernym": 150_000, "cub": 200_000, "imagenet": 400_000}


def block(split: str, check: str) -> int:
    """First scene id of ``check``'s block in ``split`` (``validation`` or ``test``)."""
    if split not in ("validation", "test"):
        raise ValueError("reports and data sets use the validation or the test range")
    return SPLITS[split].start + BLOCKS[check]


def split_of_id(scene_id: int) -> str:
    """``train``, ``validation``, ``test`` or ``unused``."""
    return next((k for k, r in SPLITS.items() if scene_id in r), "unused")

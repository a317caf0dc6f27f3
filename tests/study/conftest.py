"""Fixtures: real stimulus folders (PIL-made PNGs), spec files, SQLite files (PostgreSQL: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from study import db as dbmod
from study.stimuli import build_synthetic_stimuli

CONCEPTS = ["dog.n.01", "cat.n.01", "car.n.01", "tree.n.01", "house.n.01"]


def base_spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": "demo", "title": "Demo", "consent": "I agree.", "instructions": "Do it.",
        "concepts": CONCEPTS, "methods": ["convis", "gradcam"],
        "protocol": {"name": "forward_simulation"},
        "design": {"type": "between", "control": True},
        "trials": 6, "recruitment": {"completion_code": "DONE1"},
    }
    spec.update(over)
    return spec


@pytest.fixture(scope="session")
def stimuli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stimuli")
    build_synthetic_stimuli(folder, [f"img{i:02d}" for i in range(44)], CONCEPTS, ["convis", "gradcam", "grid"], seed=3)
    return folder


@pytest.fixture
def write_spec(tmp_path: Path, stimuli_dir: Path) -> Callable[..., Path]:
    def write(**over: Any) -> Path:
        data = base_spec(**over)
        data.setdefault("stimuli", {"dir": str(stimuli_dir)})
        path = tmp_path / f"{data['id']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path
    return write


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[dbmod.Database]:
    url = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    yield dbmod.connect(url)
    dbmod.forget(url)

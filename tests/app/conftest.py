"""Fixtures of the app tests: a scratch study database the pages find through the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from study.db import Database, connect, forget

ROOT = Path(__file__).resolve().parents[2]


def private_data_dir(folder: Path) -> Path:
    """A data folder of its own that still sees the repository's WordNet and model caches."""
    data = folder / "data"
    data.mkdir(exist_ok=True)
    for name in ("nltk_data", "cache"):
        if not (data / name).exists():
            (data / name).symlink_to(ROOT / ".data" / name)
    return data


@contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block (module-scoped fixtures cannot use monkeypatch)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """An SQLite study database and a private data folder, both set in the environment."""
    url = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    monkeypatch.setenv("CONVIS_DATA_DIR", str(private_data_dir(tmp_path)))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CONVIS_PID_KEY", "ab" * 32)
    database = connect(url)
    yield database
    forget(url)

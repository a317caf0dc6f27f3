"""Where the project keeps local data: the one answer (:func:`data_dir`) for the engine, the
study database's default SQLite file, WordNet for NLTK and content-keyed caches."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir() -> Path:
    """``$CONVIS_DATA_DIR`` (when set and not empty), else ``<project>/.data``."""
    return Path(os.environ.get("CONVIS_DATA_DIR") or PROJECT_ROOT / ".data")


def nltk_data_dir() -> Path:
    """Where NLTK finds WordNet 3.0 (laid out by ``scripts/setup.sh``)."""
    return data_dir() / "nltk_data"


def cache_dir(*parts: str) -> Path:
    """A folder under the cache (created on demand)."""
    p = data_dir().joinpath("cache", *parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

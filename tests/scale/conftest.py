"""Scale-out fixtures: one local Ray (2 CPUs) for the session, fresh data folders sharing WordNet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.evaluation.conftest import cub_dir  # noqa: F401  (the evaluation tests' tiny CUB set, for Ray)

ROOT = Path(__file__).resolve().parents[2]
REAL_DATA = ROOT / ".data"


def fresh_data_dir(path: Path) -> Path:
    """A data folder with empty caches (no crop or bank embeddings), sharing only WordNet."""
    (path / "cache").mkdir(parents=True)
    (path / "nltk_data").symlink_to(REAL_DATA / "nltk_data")
    (path / "cache" / "wordnet").symlink_to(REAL_DATA / "cache" / "wordnet")
    return path


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A local Ray with 2 CPUs, started once and shut down after the session."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024,
             log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()

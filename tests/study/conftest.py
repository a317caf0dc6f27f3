"""Fixtures: real stimulus folders (PIL-made PNGs), spec files, SQLite files and a scratch PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from study import db as dbmod
from study.stimuli import build_synthetic_stimuli

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
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


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this test run (dropped at the end)."""
    name = f"convis_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 (user postgres) is required and unreachable: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        dbmod.forget(url)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_db(pg_url: str) -> dbmod.Database:
    """The scratch database with all study rows removed (tests share the schema)."""
    db = dbmod.connect(pg_url)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE events, responses, steps, participants, study_versions, studies CASCADE")
    return db

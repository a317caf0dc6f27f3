"""Fixtures: real stimulus folders (PIL-made PNGs), spec files, SQLite files and a scratch PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.engine import make_url

from study import db as dbmod
from study.config import normalise_url, pg_admin_url
from study.stimuli import build_synthetic_stimuli

# The admin connection: $CONVIS_PG_ADMIN_URL, else what scripts/setup.sh wrote, else the default.
PG_ADMIN = pg_admin_url()
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
    shown = make_url(PG_ADMIN).render_as_string(hide_password=True)
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required and unreachable at {shown} (CONVIS_PG_ADMIN_URL; "
                    f"scripts/setup.sh starts a private cluster when none answers): {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_url(PG_ADMIN)).set(database=name).render_as_string(hide_password=False)
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

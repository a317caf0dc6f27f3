"""Shared fixtures: real tiny open_clip models (seeded random weights), real WordNet, sample photos."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
import torch
from PIL import Image
from skimage import data
from sqlalchemy.engine import make_url

from study import db as dbmod
from study.config import pg_admin_url

# The admin connection: $CONVIS_PG_ADMIN_URL, else what scripts/setup.sh wrote, else the default.
PG_ADMIN = pg_admin_url()

# No first-start demo build in the apps and pages tests start (tests/app/test_demo.py covers it).
os.environ.setdefault("CONVIS_DEMO", "0")

# Tests run many tiny forwards; one intra-op thread avoids spin-waiting on a busy 2-core machine
# (measured here: 3.7 ms vs 41 ms per tiny-model crop with two threads while another job ran).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model():
    """The 32-px tiny ViT CLIP with seeded random weights (float32)."""
    from convis_core import load_model

    return load_model("convis-tiny", "none", device="cpu", seed=0)


@pytest.fixture(scope="session")
def chelsea() -> Image.Image:
    return Image.fromarray(data.chelsea())  # 451x300 cat photo


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this test run (dropped at the end)."""
    shown = make_url(PG_ADMIN).render_as_string(hide_password=True)
    try:
        with dbmod.scratch_postgres(PG_ADMIN, "convis_test") as url:
            yield url
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required and unreachable at {shown} (CONVIS_PG_ADMIN_URL; "
                    f"scripts/setup.sh starts a private cluster when none answers): {exc}")


@pytest.fixture
def pg_db(pg_url: str) -> dbmod.Database:
    """The scratch database with all study rows removed (tests share the schema)."""
    db = dbmod.connect(pg_url)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE events, responses, steps, participants, study_versions, studies CASCADE")
    return db

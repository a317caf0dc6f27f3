"""Where study data lives: `$DATABASE_URL`, else SQLite under `$CONVIS_DATA_DIR` (default `<repo>/.data`)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The local data folder: `$CONVIS_DATA_DIR`, else `<repo>/.data`."""
    return Path(os.environ.get("CONVIS_DATA_DIR") or REPO_ROOT / ".data")


def database_url() -> str:
    """`$DATABASE_URL` (plain `postgresql://` is routed to psycopg 3), else the default SQLite file."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{data_dir() / 'convis_studies.sqlite'}"
    return normalise_url(url)


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for bare PostgreSQL URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url

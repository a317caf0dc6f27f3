"""Where study data lives: `$DATABASE_URL`, else SQLite under `$CONVIS_DATA_DIR` (default `<repo>/.data`)."""

from __future__ import annotations

import os
from pathlib import Path

from convis_core.paths import data_dir  # the one answer, re-exported for study code

__all__ = ["REPO_ROOT", "data_dir", "database_url", "normalise_url", "pg_admin_url"]

REPO_ROOT = Path(__file__).resolve().parent.parent


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


PG_ADMIN_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_admin_url() -> str:
    """The PostgreSQL admin connection (a libpq URL) the tests and `scripts/setup.sh` use.

    `$CONVIS_PG_ADMIN_URL`, else the URL `scripts/setup.sh` wrote to `<data dir>/pg/admin_url`
    when it started a private cluster there, else `PG_ADMIN_URL_DEFAULT`. A SQLAlchemy-style
    `postgresql+psycopg://` URL is given back in libpq form.
    """
    url = os.environ.get("CONVIS_PG_ADMIN_URL", "").strip()
    if not url:
        written = data_dir() / "pg" / "admin_url"
        url = written.read_text().strip() if written.is_file() else ""
    url = url or PG_ADMIN_URL_DEFAULT
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url

"""Engine, sessions and migrations.

SQLite (default) runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``, so
writers queue on the file lock instead of failing on lock upgrades; PostgreSQL takes row locks
(``SELECT ... FOR UPDATE``) where assignment and submission need them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from study.config import database_url, normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_KEY = 0x5C0715  # PostgreSQL advisory lock id for migrations
_cache: dict[str, Database] = {}
_cache_lock = threading.Lock()


@dataclass
class Database:
    """A migrated database: `session()` yields a transaction that commits on success."""

    url: str
    engine: Engine
    factory: sessionmaker[Session]

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction (BEGIN IMMEDIATE on SQLite); commit on exit, rollback on error."""
        with self.factory() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create(url: str) -> Engine:
    """A new engine for `url` with our SQLite or PostgreSQL settings (not migrated)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_size=10, max_overflow=60, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head; idempotent and safe when several processes start at once."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # batch migrations recreate tables; SQLite only toggles this outside a transaction
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


def connect(url: str | None = None) -> Database:
    """The migrated database at `url` (default: `study.config.database_url()`), cached per URL."""
    url = normalise_url(url or database_url())
    with _cache_lock:
        db = _cache.get(url)
        if db is None:
            engine = create(url)
            migrate(engine)
            db = Database(url, engine, sessionmaker(engine, expire_on_commit=False))
            _cache[url] = db
        return db


def forget(url: str) -> None:
    """Dispose and drop a cached database (tests, scratch databases)."""
    with _cache_lock:
        db = _cache.pop(normalise_url(url), None)
    if db is not None:
        db.dispose()


@contextmanager
def scratch_postgres(admin_url: str, prefix: str = "convis_scratch") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of `admin_url` (tests, benches), dropped on
    exit; yields its SQLAlchemy URL. Raises psycopg's `OperationalError` if the server is down."""
    import secrets

    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(normalise_url(admin_url)).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            forget(url)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()

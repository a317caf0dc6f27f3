"""Prolific PIDs: keyed (HMAC) hashes with a per-study key derived from a key kept outside the
database; no offline matching, no re-entry."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, select, text, update

from study import db as dbmod
from study.errors import AlreadyParticipated
from study.export import export_study
from study.keys import master_key, pid_hash
from study.models import Participant, Study
from study.runtime import Runtime
from study.versions import launch

PID = "5f3c9a0b1c2d3e4f5a6b7c8d"
GONE, HERE = "60" * 12, "61" * 12


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _all_text(db: dbmod.Database) -> str:
    """Every cell of every table, as one string (to search for leaked identifiers)."""
    parts = []
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            cols = [c["name"] for c in inspect(conn).get_columns(table)]
            quoted = ", ".join(f'"{c}"' for c in cols)
            for row in conn.execute(text(f"SELECT {quoted} FROM {table}")):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_withdrawn_pid_is_keyed_per_study_and_cannot_reenter(sqlite_db, write_spec, tmp_path) -> None:
    launch(sqlite_db, write_spec(id="one"))
    launch(sqlite_db, write_spec(id="two"))
    rt = Runtime(sqlite_db)
    a, b = rt.start("one", prolific_pid=PID), rt.start("two", prolific_pid=PID, session_id="S2")
    rt.consent(a.token, True)
    rt.submit(a.token, 0, {"ok": True})
    rt.withdraw(a.token)
    with sqlite_db.session() as s:
        studies = {st.slug: st for st in s.scalars(select(Study))}
        pa, pb = s.get(Participant, a.participant_id), s.get(Participant, b.participant_id)
    one, two = studies["one"], studies["two"]
    assert not hasattr(one, "secret")
    assert pa.status == "withdrawn" and pa.prolific_pid is None
    assert pa.pid_hash == pid_hash("one", PID)
    assert pb.pid_hash == pid_hash("two", PID) != pa.pid_hash
    # without the key (outside the database), a known PID matches nothing: no unsalted digest anywhere
    dump = _all_text(sqlite_db)
    assert PID in dump  # the study-two participant is still active: Prolific needs its PID
    assert master_key().hex() not in dump
    for guess in (_sha(PID), _sha(f"{one.id}:{PID}"), _sha(f"{two.id}:{PID}"), _sha(f"one:{PID}"),
                  hashlib.md5(PID.encode()).hexdigest()):
        assert guess not in dump
    # the guarantee stays: the same PID cannot re-enter study one, and still resumes study two
    with pytest.raises(AlreadyParticipated):
        rt.start("one", prolific_pid=PID)
    assert rt.start("two", prolific_pid=PID, session_id="S2").participant_id == b.participant_id
    # exports never carry the key or the hashes
    files = export_study(sqlite_db, "one", tmp_path / "export")
    blob = b"".join(Path(p).read_bytes() for p in files.values() if Path(p).is_file())
    assert master_key().hex().encode() not in blob and pa.pid_hash.encode() not in blob


def _alembic(url: str, action: str, revision: str) -> None:
    """Run an Alembic upgrade/downgrade on a plain engine (SQLite foreign keys off, as Alembic needs)."""
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(dbmod.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> dbmod.Database:
    return request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")


def test_migration_rekeys_legacy_hashes_with_the_key_outside(any_db, write_spec) -> None:
    """0002 (secret in the database) -> 0003: rows with a raw PID are re-keyed and keep resuming;
    a withdrawal whose raw PID is gone cannot be re-keyed (documented in the migration)."""
    url = any_db.url
    db = any_db
    launch(db, write_spec(id="legacy"))
    rt = Runtime(db)
    gone, active = rt.start("legacy", prolific_pid=GONE), rt.start("legacy", prolific_pid=HERE, session_id="SH")
    rt.withdraw(gone.token)
    dbmod.forget(url)
    _alembic(url, "downgrade", "0001")  # the schema before per-study secrets ...
    engine = create_engine(url)
    with engine.begin() as conn:       # ... with the unsalted hashes it stored
        sid = conn.execute(text("SELECT id FROM studies WHERE slug = 'legacy'")).scalar_one()
        for p, pid in ((gone, GONE), (active, HERE)):
            conn.execute(update(Participant.__table__).where(Participant.id == p.participant_id)
                         .values(pid_hash=_sha(f"{sid}:{pid}")))
    engine.dispose()
    _alembic(url, "upgrade", "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        secret = conn.execute(text("SELECT secret FROM studies")).scalar_one()
    engine.dispose()
    db = dbmod.connect(url)  # upgrades to head
    try:
        with db.session() as s:
            hashes = dict(s.execute(select(Participant.id, Participant.pid_hash)).all())
        assert hashes[active.participant_id] == pid_hash("legacy", HERE)
        assert hashes[gone.participant_id] is None
        dump = _all_text(db)
        assert secret not in dump and _sha(f"{sid}:{GONE}") not in dump
        rt = Runtime(db)
        assert rt.current_step(active.token).kind == "consent"  # tokens moved to their own table
        assert rt.start("legacy", prolific_pid=HERE, session_id="SH").participant_id == active.participant_id
    finally:
        dbmod.forget(url)

"""Prolific PIDs: keyed (HMAC) hashes with a per-study secret, no offline matching, no re-entry."""

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
from study.models import Participant, Study
from study.runtime import Runtime, pid_hash
from study.versions import launch

PID = "5f3c9A0b1C2d3E4f"


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _all_text(db: dbmod.Database, skip: tuple[tuple[str, str], ...] = ()) -> str:
    """Every cell of every table, as one string (to search for leaked identifiers)."""
    parts = []
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            cols = [c["name"] for c in inspect(conn).get_columns(table) if (table, c["name"]) not in skip]
            quoted = ", ".join(f'"{c}"' for c in cols)
            for row in conn.execute(text(f"SELECT {quoted} FROM {table}")):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_withdrawn_pid_is_keyed_per_study_and_cannot_reenter(sqlite_db, write_spec, tmp_path) -> None:
    launch(sqlite_db, write_spec(id="one"))
    launch(sqlite_db, write_spec(id="two"))
    rt = Runtime(sqlite_db)
    a, b = rt.start("one", prolific_pid=PID), rt.start("two", prolific_pid=PID)
    rt.consent(a.token, True)
    rt.submit(a.token, 0, {"ok": True})
    rt.withdraw(a.token)
    with sqlite_db.session() as s:
        studies = {st.slug: st for st in s.scalars(select(Study))}
        pa, pb = s.get(Participant, a.participant_id), s.get(Participant, b.participant_id)
    one, two = studies["one"], studies["two"]
    assert len(one.secret) == 64 and one.secret != two.secret
    assert pa.status == "withdrawn" and pa.prolific_pid is None
    assert pa.pid_hash == pid_hash(one.secret, one.id, PID)
    assert pb.pid_hash == pid_hash(two.secret, two.id, PID) != pa.pid_hash
    # without the secret, a known PID matches nothing: no plain PID, no unsalted digest anywhere
    dump = _all_text(sqlite_db, skip=(("studies", "secret"),))
    assert PID in dump  # the study-two participant is still active: Prolific needs its PID
    for guess in (_sha(PID), _sha(f"{one.id}:{PID}"), _sha(f"{two.id}:{PID}"), _sha(f"one:{PID}"),
                  hashlib.md5(PID.encode()).hexdigest()):
        assert guess not in dump
    # the guarantee stays: the same PID cannot re-enter study one, and still resumes study two
    with pytest.raises(AlreadyParticipated):
        rt.start("one", prolific_pid=PID)
    assert rt.start("two", prolific_pid=PID).participant_id == b.participant_id
    # exports never carry the secret
    files = export_study(sqlite_db, "one", tmp_path / "export")
    blob = b"".join(Path(p).read_bytes() for p in files.values() if Path(p).is_file())
    assert one.secret.encode() not in blob and pa.pid_hash.encode() not in blob


def _alembic(url: str, action: str, revision: str) -> None:
    """Run an Alembic upgrade/downgrade on a plain engine (SQLite foreign keys off, as Alembic needs)."""
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(dbmod.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
    engine.dispose()


def test_migration_rekeys_legacy_unsalted_hashes(tmp_path, write_spec) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.sqlite'}"
    db = dbmod.connect(url)
    launch(db, write_spec(id="legacy"))
    rt = Runtime(db)
    gone, active = rt.start("legacy", prolific_pid="GONE1"), rt.start("legacy", prolific_pid="HERE1")
    rt.withdraw(gone.token)
    dbmod.forget(url)
    _alembic(url, "downgrade", "0001")  # the schema before per-study secrets ...
    engine = create_engine(url)
    with engine.begin() as conn:       # ... with the unsalted hashes it stored
        sid = conn.execute(text("SELECT id FROM studies WHERE slug = 'legacy'")).scalar_one()
        for p, pid in ((gone, "GONE1"), (active, "HERE1")):
            conn.execute(update(Participant.__table__).where(Participant.id == p.participant_id)
                         .values(pid_hash=_sha(f"{sid}:{pid}")))
    engine.dispose()
    db = dbmod.connect(url)  # upgrades to head
    try:
        with db.session() as s:
            secret = s.scalar(select(Study.secret).where(Study.id == sid))
            hashes = dict(s.execute(select(Participant.id, Participant.pid_hash)).all())
        assert secret and hashes[gone.participant_id] == pid_hash(secret, sid, "GONE1")
        assert _sha(f"{sid}:GONE1") not in _all_text(db, skip=(("studies", "secret"),))
        rt = Runtime(db)
        with pytest.raises(AlreadyParticipated):
            rt.start("legacy", prolific_pid="GONE1")
        assert rt.start("legacy", prolific_pid="HERE1").participant_id == active.participant_id
    finally:
        dbmod.forget(url)

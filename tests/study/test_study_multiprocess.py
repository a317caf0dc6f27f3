"""Proof: several app processes on one database assign and record correctly.

Four real OS processes (`python -m study bots`, each running bots on its own threads) share one
PostgreSQL database, or one SQLite file in WAL mode. Checked from the database afterwards: every
answer stored exactly once, one participant row per person, between-subject conditions balanced
within one; and when the same Prolific people arrive through several processes at once, each
still gets exactly one participant row and one condition.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from study.bots import bot_pid
from study.db import Database
from study.models import Participant, Response, Step
from study.versions import launch

ROOT = Path(__file__).resolve().parents[2]
N_PROCS, N_BOTS, N_TRIALS, N_RACE = 4, 6, 6, 4


def _spawn(db: Database, slug: str, seed: int, n: int, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "study", "--db", db.url, "bots", slug, "-n", str(n), "--workers", "3",
           "--seed", str(seed), "--double-submit", "0.2", "--reload", "0.1", "--quiet", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout))
    return out


def _check(db: Database, write_spec) -> None:
    spec = write_spec(id="multi", trials=N_TRIALS, attention_checks={"count": 1})
    version = launch(db, spec)
    race = launch(db, write_spec(id="race", trials=4))
    # every process its own people, plus the same people entering "race" through all processes at once
    procs = [_spawn(db, "multi", 500 + k, N_BOTS) for k in range(N_PROCS)]
    procs += [_spawn(db, "race", 900, N_RACE, "--pid-prefix", "RACE") for _ in range(N_PROCS)]
    results = _results(procs)
    mine, raced = results[:N_PROCS], results[N_PROCS:]

    with db.session() as s:
        parts = s.scalars(select(Participant).where(Participant.study_version_id == version.id)).all()
        stored = s.scalar(select(func.count()).select_from(Response).where(Response.study_version_id == version.id))
        dup = s.execute(select(Response.participant_id, Response.step_index, func.count())
                        .group_by(Response.participant_id, Response.step_index).having(func.count() > 1)).all()
        per_step = dict(s.execute(select(Response.participant_id, func.count()).where(
            Response.study_version_id == version.id).group_by(Response.participant_id)).all())
        n_steps = dict(s.execute(select(Step.participant_id, func.count()).join(
            Participant, Participant.id == Step.participant_id).where(
            Participant.study_version_id == version.id).group_by(Step.participant_id)).all())
        race_parts = s.scalars(select(Participant).where(Participant.study_version_id == race.id)).all()
        race_dup_hash = s.execute(select(Participant.pid_hash, func.count()).where(
            Participant.study_id == race.study_id).group_by(Participant.pid_hash).having(func.count() > 1)).all()

    # every bot completed, every answer stored exactly once, nothing lost
    assert all(r["statuses"] == {"completed": N_BOTS} for r in mine), mine
    assert sum(r["duplicates"] for r in mine) > 0  # double submits really happened
    assert dup == []
    assert len(parts) == N_PROCS * N_BOTS == len({p.pid_hash for p in parts})
    assert {p.id for p in parts} == {pid for r in mine for pid in r["participants"]}
    assert stored == sum(r["submitted"] for r in mine) == sum(p.n_steps for p in parts)
    assert all(p.status == "completed" and p.current_step == p.n_steps == per_step[p.id] == n_steps[p.id]
               for p in parts)
    assert all(p.condition == r["conditions"][p.id] for r in mine for p in parts if p.id in r["conditions"])
    counts = Counter(p.condition for p in parts)
    assert set(counts) == {"convis", "gradcam", "none"}
    assert max(counts.values()) - min(counts.values()) <= 1, counts

    # the same N_RACE people through N_PROCS processes at once: one row and one condition each
    assert len(race_parts) == N_RACE and race_dup_hash == []
    assert {p.prolific_pid for p in race_parts} == {bot_pid("RACE", i) for i in range(N_RACE)}
    for r in raced:
        assert all(r["conditions"][p.id] == p.condition for p in race_parts if p.id in r["conditions"])
    with db.session() as s:
        answered = dict(s.execute(select(Response.participant_id, func.count()).where(
            Response.study_version_id == race.id).group_by(Response.participant_id)).all())
    assert all(answered.get(p.id, 0) == p.current_step for p in race_parts)
    race_counts = Counter(p.condition for p in race_parts)
    assert max(race_counts.values()) - min(race_counts.values()) <= 1, race_counts


@pytest.mark.postgres
def test_processes_share_postgres(pg_db, write_spec) -> None:
    _check(pg_db, write_spec)


def test_processes_share_sqlite_wal(sqlite_db, write_spec) -> None:
    with sqlite_db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    _check(sqlite_db, write_spec)

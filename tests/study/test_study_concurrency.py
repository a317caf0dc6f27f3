"""Proof: 50 concurrent bots x 40 trials store every answer exactly once, with balanced assignment."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from study.bots import BotOutcome, BotProfile, run_bots
from study.db import Database
from study.models import Participant, Response
from study.versions import launch

N_BOTS, N_TRIALS = 50, 40


def _run_and_check(db: Database, write_spec) -> None:
    version = launch(db, write_spec(id="conc", trials=N_TRIALS))
    profile = BotProfile(accuracy={"convis": 0.8, "gradcam": 0.6, "none": 0.5}, double_submit=0.15, reload=0.05)
    outcomes = run_bots(db, "conc", N_BOTS, profile, workers=10, seed=11)
    assert all(isinstance(o, BotOutcome) and o.status == "completed" for o in outcomes), outcomes
    assert sum(o.duplicates for o in outcomes) > 0  # double submits really happened
    with db.session() as s:
        per_p = dict(s.execute(select(Response.participant_id, func.count()).where(
            Response.study_version_id == version.id, Response.kind == "trial").group_by(Response.participant_id)).all())
        dup = s.execute(select(Response.participant_id, Response.step_index, func.count()).group_by(
            Response.participant_id, Response.step_index).having(func.count() > 1)).all()
        parts = s.scalars(select(Participant).where(Participant.study_version_id == version.id)).all()
        steps_total = s.scalar(select(func.count()).select_from(Response))
    assert dup == []
    assert len(per_p) == N_BOTS and set(per_p.values()) == {N_TRIALS}
    assert steps_total == sum(o.submitted for o in outcomes) == sum(p.n_steps for p in parts)
    assert all(p.current_step == p.n_steps and p.status == "completed" for p in parts)
    counts = Counter(p.condition for p in parts)
    assert set(counts) == {"convis", "gradcam", "none"}
    assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_fifty_bots_sqlite(sqlite_db, write_spec) -> None:
    _run_and_check(sqlite_db, write_spec)


@pytest.mark.postgres
def test_fifty_bots_postgres(pg_db, write_spec) -> None:
    _run_and_check(pg_db, write_spec)

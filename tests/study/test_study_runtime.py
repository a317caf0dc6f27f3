"""Runtime API: flow, idempotency, bad input, withdrawal, reclaiming, within-subject balance."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from study.bots import BotProfile, VirtualClock, _answer_keys, run_bots
from study.design import conditions, williams
from study.errors import (
    AlreadyParticipated,
    InvalidAnswer,
    InvalidInput,
    NotFound,
    SessionClosed,
    SessionMismatch,
)
from study.models import Event, Participant, Response, Step
from study.runtime import Runtime
from study.versions import launch

PID = "5f1abc0123456789abcdef01"


def _count(db, model, **where):
    with db.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def test_flow_idempotent_and_bad_input(sqlite_db, write_spec) -> None:
    launch(sqlite_db, write_spec(practice={"trials": 1}, attention_checks={"count": 1}))
    rt = Runtime(sqlite_db)
    for bad in ("1; DROP TABLE participants;--", "x" * 65, "' OR 1=1 --", "abc def", "5f1abc", "5f1a" * 6 + "\n"):
        with pytest.raises(InvalidInput):
            rt.start("demo", prolific_pid=bad)
    with pytest.raises(NotFound):
        rt.start("no-such-study")
    assert _count(sqlite_db, Participant) == 0
    info = rt.start("demo", prolific_pid=PID, study_id="S1", session_id="SE1")
    assert rt.current_step(info.token).kind == "consent"
    with pytest.raises(InvalidAnswer, match="consent first"):
        rt.submit(info.token, 0, {"ok": True})
    rt.consent(info.token, True)
    keys = _answer_keys(sqlite_db, info.participant_id)
    assert rt.current_step(info.token).kind == "instructions"
    assert rt.submit(info.token, 0, {"ok": True}).stored
    assert not rt.submit(info.token, 0, {"ok": True}).stored      # double click
    view = rt.current_step(info.token)
    assert view.kind == "practice" and "truth" not in str(view.content.keys())
    for bad in ({"choice": "not.a.candidate"}, {"choice": "x" * 10_000}, {"choice": 1},
                {"choice": view.content["candidates"][0], "evil": 1}, ["list"], {"choice": "a" * 9000}):
        with pytest.raises(InvalidAnswer):
            rt.submit(info.token, view.index, bad)
    with pytest.raises(InvalidAnswer, match="not the current step"):
        rt.submit(info.token, view.index + 1, {"choice": view.content["candidates"][0]})
    for idx in (-1, 10_000, "1", True):
        with pytest.raises(InvalidAnswer):
            rt.submit(info.token, idx, {"ok": True})
    for tok in ("", "short", "a" * 500, "'; DROP TABLE x;--aaaaaaaaaaaaaaaaaaaaa"):
        with pytest.raises((InvalidInput, NotFound)):
            rt.submit(tok, 0, {"ok": True})
    res = rt.submit(info.token, view.index, {"choice": keys[view.index]["truth"]})
    assert res.correct and res.feedback == {"correct_answer": keys[view.index]["truth"]}
    with pytest.raises(InvalidAnswer, match="already answered"):
        rt.submit(info.token, view.index, {"choice": next(c for c in view.content["candidates"] if c != keys[view.index]["truth"])})
    with pytest.raises(InvalidAnswer, match="still unanswered"):
        rt.finish(info.token)
    # same PID again while active: only with the same SESSION_ID, which resumes with a new token
    for sess in (None, "SE2"):
        with pytest.raises(SessionMismatch):
            rt.start("demo", prolific_pid=PID, session_id=sess)
    again = rt.start("demo", prolific_pid=PID.upper(), session_id="SE1")
    assert again.resumed and again.participant_id == info.participant_id and again.current_step == view.index + 1
    assert rt.current_step(info.token).index == view.index + 1  # the first token stays valid
    tok = again.token
    while (step := rt.current_step(tok)) is not None:
        ans = ({"choice": keys[step.index]["truth"]} if step.kind in ("trial", "attention") else {"ok": True})
        rt.submit(tok, step.index, ans)
    fin = rt.finish(tok)
    assert fin.completion_code == "DONE1" and fin.redirect_url.endswith("cc=DONE1") and fin.status == "completed"
    assert rt.finish(tok).completion_code == "DONE1"
    n = _count(sqlite_db, Response, participant_id=info.participant_id)
    with pytest.raises(SessionClosed):
        rt.submit(tok, n, {"ok": True})
    with pytest.raises(AlreadyParticipated):
        rt.start("demo", prolific_pid=PID, session_id="SE1")
    assert _count(sqlite_db, Response, participant_id=info.participant_id) == n == again.n_steps


def test_withdraw_deletes_and_logs(sqlite_db, write_spec) -> None:
    launch(sqlite_db, write_spec())
    rt = Runtime(sqlite_db)
    info = rt.start("demo", prolific_pid="ab" * 12)
    rt.consent(info.token, True)
    rt.submit(info.token, 0, {"ok": True})
    rt.withdraw(info.token)
    assert _count(sqlite_db, Response, participant_id=info.participant_id) == 0
    assert _count(sqlite_db, Step, participant_id=info.participant_id) == 0
    assert _count(sqlite_db, Event, kind="withdrawn") == 1
    with pytest.raises(SessionClosed):
        rt.submit(info.token, 1, {"ok": True})
    with pytest.raises(AlreadyParticipated):
        rt.start("demo", prolific_pid="ab" * 12)
    with sqlite_db.session() as s:
        assert s.get(Participant, info.participant_id).prolific_pid is None


def test_abandoned_sessions_are_reclaimed(sqlite_db, write_spec) -> None:
    launch(sqlite_db, write_spec(design={"type": "between", "control": False}, time_limits={"session_minutes": 10},
                                 recruitment={"platform": "anonymous", "completion_code": "DONE1"}))
    clock = VirtualClock()
    rt = Runtime(sqlite_db, clock=clock)
    first = rt.start("demo")
    second = rt.start("demo")
    assert {first.condition, second.condition} == {"convis", "gradcam"}
    rt.consent(second.token, True)
    clock.advance(timedelta(minutes=11).total_seconds() * 1000)
    third = rt.start("demo")                   # both idle sessions are reclaimed first
    assert _count(sqlite_db, Participant, status="abandoned") == 2
    with pytest.raises(SessionClosed):
        rt.current_step(first.token)
    fourth = rt.start("demo")
    assert {third.condition, fourth.condition} == {"convis", "gradcam"}


def test_within_subject_latin_square_balance(sqlite_db, write_spec) -> None:
    spec_path = write_spec(protocol={"name": "distinction"}, design={"type": "within"},
                           methods=["convis", "gradcam", "grid"], trials=6)
    launch(sqlite_db, spec_path)
    conds = ["L0", "L1", "L2", "L3", "L4", "L5"]
    assert williams(3)[0] == [0, 1, 2] and len(williams(3)) == 6
    outcomes = run_bots(sqlite_db, "demo", 12, BotProfile(), workers=4, seed=5)
    assert all(o.status == "completed" for o in outcomes)
    with sqlite_db.session() as s:
        parts = s.scalars(select(Participant)).all()
        trials = s.execute(select(Step.participant_id, Step.payload).where(Step.kind == "trial")).all()
    assert Counter(p.condition for p in parts) == {c: 2 for c in conds}
    per_person: dict[str, list] = {}
    for pid, payload in trials:
        per_person.setdefault(pid, []).append((payload["item"], payload["arm"], payload["content"]["position"]))
    cell = Counter()
    for rows in per_person.values():
        items = [r[0] for r in rows]
        assert len(set(items)) == len(items)          # no image twice
        assert Counter(r[1] for r in rows) == {"convis": 2, "gradcam": 2, "grid": 2}
        cell.update((r[0], r[1]) for r in rows)
    assert set(cell.values()) == {4}                  # each image x method equally often
    from study.spec import load_spec

    assert conditions(load_spec(spec_path)) == conds

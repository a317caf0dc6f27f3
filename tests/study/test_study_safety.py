"""Participant safety (issue 15): one test per finding, on SQLite and PostgreSQL, through the
public `Runtime` API (the database is read directly only to check what was stored)."""

from __future__ import annotations

import dataclasses
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.orm import sessionmaker

from study import db as dbmod
from study import keys, protocols
from study.assets import step_assets
from study.bots import BotProfile, VirtualClock, _answer_keys, bot_pid, run_bots
from study.errors import (
    AlreadyParticipated,
    DatabaseUnavailable,
    InvalidAnswer,
    InvalidInput,
    NotFound,
    SessionClosed,
    SessionExpired,
    SessionMismatch,
    StimulusError,
    StudyError,
    StudyFull,
    StudyUnavailable,
    TooManyStarts,
)
from study.export import export_study, forget_prolific_ids
from study.models import Event, Participant, Response, Study
from study.protocols.base import Trial
from study.runtime import FinishResult, Runtime, StepView
from study.versions import launch, list_studies, set_status

VICTIM, OTHER = "5f0c0ffee0000000000000aa", "5f0c0ffee0000000000000bb"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> dbmod.Database:
    """The same test on an SQLite file and on PostgreSQL."""
    return request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")


def _pid(i: int) -> str:
    return f"ab{i:022x}"


def _minutes(clock: VirtualClock, m: float) -> None:
    clock.advance(m * 60_000)


def _answer(view: StepView, key: dict[str, Any]) -> dict[str, Any]:
    if view.kind == "instructions":
        return {"ok": True}
    if view.kind == "questionnaire":
        return {"answers": {q["id"]: "fine" if q["type"] == "text" else 1 for q in view.content["items"]}}
    return {"choice": key["truth"]}


def _walk(rt: Runtime, db: dbmod.Database, info: Any, stop: Callable[[StepView], bool] = lambda v: False,
          on_step: Callable[[StepView], None] | None = None) -> StepView | None:
    """Consent and answer correctly until `stop(view)` (returned) or the end (None)."""
    rt.consent(info.token, True)
    keys_ = _answer_keys(db, info.participant_id)
    while (view := rt.current_step(info.token)) is not None and not stop(view):
        if on_step:
            on_step(view)
        rt.submit(info.token, view.index, _answer(view, keys_[view.index]))
    return view


def _row(db: dbmod.Database, participant_id: str) -> Participant:
    with db.session() as s:
        return s.get(Participant, participant_id)


def _events(db: dbmod.Database, participant_id: str) -> list[tuple[str, dict[str, Any]]]:
    with db.session() as s:
        return [(e.kind, e.detail) for e in s.scalars(select(Event).where(Event.participant_id == participant_id))]


# ---------------------------------------------------------------- 1. session takeover by Prolific ID
def test_known_pid_without_its_session_id_cannot_take_over(db, write_spec) -> None:
    launch(db, write_spec())
    rt = Runtime(db)
    victim = rt.start("demo", prolific_pid=VICTIM, study_id="STUDY1", session_id="SESSIONA")
    rt.consent(victim.token, True)
    rt.submit(victim.token, 0, {"ok": True})
    for sess in ("SESSIONB", None):   # a stranger who knows (or guesses) the PID
        with pytest.raises(SessionMismatch):
            rt.start("demo", prolific_pid=VICTIM, study_id="STUDY1", session_id=sess)
    assert rt.current_step(victim.token).index == 1            # the victim's token still works
    again = rt.start("demo", prolific_pid=VICTIM, study_id="STUDY1", session_id="SESSIONA")  # reopened on Prolific
    assert again.resumed and again.participant_id == victim.participant_id and again.current_step == 1
    assert rt.current_step(victim.token).index == rt.current_step(again.token).index == 1  # both tokens valid
    assert _row(db, victim.participant_id).status == "active"


# ---------------------------------------------------------------- 2. personal data
def test_raw_pids_cleared_where_not_needed_and_kept_out_of_research_files(db, write_spec, tmp_path) -> None:
    launch(db, write_spec(time_limits={"session_minutes": 10}))
    clock = VirtualClock()
    rt = Runtime(db, clock=clock)
    declined = rt.start("demo", prolific_pid=_pid(1), session_id="S1")
    rt.consent(declined.token, False)
    abandoned = rt.start("demo", prolific_pid=_pid(2), session_id="S2")
    rt.consent(abandoned.token, True)
    withdrawn = rt.start("demo", prolific_pid=_pid(3), session_id="S3")
    rt.consent(withdrawn.token, True)
    rt.withdraw(withdrawn.token)
    _minutes(clock, 11)
    with pytest.raises(SessionClosed):
        rt.current_step(abandoned.token)
    done = rt.start("demo", prolific_pid=_pid(4), session_id="S4")
    _walk(rt, db, done)
    rt.finish(done.token)
    rows = {i: _row(db, p.participant_id) for i, p in enumerate((declined, abandoned, withdrawn, done), 1)}
    assert [rows[i].prolific_pid for i in (1, 2, 3)] == [None, None, None]
    assert all(r.prolific_session_id is None for r in rows.values())
    assert rows[4].prolific_pid == _pid(4)                   # needed for approval and bonus
    with pytest.raises(AlreadyParticipated):                 # the keyed hash still blocks re-entry
        rt.start("demo", prolific_pid=_pid(1), session_id="S1")

    files = export_study(db, "demo", tmp_path / "out")
    part = pd.read_csv(files["participants"])
    assert not {"prolific_pid", "prolific_session_id"} & set(part.columns)
    research = "".join(Path(files[n]).read_text() for n in ("responses", "participants", "events"))
    assert not any(_pid(i) in research for i in range(1, 5))
    assert pd.read_csv(files["approvals"], dtype=str).prolific_pid.tolist() == [_pid(4)]

    # the HMAC key is not in the database, so a dump alone cannot test a guessed PID
    with db.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("studies")}
    assert "secret" not in columns
    with db.session() as s:
        hashes = set(s.scalars(select(Participant.pid_hash)))
    assert keys.pid_hash("demo", _pid(1)) in hashes
    assert forget_prolific_ids(db, "demo") == 1 and _row(db, done.participant_id).prolific_pid is None


def test_key_file_outside_the_database_is_private(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CONVIS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(keys.ENV, raising=False)
    first = keys.pid_hash("demo", VICTIM)
    path = keys.key_file()
    assert path.is_relative_to(tmp_path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.pid_hash("demo", VICTIM) == first != keys.pid_hash("other", VICTIM)
    monkeypatch.setenv(keys.ENV, "ab" * 32)   # configuration wins over the file
    assert keys.pid_hash("demo", VICTIM) != first
    monkeypatch.setenv(keys.ENV, "not hex")
    with pytest.raises(StudyError):
        keys.pid_hash("demo", VICTIM)


# ---------------------------------------------------------------- 3. slots used up by strangers
def test_strangers_cannot_use_up_slots(db, write_spec) -> None:
    launch(db, write_spec(recruitment={"completion_code": "DONE1", "target_per_condition": 1,
                                       "stop_when_full": True}))
    rt = Runtime(db)
    for i in range(6):                          # six sessions that never consent ...
        rt.start("demo", prolific_pid=_pid(100 + i))
    real = rt.start("demo", prolific_pid=_pid(200))   # ... hold no slot
    rt.consent(real.token, True)
    with pytest.raises(InvalidInput):           # Prolific study: no anonymous sessions by default
        rt.start("demo")
    for bad in ("ABC", "x" * 24, "5f0c0ffee00000000000000", "5f0c0ffee0000000000000aa0"):
        with pytest.raises(InvalidInput):       # not a Prolific id (24 hex digits)
            rt.start("demo", prolific_pid=bad)
    filled = 1                                  # consented sessions do fill the target: one per condition
    with pytest.raises(StudyFull):
        for i in range(5):
            rt.consent(rt.start("demo", prolific_pid=_pid(500 + i)).token, True)
            filled += 1
    assert filled == 3


def test_new_sessions_per_client_are_limited(db, write_spec) -> None:
    launch(db, write_spec(recruitment={"completion_code": "DONE1", "max_starts_per_client": 5}))
    clock = VirtualClock()
    rt = Runtime(db, clock=clock)
    for i in range(5):
        rt.start("demo", prolific_pid=_pid(300 + i), client="203.0.113.9")
    with pytest.raises(TooManyStarts):
        rt.start("demo", prolific_pid=_pid(399), client="203.0.113.9")
    rt.start("demo", prolific_pid=_pid(400), client="198.51.100.1")   # another client
    _minutes(clock, 11)
    rt.start("demo", prolific_pid=_pid(399), client="203.0.113.9")    # the window has passed
    with db.session() as s:
        stored = [r[0] for r in s.execute(text("SELECT client_hash FROM start_attempts"))]
    assert len(stored) == 1 and "203.0.113.9" not in stored[0]   # older rows pruned; only a keyed hash
    assert rt.start("demo", prolific_pid=_pid(401)).status == "started"   # no client key: no limit


def test_anonymous_sessions_only_when_the_spec_allows(db, write_spec) -> None:
    launch(db, write_spec(id="anon", recruitment={"completion_code": "DONE1", "allow_anonymous": True}))
    launch(db, write_spec(id="lab", recruitment={"platform": "anonymous", "completion_code": "DONE1"}))
    rt = Runtime(db)
    for slug in ("anon", "lab"):
        info = rt.start(slug)
        _walk(rt, db, info)
        fin = rt.finish(info.token)
        assert fin.completion_code == "DONE1" and fin.redirect_url is None


# ---------------------------------------------------------------- 4. time limit
def test_expiry_is_committed_and_start_does_not_refresh(db, write_spec) -> None:
    launch(db, write_spec(time_limits={"session_minutes": 10}))
    clock = VirtualClock()
    rt = Runtime(db, clock=clock)
    other = rt.start("demo", prolific_pid=OTHER, session_id="SB")
    rt.consent(other.token, True)
    for _ in range(2):                     # reopening the link does not count as activity
        _minutes(clock, 4)
        rt.start("demo", prolific_pid=OTHER, session_id="SB")
    _minutes(clock, 3)
    with pytest.raises(SessionClosed) as err:
        rt.submit(other.token, 0, {"ok": True})
    assert isinstance(err.value, SessionExpired) and err.value.status == "abandoned"
    row = _row(db, other.participant_id)  # the expiry was committed although the call raised
    assert row.status == "abandoned" and row.prolific_pid is None
    assert [k for k, _ in _events(db, other.participant_id)] == ["abandoned"]


def test_hard_time_limit_from_the_start(db, write_spec) -> None:
    launch(db, write_spec(time_limits={"session_minutes": 10, "total_minutes": 30}, trials=10))
    clock = VirtualClock()
    rt = Runtime(db, clock=clock)
    info = rt.start("demo", prolific_pid=VICTIM, session_id="SA")
    rt.consent(info.token, True)
    keys_ = _answer_keys(db, info.participant_id)
    for _ in range(3):                     # answering every 9 minutes keeps the idle limit away ...
        _minutes(clock, 9)
        view = rt.current_step(info.token)
        rt.submit(info.token, view.index, _answer(view, keys_[view.index]))
    _minutes(clock, 4)                     # ... but 31 minutes after the start the session is over
    with pytest.raises(SessionExpired) as err:
        rt.current_step(info.token)
    assert err.value.status == "abandoned"
    row = _row(db, info.participant_id)   # the expiry was committed although the call raised
    assert row.status == "abandoned" and row.prolific_pid is None
    assert [k for k, _ in _events(db, info.participant_id)] == ["abandoned"]
    with pytest.raises(AlreadyParticipated):
        rt.start("demo", prolific_pid=VICTIM, session_id="SA")


# ---------------------------------------------------------------- also: parsing, booleans, text
def test_malformed_answers_and_ids_are_refused(db, write_spec) -> None:
    launch(db, write_spec(questionnaire=[{"id": "comment", "text": "Anything else?", "type": "text"}]))
    rt = Runtime(db)
    for pid, sess in ((VICTIM + "\n", None), (VICTIM, "S1\n"), (VICTIM + "\x00", None)):
        with pytest.raises(InvalidInput):
            rt.start("demo", prolific_pid=pid, session_id=sess)
    info = rt.start("demo", prolific_pid=VICTIM, session_id="S1")
    with pytest.raises(InvalidInput):
        rt.current_step(info.token + "\n")
    for fake in ("false", "true", 1, None):
        with pytest.raises(InvalidInput):
            rt.consent(info.token, fake)
    assert rt.resume(info.token).status == "started"
    rt.consent(info.token, True)
    deep: dict[str, Any] = {"ok": True}   # 995 levels: about 6 KB of JSON
    for _ in range(995):
        deep = {"a": deep}
    for bad in (deep, {"ok": "false"}, {"ok": "true"}, {"ok": False}, {"ok": 1}, {"ok": float("nan")}):
        with pytest.raises(InvalidAnswer):
            rt.submit(info.token, 0, bad)
    view = _walk(rt, db, info, stop=lambda v: v.kind == "questionnaire")
    for text_ in ("nul\x00byte", "bell\x07", "lone \ud800 surrogate"):
        with pytest.raises(InvalidAnswer):
            rt.submit(info.token, view.index, {"answers": {"comment": text_}})
    with pytest.raises(InvalidAnswer):
        rt.submit(info.token, view.index, {"answers": {"comment": True}})
    rt.submit(info.token, view.index, {"answers": {"comment": "two\nlines\tand a tab"}})
    with db.session() as s:
        assert s.scalar(select(Response.answer).where(Response.step_index == view.index)) == {
            "answers": {"comment": "two\nlines\tand a tab"}}
        if not db.is_sqlite:   # every stored answer is valid jsonb
            assert s.scalar(text("SELECT count(*) FROM responses WHERE (answer::jsonb) IS NOT NULL")) == view.index + 1


# ---------------------------------------------------------------- also: withdrawal redaction
def test_withdrawal_leaves_only_a_tombstone(db, write_spec, tmp_path) -> None:
    launch(db, write_spec(attention_checks={"count": 1}, quiz={"questions": [
        {"question": "Q?", "options": ["a", "b"], "answer": "a"}]}))
    rt = Runtime(db)
    info = rt.start("demo", prolific_pid=VICTIM, session_id="S1")
    keys_ = _answer_keys(db, info.participant_id)
    rt.consent(info.token, True)
    while (view := rt.current_step(info.token)) is not None:
        ans = _answer(view, keys_[view.index])
        if view.kind in ("attention", "quiz"):   # fail them: flags, exclusion and a quiz score
            ans = {"choice": next(o for o in view.content["options"] if o != keys_[view.index]["truth"])}
        rt.submit(info.token, view.index, ans)
    rt.finish(info.token)
    assert [k for k, _ in _events(db, info.participant_id)] == ["flagged"]
    rt.withdraw(info.token)
    row = _row(db, info.participant_id)
    assert (row.status, row.seed, row.condition, row.current_step, row.n_steps, row.flags) == ("withdrawn", 0, "", 0, 0, {})
    assert row.consented_at is None and row.finished_at is None and row.completion_code is None
    assert row.started_at == row.last_activity_at and row.started_at.time().isoformat() == "00:00:00"
    assert row.prolific_pid is None and row.prolific_study_id is None and row.prolific_session_id is None
    assert _events(db, info.participant_id) == [("withdrawn", {})]
    with pytest.raises(AlreadyParticipated):
        rt.start("demo", prolific_pid=VICTIM, session_id="S1")
    part = pd.read_csv(export_study(db, "demo", tmp_path / "out")["participants"])
    assert part.status.tolist() == ["withdrawn"] and part.condition.isna().all()


def test_researcher_withdraws_by_prolific_id(db, write_spec, tmp_path) -> None:
    """A participant who asks by message: the researcher withdraws them by their Prolific id (CLI)."""
    from study.cli import main

    launch(db, write_spec())
    rt = Runtime(db)
    info = rt.start("demo", prolific_pid=VICTIM, session_id="S1")
    rt.consent(info.token, True)
    rt.submit(info.token, 0, {"ok": True})
    with pytest.raises(NotFound):
        rt.withdraw_by_pid("demo", _pid(999))
    with pytest.raises(InvalidInput):
        rt.withdraw_by_pid("demo", "not-a-prolific-id")
    assert main(["--db", db.url, "withdraw", "demo", "--pid", VICTIM.upper()]) == 0
    assert _row(db, info.participant_id).status == "withdrawn"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Response)) == 0
    assert main(["--db", db.url, "withdraw", "demo", "--pid", _pid(998)]) == 2


# ---------------------------------------------------------------- also: nothing leads to the ground truth
@pytest.mark.parametrize("protocol", ["forward_simulation", "distinction", "rating", "pairwise_preference"])
def test_page_gets_only_the_current_steps_files(sqlite_db, write_spec, stimuli_dir, protocol) -> None:
    control = protocol == "forward_simulation"
    launch(sqlite_db, write_spec(protocol={"name": protocol}, design={"type": "between", "control": control},
                                 practice={"trials": 2, "feedback": True}, trials=4))
    assert "stimuli_dir" not in {f.name for f in dataclasses.fields(StepView)}
    assert "flags" not in {f.name for f in dataclasses.fields(FinishResult)}
    rt = Runtime(sqlite_db)
    info = rt.start("demo", prolific_pid=VICTIM)
    assert info.title == "Demo"
    consent = rt.current_step(info.token)
    assert (consent.index, consent.kind, consent.assets, consent.trial_number) == (-1, "consent", {}, None)
    seen: list[StepView] = []
    results = []
    keys_ = _answer_keys(sqlite_db, info.participant_id)
    rt.consent(info.token, True)
    while (view := rt.current_step(info.token)) is not None:
        seen.append(view)
        ans = (_answer(view, keys_[view.index]) if view.kind == "instructions" else protocols.get(protocol)
               .bot_answer(Trial(view.content, keys_[view.index]), 1.0, np.random.default_rng(0)))
        results.append((view.kind, rt.submit(info.token, view.index, ans)))
    for view in seen:
        blob = json.dumps(view.content)
        refs = {v for k, v in _refs(view.content)}
        assert set(view.assets) == refs and all(r in blob for r in refs)
        assert all(view.assets[r] == (stimuli_dir / r).read_bytes() for r in refs)
        assert "manifest" not in blob and "concept_scores" not in blob
        if view.kind in ("practice", "trial"):
            assert view.content.get("image_file") is None or view.content["image_file"] in view.assets
            assert refs and all(r.startswith(("images/", "maps/")) for r in refs)
    trials = [v for v in seen if v.kind == "trial"]
    assert [v.trial_number for v in trials] == [1, 2, 3, 4] and {v.n_trials for v in seen} == {4}
    assert all(v.trial_number is None for v in seen if v.kind != "trial")
    scored = protocol in ("forward_simulation", "distinction")
    for kind, res in results:
        if kind == "practice" and scored:
            assert res.correct is True and res.feedback is not None
        else:
            assert res.correct is None
    fin = rt.finish(info.token)
    assert not hasattr(fin, "flags")


def _refs(node: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("image_file", "map") and isinstance(v, str):
                out.append((k, v))
            elif k == "maps" and isinstance(v, dict):
                out += [(k, x) for x in v.values()]
            else:
                out += _refs(v)
    elif isinstance(node, list):
        for v in node:
            out += _refs(v)
    return out


def test_assets_cannot_leave_the_listed_files(stimuli_dir) -> None:
    allowed = {"images/a.png": "0" * 64}
    for content in ({"map": "../manifest.json"}, {"image_file": "manifest.json"}, {"maps": {"x": "/etc/passwd"}},
                    {"map": "meta/x.json"}, {"left": {"map": "../../etc/passwd"}}):
        with pytest.raises(StimulusError):
            step_assets(str(stimuli_dir), allowed, content)
    listed = {"manifest.json": "0" * 64, "images/img00.png": "0" * 64}
    with pytest.raises(StimulusError, match="not an image or map"):   # never the manifest, even if listed
        step_assets(str(stimuli_dir), listed, {"image_file": "manifest.json"})
    with pytest.raises(StimulusError, match="changed"):               # a listed file whose bytes differ
        step_assets(str(stimuli_dir), listed, {"image_file": "images/img00.png"})


def test_practice_feedback_off_gives_no_correctness(sqlite_db, write_spec) -> None:
    launch(sqlite_db, write_spec(practice={"trials": 1, "feedback": False}, attention_checks={"count": 1}))
    rt = Runtime(sqlite_db)
    info = rt.start("demo", prolific_pid=VICTIM)
    rt.consent(info.token, True)
    keys_ = _answer_keys(sqlite_db, info.participant_id)
    while (view := rt.current_step(info.token)) is not None:
        res = rt.submit(info.token, view.index, _answer(view, keys_[view.index]))
        again = rt.submit(info.token, view.index, _answer(view, keys_[view.index]))
        assert res.correct is None and res.feedback is None and not again.stored and again.correct is None


# ---------------------------------------------------------------- also: bonus follows exclusion rules
def test_bonus_file_follows_exclusion_rules(db, write_spec, tmp_path) -> None:
    launch(db, write_spec(id="pay", attention_checks={"count": 1}, bonus={"per_correct": 0.05}))
    run_bots(db, "pay", 3, BotProfile(default_accuracy=1.0, attention_pass=0.0), workers=1, seed=1, pid_prefix="BAD")
    run_bots(db, "pay", 3, BotProfile(default_accuracy=1.0, attention_pass=1.0), workers=1, seed=2, pid_prefix="GOOD")
    files = export_study(db, "pay", tmp_path / "out")
    bonus = pd.read_csv(files["bonus"], header=None, names=["pid", "amount"])
    assert sorted(bonus.pid) == sorted(bot_pid("GOOD", i) for i in range(3)) and (bonus.amount == 0.3).all()
    approvals = pd.read_csv(files["approvals"]).set_index("prolific_pid")
    assert (approvals.loc[[bot_pid("BAD", i) for i in range(3)], "decision"] == "review").all()
    part = pd.read_csv(files["participants"])
    assert (part[part.excluded].bonus == 0).all() and len(part[part.excluded]) == 3
    codebook = pd.read_csv(files["codebook"]).set_index("column").meaning
    assert "exclusion rules" in codebook["prolific_bonus.csv"] and "exclusion rules" in codebook["bonus"]


# ---------------------------------------------------------------- study status
def test_paused_and_closed_studies_take_no_new_participants(db, write_spec) -> None:
    path = write_spec()
    launch(db, path)
    rt = Runtime(db)
    inside = rt.start("demo", prolific_pid=VICTIM, session_id="S1")
    rt.consent(inside.token, True)
    for status in ("paused", "closed"):
        set_status(db, "demo", status)
        assert {r["study_status"] for r in list_studies(db)} == {status}
        with pytest.raises(StudyUnavailable) as err:
            rt.start("demo", prolific_pid=OTHER)
        assert err.value.status == status and status in str(err.value)
        assert rt.start("demo", prolific_pid=VICTIM, session_id="S1").resumed   # people inside continue
    _walk(rt, db, inside)
    assert rt.finish(inside.token).status == "completed"
    with pytest.raises(InvalidInput):
        set_status(db, "demo", "open")
    launch(db, path)                                    # launching makes it live again
    with db.session() as s:
        assert s.scalar(select(Study.status)) == "live"
    rt.start("demo", prolific_pid=OTHER)


# ---------------------------------------------------------------- database unreachable
def test_lost_database_gives_a_calm_error(db, write_spec, tmp_path, monkeypatch) -> None:
    launch(db, write_spec())
    info = Runtime(db).start("demo", prolific_pid=VICTIM, session_id="S1")
    dead_url = ("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2" if not db.is_sqlite
                else f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.sqlite'}")
    engine = create_engine(dead_url)
    dead = dbmod.Database(db.url, engine, sessionmaker(engine, expire_on_commit=False))  # same URL: cached contexts
    rt = Runtime(dead)
    calls = [lambda: rt.resume(info.token), lambda: rt.consent(info.token, True), lambda: rt.current_step(info.token),
             lambda: rt.submit(info.token, 0, {"ok": True}), lambda: rt.finish(info.token),
             lambda: rt.withdraw(info.token), lambda: rt.start("demo", prolific_pid=OTHER)]
    for call in calls:
        with pytest.raises(DatabaseUnavailable, match="not reachable"):
            call()
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    lazy = Runtime()                                   # constructing does not connect
    with pytest.raises(DatabaseUnavailable):
        lazy.start("demo", prolific_pid=OTHER)
    assert Runtime(db).resume(info.token).status == "started"   # nothing was lost

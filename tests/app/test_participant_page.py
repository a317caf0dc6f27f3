"""The participant page through Streamlit's AppTest: every step type of every protocol, the
completion code, and each calm error page. Real SQLite database, real example studies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from study import protocols
from study.bots import _answer_keys
from study.labels import describe
from study.models import Participant, Response
from study.runtime import Runtime
from study.versions import set_status
from tests.app.studies import SYNTHETIC_EXAMPLES, launch_example, prolific_pid
from ui.participant.trials import SCREENS

APP = str(Path(__file__).resolve().parents[2] / "app.py")




def visit(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def text_of(at: AppTest) -> str:
    """Everything drawn as text (markdown, headings, captions, alerts, buttons, code)."""
    parts: list[str] = []
    for kind in ("markdown", "subheader", "caption", "success", "info", "warning", "error", "code", "title", "html"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [b.label for b in at.button]
    parts += [r.label for r in at.radio] + [str(o) for r in at.radio for o in r.options]
    return "\n".join(parts)


def token_of(at: AppTest) -> str:
    return at.session_state["pt_token"]


def answer_current(at: AppTest, rt: Runtime, token: str, protocol: str) -> str:
    """Answer what the page shows now, through its widgets; returns the step kind answered."""
    if "pt_feedback" in at.session_state and at.session_state["pt_feedback"] is not None:
        at.button(key="pt_feedback_done").click().run()
        return "feedback"
    info = rt.resume(token)
    if info.status == "started":
        at.button(key="pt_consent_yes").click().run()
        return "consent"
    if info.status != "active":
        return "done"
    view = rt.current_step(token)
    if view is None:
        return "done"
    key = _answer_keys(rt.db, info.participant_id)[view.index]
    c = view.content

    def k(name: str) -> str:
        return f"pt_s{view.index}_{name}"

    def submit() -> None:
        at.button(key=k("submit")).click()

    if view.kind == "instructions":
        at.button(key=k("ok")).click()
    elif view.kind in ("quiz", "attention"):
        at.radio(key=k("choice")).set_value(key["truth"])
        submit()
    elif view.kind == "questionnaire":
        for q in c["items"]:
            if q["type"] == "likert":
                at.radio(key=k(f"q_{q['id']}")).set_value(min(4, q["scale"]))
            elif q["type"] == "choice":
                at.radio(key=k(f"q_{q['id']}")).set_value(q["options"][0])
            else:
                at.text_area(key=k(f"q_{q['id']}")).input("all clear")
        submit()
    elif protocol == "forward_simulation" and c["task"] == "match":
        if c["confidence_scale"]:
            at.radio(key=k("match")).set_value("Yes")
            at.radio(key=k("confidence")).set_value(2)
            submit()
        else:
            at.button(key=k("yes")).click()
    elif protocol == "forward_simulation" and not c["confidence_scale"]:
        at.button(key=k("pick_1")).click()
    elif protocol in ("forward_simulation", "distinction"):
        at.radio(key=k("choice")).set_value(c["candidates"][-1])
        at.radio(key=k("confidence")).set_value(1)
        submit()
    elif protocol == "pairwise_preference":
        at.radio(key=k("side")).set_value("right")
        if c["strength_scale"] > 1:
            at.radio(key=k("strength")).set_value(2)
        submit()
    elif protocol == "rating":
        for item in c["items"]:
            at.radio(key=k(f"r_{item}")).set_value(3)
        submit()
    else:
        raise AssertionError(f"no driver for {protocol}")
    at.run()
    return view.kind


def take_study(at: AppTest, rt: Runtime, protocol: str, max_steps: int = 200) -> Counter:
    token = token_of(at)
    seen: Counter = Counter()
    for _ in range(max_steps):
        assert not at.exception, at.exception
        kind = answer_current(at, rt, token, protocol)
        if kind == "done":
            return seen
        seen[kind] += 1
    raise AssertionError("the study did not end")


def n_responses(db, participant_id: str | None = None) -> int:
    with db.session() as s:
        q = select(func.count()).select_from(Response)
        if participant_id:
            q = q.where(Response.participant_id == participant_id)
        return s.scalar(q)


def test_every_protocol_has_a_trial_screen() -> None:
    assert set(SCREENS) == set(protocols.REGISTRY)


@pytest.mark.parametrize("name", SYNTHETIC_EXAMPLES)
def test_participant_completes_each_example_study(db, tmp_path, name) -> None:
    spec = launch_example(db, name, tmp_path)
    rt = Runtime(db)
    protocol = spec["protocol"]["name"]
    runs = 3 if spec["design"].get("control") else 1   # least-filled assignment: every condition once
    conditions = set()
    for _ in range(runs):
        at = visit(study=spec["id"], PROLIFIC_PID=prolific_pid(), STUDY_ID="S" * 24, SESSION_ID="E" * 24)
        assert not at.exception
        assert at.query_params["r"] == [token_of(at)] or at.query_params["r"] == token_of(at)
        assert "PROLIFIC_PID" not in at.query_params
        seen = take_study(at, rt, protocol)
        info = rt.resume(token_of(at))
        conditions.add(info.condition)
        assert info.status == "completed"
        assert seen["consent"] == 1 and seen["instructions"] == 1 and seen["trial"] == spec["trials"]
        for kind, n in (("practice", spec.get("practice", {}).get("trials", 0)),
                        ("attention", spec.get("attention_checks", {}).get("count", 0)),
                        ("quiz", len(spec.get("quiz", {}).get("questions", []))),
                        ("questionnaire", 1 if spec.get("questionnaire") else 0)):
            assert seen[kind] == n, (kind, seen)
        assert n_responses(db, info.participant_id) == info.n_steps
        page = text_of(at)
        assert spec["recruitment"]["completion_code"] in page
        assert any("app.prolific.com/submissions/complete?cc=" in b.proto.url for b in at.get("link_button"))
        for method in spec["methods"]:
            assert method not in page.lower(), "the page must not name the method shown"
    assert len(conditions) == runs


def test_match_task_with_confidence_and_feedback(db, tmp_path) -> None:
    spec = launch_example(db, "forward_simulation", tmp_path, id="fs-match",
                          protocol={"name": "forward_simulation",
                                    "options": {"task": "match", "n_candidates": 3, "confidence_scale": 4}})
    rt = Runtime(db)
    at = visit(study="fs-match", PROLIFIC_PID=prolific_pid(), SESSION_ID="E" * 24)
    token = token_of(at)
    seen: Counter = Counter()
    while True:
        kind = answer_current(at, rt, token, "forward_simulation")
        if kind == "done":
            break
        seen[kind] += 1
        if kind == "practice":  # the practice answer is followed by its feedback
            page = text_of(at)
            assert "the right answer was" in page and ("**yes**" in page or "**no**" in page)
    assert seen["feedback"] == spec["practice"]["trials"] and seen["trial"] == spec["trials"]
    assert rt.resume(token).status == "completed"


def test_trial_screen_shows_names_definitions_and_progress(db, tmp_path) -> None:
    launch_example(db, "distinction_within", tmp_path)
    rt = Runtime(db)
    at = visit(study="convis-distinction-demo", PROLIFIC_PID=prolific_pid(), SESSION_ID="E" * 24)
    token = token_of(at)
    while rt.current_step(token) is None or rt.current_step(token).kind != "trial":
        answer_current(at, rt, token, "distinction")
    view = rt.current_step(token)
    page = text_of(at)
    assert f"Trial 1 of {view.n_trials}" in page
    for cand in view.content["candidates"]:
        assert cand not in page, "never a bare synset id"
    for cand in view.content["candidates"]:
        label = describe(cand)
        assert label.name in page and label.definition and label.definition in page
    assert len(at.image) == len(view.content["candidates"]) + 1   # the image and one map per concept


def test_error_pages_are_calm(db, tmp_path) -> None:
    launch_example(db, "rating", tmp_path)
    slug = "convis-rating-demo"
    cases = {
        "unknown study": (dict(study="no-such-study", PROLIFIC_PID=prolific_pid()), "This link does not work"),
        "tampered token": (dict(r="x" * 43), "This link does not work"),
        "malformed token": (dict(r="<script>"), "This link does not work"),
        "placeholder pid": (dict(study=slug, PROLIFIC_PID="{{%PROLIFIC_PID%}}"), "This link does not work"),
        "no pid": (dict(study=slug), "This link does not work"),
        "no link": ({}, None),
    }
    for name, (params, expected) in cases.items():
        at = visit(**params)
        assert not at.exception, name
        if expected is None:   # no participant parameters: the researcher pages, not the study
            assert "pt_token" not in at.session_state
            continue
        assert expected in text_of(at), (name, text_of(at))
        assert "Traceback" not in text_of(at)


def test_decline_withdraw_repeat_pause_close(db, tmp_path) -> None:
    launch_example(db, "rating", tmp_path)
    slug, rt = "convis-rating-demo", Runtime(db)
    at = visit(study=slug, PROLIFIC_PID=prolific_pid(), SESSION_ID="E" * 24)
    at.button(key="pt_consent_no").click().run()
    assert "You chose not to take part" in text_of(at)
    assert n_responses(db) == 0

    pid = prolific_pid()
    at = visit(study=slug, PROLIFIC_PID=pid, SESSION_ID="F" * 24)
    token = token_of(at)
    for _ in range(3):
        answer_current(at, rt, token, "rating")
    assert n_responses(db) >= 1
    at.button(key="pt_withdraw").click().run()
    assert "Your answers have been deleted" in text_of(at)
    assert n_responses(db) == 0
    again = visit(study=slug, PROLIFIC_PID=pid, SESSION_ID="F" * 24)
    assert "already taken part" in text_of(again)

    set_status(db, slug, "paused")
    assert "paused" in text_of(visit(study=slug, PROLIFIC_PID=prolific_pid(), SESSION_ID="G" * 24))
    set_status(db, slug, "closed")
    assert "has closed" in text_of(visit(study=slug, PROLIFIC_PID=prolific_pid(), SESSION_ID="G" * 24))


def test_reload_resumes_and_a_repeated_answer_is_stored_once(db, tmp_path) -> None:
    launch_example(db, "preference", tmp_path)
    rt = Runtime(db)
    pid = prolific_pid()
    at = visit(study="convis-preference-demo", PROLIFIC_PID=pid, SESSION_ID="E" * 24)
    token = token_of(at)
    for _ in range(4):
        answer_current(at, rt, token, "pairwise_preference")
    where = rt.current_step(token).index
    # a reload: a new browser session from the resume link, and the same Prolific link again
    for params in (dict(r=token), dict(study="convis-preference-demo", PROLIFIC_PID=pid, SESSION_ID="E" * 24)):
        fresh = visit(**params)
        assert not fresh.exception
        assert f"pt_s{where}_submit" in [b.key for b in fresh.button]
    # a re-sent answer to a committed step changes nothing
    before = n_responses(db)
    prior_step = where - 1
    with db.session() as s:
        prior = s.scalar(select(Response.answer).where(Response.step_index == prior_step))
    res = rt.submit(token, prior_step, prior)
    assert not res.stored and n_responses(db) == before


def test_lost_database_gets_a_retry_page(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=2")
    at = visit(study="anything", PROLIFIC_PID=prolific_pid())
    assert not at.exception
    page = text_of(at)
    assert "We cannot reach the study right now" in page and "Try again" in page


def test_participants_see_one_page_and_no_ground_truth(db, tmp_path) -> None:
    spec = launch_example(db, "forward_simulation", tmp_path, design={"control": False})
    rt = Runtime(db)
    at = visit(study=spec["id"], PROLIFIC_PID=prolific_pid(), SESSION_ID="E" * 24)
    token = token_of(at)
    while rt.current_step(token) is None or rt.current_step(token).kind != "trial":
        answer_current(at, rt, token, "forward_simulation")
    assert len(at.sidebar) == 0 or not any(True for _ in at.sidebar)
    page = text_of(at)
    view = rt.current_step(token)
    keys = _answer_keys(db, rt.resume(token).participant_id)
    assert "manifest" not in page and "stimuli" not in page and "score" not in page.lower()
    assert view.content["method"] not in page
    assert set(view.assets) <= {view.content["image_file"], *view.content["maps"].values()}
    assert keys[view.index]["truth"] in view.content["candidates"]   # the truth exists, but only server-side
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Participant)) == 1



def test_expired_full_finished_and_mismatched_sessions(db, tmp_path) -> None:
    from study.bots import BotProfile, run_bots

    launch_example(db, "rating", tmp_path, id="short", time_limits={"session_minutes": 0.002, "total_minutes": 1})
    at = visit(study="short", PROLIFIC_PID=prolific_pid(), SESSION_ID="E" * 24)
    at.button(key="pt_consent_yes").click().run()
    import time

    time.sleep(0.3)
    expired = visit(r=token_of(at))
    assert "This session has expired" in text_of(expired)

    spec = launch_example(db, "rating", tmp_path, id="tiny",
                          recruitment={"target_per_condition": 1, "stop_when_full": True})
    outs = run_bots(db, "tiny", len(spec["methods"]), BotProfile(), workers=1)
    assert all(o.status == "completed" for o in outs)
    assert "This study is full" in text_of(visit(study="tiny", PROLIFIC_PID=prolific_pid(), SESSION_ID="E" * 24))

    launch_example(db, "rating", tmp_path, id="again", questionnaire=[], trials=2, practice={"trials": 0},
                   attention_checks={"count": 0})
    rt, pid = Runtime(db), prolific_pid()
    first = visit(study="again", PROLIFIC_PID=pid, SESSION_ID="E" * 24)
    take_study(first, rt, "rating")
    assert "completed the study" in text_of(first)
    assert "already taken part" in text_of(visit(study="again", PROLIFIC_PID=pid, SESSION_ID="E" * 24))
    other = visit(study="again", PROLIFIC_PID=(pid2 := prolific_pid()), SESSION_ID="E" * 24)
    assert "pt_consent_yes" in [b.key for b in other.button]
    assert "open in another session" in text_of(visit(study="again", PROLIFIC_PID=pid2, SESSION_ID="F" * 24))
    # a made-up step in the link changes nothing: the page shows the session's own step
    assert "pt_consent_yes" in [b.key for b in visit(r=token_of(other), step="7").button]

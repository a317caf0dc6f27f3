"""The participant page: from a study link (or a resume link) to the completion code.

Everything a participant has done lives in the database behind `study.runtime.Runtime`; this
module only reads the current step and draws it. The resume token goes into the URL (`?r=`)
right after the session starts, so a reload, a reopened tab or the back button resumes at the
first unanswered step. Every failure becomes a calm page, never a traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import streamlit as st

from study import errors
from study.config import database_url
from study.db import connect
from study.labels import describe_all
from study.runtime import Runtime, SessionInfo, StepView
from ui.participant import steps
from ui.participant.trials import SCREENS
from ui.participant.widgets import STATE, Answering, page_style

log = logging.getLogger("convis.participant")
ss = st.session_state


@st.cache_resource(show_spinner=False)
def _runtime(url: str) -> Runtime:
    try:
        db = connect(url)
    except Exception as exc:  # refused, unknown host, failed migration: not cached, retried next run
        log.warning("study database unreachable: %s", exc)
        raise errors.DatabaseUnavailable("the study's database cannot be reached") from None
    describe_all(["entity.n.01"])      # parse WordNet's index now, not on a participant's first screen
    return Runtime(db)


def runtime() -> Runtime:
    """One runtime per app process and database (its connections are pooled)."""
    return _runtime(database_url())


def run() -> None:
    """Draw the participant page for this visitor."""
    page_style()
    try:
        _raise_pending()
        _run(runtime())
    except errors.StudyError as exc:
        _error_page(exc)
    except Exception:  # the last guard: log it for the researcher, show the participant a calm page
        log.exception("participant page failed")
        _calm("Something went wrong on our side",
              "Your answers so far are saved. Please try again in a moment.", retry=True)


# ---------------------------------------------------------------- session
def _client() -> str | None:
    """Who starts sessions (for the per-client start limit): the peer address, or the first
    X-Forwarded-For hop when `CONVIS_TRUSTED_PROXY=1` says a reverse proxy sets it."""
    if os.environ.get("CONVIS_TRUSTED_PROXY") == "1":
        forwarded = (st.context.headers.get("X-Forwarded-For") or "").split(",")[0].strip()
        if forwarded:
            return forwarded
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else None


def _token(rt: Runtime) -> str | None:
    """The resume token from the URL or this browser session; starts a session from a study link."""
    qp = st.query_params
    if "r" in qp:
        ss[STATE + "token"] = qp["r"]
        return qp["r"]
    if ss.get(STATE + "token"):
        return ss[STATE + "token"]
    if "study" not in qp:
        return None
    info = rt.start(qp["study"], prolific_pid=qp.get("PROLIFIC_PID") or None,
                    study_id=qp.get("STUDY_ID") or None, session_id=qp.get("SESSION_ID") or None,
                    client=_client())
    ss[STATE + "token"] = info.token
    st.query_params.from_dict({"r": info.token})   # the link to come back to; no Prolific id in it
    return info.token


def _run(rt: Runtime) -> None:
    token = _token(rt)
    if token is None:
        _calm("No study here", "This page needs a study link. Please open the study from the link you were given.")
        return
    info = rt.resume(token)
    if info.status == "started":
        view = rt.current_step(token)
        steps.consent(view.content, lambda agree: _guard(lambda: rt.consent(token, agree)))
    elif info.status == "active":
        _active(rt, token, info)
    elif info.status in ("completed", "screened_out"):
        _finished(rt, token)
    else:
        _closed_page(info.status)


def _active(rt: Runtime, token: str, info: SessionInfo) -> None:
    feedback = ss.get(STATE + "feedback")
    if feedback is not None:
        _feedback_page(feedback)
        return
    view = rt.current_step(token)
    if view is None:           # every answer is committed: only now the completion code
        _finished(rt, token)
        return
    progress_header(info.title, view)
    _notice()
    draw_step(view, info.protocol, Answering(view.index, _sender(rt, token, view)))
    _withdraw(rt, token)


def draw_step(view: StepView, protocol: str, ans: Answering) -> None:
    """One step as the participant sees it (also the researcher's preview)."""
    if view.kind == "instructions":
        steps.instructions(view.content, ans)
    elif view.kind == "quiz":
        steps.quiz(view.content, ans)
    elif view.kind == "attention":
        steps.attention(view.content, ans)
    elif view.kind == "questionnaire":
        steps.questionnaire(view.content, ans)
    else:
        c = view.content
        if view.kind == "practice" and c.get("feedback"):
            st.caption("Practice: after you answer, you will see the right answer.")
        labels = describe_all([*c.get("candidates", []), *([c["concept"]] if c.get("concept") else [])])
        SCREENS[protocol](c, view.assets, labels, ans)


def _sender(rt: Runtime, token: str, view: StepView) -> Callable[[dict[str, Any]], None]:
    """The callback that commits an answer (before the next screen is drawn)."""
    def send(answer: dict[str, Any]) -> None:
        def submit() -> None:
            res = rt.submit(token, view.index, answer)
            if res.feedback is not None:
                labels = describe_all([v for v in res.feedback.values() if isinstance(v, str)])
                ss[STATE + "feedback"] = {"correct": res.correct, "truth": res.feedback.get("correct_answer"),
                                          "labels": {k: v.name for k, v in labels.items()}}
            elif not res.stored:
                ss[STATE + "notice"] = "That screen was already answered; your first answer was kept."
        _guard(submit)
    return send


def _guard(action: Callable[[], Any]) -> None:
    """Run a callback's action; keep its error for the page to show (callbacks cannot draw)."""
    try:
        action()
    except errors.InvalidAnswer as exc:
        if "already answered" in str(exc):
            ss[STATE + "notice"] = "That screen was already answered; your first answer was kept."
        else:
            ss[STATE + "notice"] = f"That answer could not be saved: {exc}"
    except errors.StudyError as exc:
        ss[STATE + "error"] = exc
    except Exception:
        log.exception("participant callback failed")
        ss[STATE + "error"] = errors.StudyError("Something went wrong on our side. Your answers so far are saved.")


def _raise_pending() -> None:
    exc = ss.pop(STATE + "error", None)
    if exc is not None:
        raise exc


# ---------------------------------------------------------------- pieces of the page
def progress_header(title: str, view: StepView) -> None:
    """The study's title, "Trial k of n" (or "Practice") and a progress bar."""
    left, right = st.columns([3, 1])
    left.markdown(f"**{title}**")
    if view.kind == "trial" and view.trial_number:
        right.markdown(f"<div style='text-align:right'>Trial {view.trial_number} of {view.n_trials}</div>",
                       unsafe_allow_html=True)
    elif view.kind == "practice":
        right.markdown("<div style='text-align:right'>Practice</div>", unsafe_allow_html=True)
    st.progress(min(1.0, view.index / max(1, view.n_steps)))


def _notice() -> None:
    text = ss.pop(STATE + "notice", None)
    if text:
        st.warning(text)


def _feedback_page(fb: dict[str, Any]) -> None:
    truth = fb["truth"]
    shown = "yes" if truth is True else "no" if truth is False else fb["labels"].get(truth, truth)
    st.subheader("Practice: the answer")
    if fb["correct"]:
        st.success(f"Correct: the right answer was **{shown}**.")
    else:
        st.info(f"Not quite: the right answer was **{shown}**. The real trials start soon; you will not see "
                "the answers there.")
    st.button("Continue", key=STATE + "feedback_done", type="primary",
              on_click=lambda: ss.pop(STATE + "feedback", None))


def _finished(rt: Runtime, token: str) -> None:
    fin = rt.finish(token)
    if fin.status == "screened_out":
        st.subheader("Thank you for your time")
        st.markdown("From your answers to the check questions, this study is not a good fit for you, so it "
                    "ends here. Please use this code to return to Prolific:")
    else:
        st.subheader("Thank you! You have completed the study")
        st.markdown("All your answers are saved. Your completion code:")
    st.code(fin.completion_code, language=None)
    if fin.redirect_url:
        st.link_button("Back to Prolific with this code", fin.redirect_url, type="primary")
    else:
        st.caption("You can close this tab.")


def _withdraw(rt: Runtime, token: str) -> None:
    st.write("")
    with st.popover("Withdraw from the study"):
        st.markdown("Withdrawing ends the study now and **deletes every answer you have given**. "
                    "This cannot be undone.")
        st.button("Yes, withdraw and delete my answers", key=STATE + "withdraw",
                  on_click=lambda: _guard(lambda: rt.withdraw(token)))


def _closed_page(status: str) -> None:
    pages = {
        "declined": ("You chose not to take part", "Nothing was stored except that you declined. If you came "
                     "from Prolific, please return your submission there. You can close this tab."),
        "withdrawn": ("You have withdrawn", "Your answers have been deleted. If you came from Prolific, please "
                      "return your submission there. You can close this tab."),
        "abandoned": ("This session has expired", "The time limit for this study has passed, so it cannot be "
                      "continued. If you came from Prolific, please return your submission there."),
    }
    title, body = pages.get(status, ("This session is closed", "Nothing more can be answered in it."))
    _calm(title, body)


_ERRORS: list[tuple[str, str, str, bool]] = [
    # (error class name, title, text, offer a retry)
    ("DatabaseUnavailable", "We cannot reach the study right now",
     "Your answers so far are saved. Please try again in a moment.", True),
    ("StudyUnavailable", "This study is not open", "", False),
    ("TooManyStarts", "Too many sessions from this device",
     "Please wait a few minutes before starting again.", False),
    ("AlreadyParticipated", "You have already taken part",
     "Our records show that you have already taken part in this study, so you cannot take it again. "
     "Thank you!", False),
    ("SessionMismatch", "This study is open in another session",
     "Your Prolific ID already has a session in this study, started from a different Prolific "
     "submission. Please continue in the tab where you started, or contact the researchers.", False),
    ("StudyFull", "This study is full", "Every place has been taken. Thank you for your interest!", False),
    ("SessionClosed", "This session is closed", "", False),
    ("NotFound", "This link does not work",
     "The study or session in this link does not exist. Please open the study again from the link you "
     "were given.", False),
    ("InvalidInput", "This link does not work",
     "The link is incomplete or has been changed. Please open the study again from the link you were given.",
     False),
    ("StimulusError", "The study's pictures are unavailable",
     "The researchers need to fix this. Your answers so far are saved; please try again later.", True),
]


def _error_page(exc: errors.StudyError) -> None:
    for name, title, text, retry in _ERRORS:
        cls = getattr(errors, name, None)
        if cls is not None and isinstance(exc, cls):
            if name == "StudyUnavailable":
                text = ("The study is paused for now. Please try again later." if getattr(exc, "status", "") ==
                        "paused" else "The study has closed. Thank you for your interest!")
            if name == "SessionClosed" and getattr(exc, "status", None) in ("abandoned", "withdrawn", "declined"):
                _closed_page(exc.status)
                return
            _calm(title, text or str(exc), retry)
            return
    log.warning("participant page: %s: %s", type(exc).__name__, exc)
    _calm("Something went wrong", str(exc), retry=True)


def _calm(title: str, text: str, retry: bool = False) -> None:
    st.subheader(title)
    st.markdown(text)
    if retry:
        st.button("Try again", key=STATE + "retry", type="primary")

"""Simulated participants: they take a study through the same `Runtime` API as people.

A bot answers correctly with its profile's accuracy for the trial's method (for preference
trials, accuracy is a method strength: P(left wins) = s_left / (s_left + s_right)), draws
response times from a log-normal (on a virtual clock, so runs are fast), and can drop out,
double-submit, reload, decline consent or withdraw. Bots peek at the answer key through
`_answer_keys`, a simulation-only read that the runtime API does not offer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from study.db import Database
from study.errors import StudyError
from study.models import Step
from study.runtime import Runtime, StepView
from study.versions import utcnow


@dataclass
class BotProfile:
    accuracy: dict[str, float] = field(default_factory=dict)  # method (or 'none') -> P(correct)
    default_accuracy: float = 0.7
    rt_median_ms: float = 2500.0
    rt_sigma: float = 0.5
    dropout: float = 0.0          # P(leaving for good at a random step)
    double_submit: float = 0.0    # P(submitting a step twice)
    reload: float = 0.0           # P(reloading before a step: resume from the token)
    decline: float = 0.0          # P(refusing consent)
    withdraw: float = 0.0         # P(withdrawing at a random step)
    attention_pass: float = 0.98
    quiz_pass: float = 0.95
    real_delay_ms: float = 0.0    # real sleep per step (for crash tests and demos)

    def p(self, method: str | None) -> float:
        return self.accuracy.get(method or "", self.default_accuracy)


@dataclass
class BotOutcome:
    participant_id: str
    token: str
    condition: str
    status: str
    submitted: int = 0
    duplicates: int = 0
    reloads: int = 0
    code: str | None = None


class VirtualClock:
    """A per-bot clock that moves only when the bot 'thinks'."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += timedelta(milliseconds=ms)


def _answer_keys(db: Database, participant_id: str) -> dict[int, dict[str, Any]]:
    """Simulation only: the answer key of every step of a participant."""
    with db.session() as s:
        rows = s.execute(select(Step.index, Step.payload).where(Step.participant_id == participant_id)).all()
        return {i: dict(payload["key"]) for i, payload in rows}


def _bot_answer(runtime: Runtime, view: StepView, key: dict[str, Any], profile: BotProfile,
                protocol: str, rng: np.random.Generator) -> dict[str, Any]:
    from study import protocols
    from study.protocols.base import Trial, choose

    c = view.content
    if view.kind == "instructions":
        return {"ok": True}
    if view.kind in ("quiz", "attention"):
        p = profile.quiz_pass if view.kind == "quiz" else profile.attention_pass
        return {"choice": choose(c["options"], key["truth"], p, rng)}
    if view.kind == "questionnaire":
        out: dict[str, Any] = {}
        for q in c["items"]:
            out[q["id"]] = (int(rng.integers(1, q["scale"] + 1)) if q["type"] == "likert"
                            else str(rng.choice(q["options"])) if q["type"] == "choice" else "bot")
        return {"answers": out}
    proto = protocols.get(protocol)
    return proto.bot_answer(Trial(c, key), proto.bot_probability(c, profile.p), rng)


def bot_pid(prefix: str, i: int) -> str:
    """Bot `i`'s Prolific id: 24 hex digits derived from `prefix` and `i` (same inputs, same person)."""
    return _hex24(f"pid/{prefix}/{i}")


def _hex24(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run_bot(db: Database, study: str, profile: BotProfile, seed: int, prolific_pid: str | None = None,
            on_start: Callable[[BotOutcome], None] | None = None) -> BotOutcome:
    """Take `study` once as a simulated participant; returns what happened. With a Prolific id,
    the STUDY_ID and SESSION_ID are derived from it (the same person sends the same ones)."""
    rng = np.random.default_rng(seed)
    clock = VirtualClock()
    rt = Runtime(db, clock=clock)
    info = rt.start(study, prolific_pid=prolific_pid, study_id=_hex24("botstudy") if prolific_pid else None,
                    session_id=_hex24(f"session/{prolific_pid}") if prolific_pid else None)
    out = BotOutcome(info.participant_id, info.token, info.condition, info.status)
    if on_start:
        on_start(out)
    if rng.random() < profile.decline:
        out.status = rt.consent(info.token, False).status
        return out
    rt.consent(info.token, True)
    protocol = rt.resume(info.token).protocol
    keys = _answer_keys(db, info.participant_id)
    drop_at = int(rng.integers(1, info.n_steps)) if rng.random() < profile.dropout else None
    withdraw_at = int(rng.integers(1, info.n_steps)) if rng.random() < profile.withdraw else None
    while True:
        if rng.random() < profile.reload:
            rt = Runtime(db, clock=clock)  # a fresh page: only the token survives
            rt.resume(info.token)
            out.reloads += 1
        view = rt.current_step(info.token)
        if view is None:
            break
        if view.index == drop_at:
            out.status = "dropped"
            return out
        if view.index == withdraw_at:
            rt.withdraw(info.token)
            out.status = "withdrawn"
            return out
        key = keys[view.index]
        answer = _bot_answer(rt, view, key, profile, protocol, rng)
        clock.advance(float(rng.lognormal(np.log(profile.rt_median_ms), profile.rt_sigma)))
        if profile.real_delay_ms:
            time.sleep(profile.real_delay_ms / 1000)
        res = rt.submit(info.token, view.index, answer)
        out.submitted += res.stored
        if res.screened_out:
            out.status, out.code = "screened_out", res.completion_code
            return out
        if rng.random() < profile.double_submit:
            again = rt.submit(info.token, view.index, answer)
            out.duplicates += not again.stored
    fin = rt.finish(info.token)
    out.status, out.code = fin.status, fin.completion_code
    return out


def run_bots(db: Database, study: str, n: int, profile: BotProfile | None = None, workers: int = 8,
             seed: int = 0, prolific: bool = True, pid_prefix: str | None = None,
             on_start: Callable[[BotOutcome], None] | None = None) -> list[BotOutcome | StudyError]:
    """Run `n` bots concurrently (threads, each with its own connections); errors are returned.

    Bot i's Prolific id is ``bot_pid(pid_prefix, i)`` (default prefix ``BOT<seed>``), so two runs
    with the same prefix are the same people arriving twice (e.g. from two app processes)."""
    profile = profile or BotProfile()
    prefix = pid_prefix if pid_prefix is not None else f"BOT{seed:06d}"

    def one(i: int) -> BotOutcome | StudyError:
        try:
            pid = bot_pid(prefix, i) if prolific else None
            return run_bot(db, study, profile, seed * 100_003 + i, prolific_pid=pid, on_start=on_start)
        except StudyError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, range(n)))

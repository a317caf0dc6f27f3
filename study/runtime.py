"""The participant runtime API that pages (and bots) call. The database owns progress.

Flow: `start` -> `consent` -> repeat `current_step` / `submit` -> `finish` (completion code).
`withdraw` at any time deletes the participant's data and logs it. Every call takes the resume
token returned by `start`; a reload or a crash resumes at the first unanswered step.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study import protocols
from study.db import Database, connect
from study.design import build_schedule, conditions
from study.errors import (
    AlreadyParticipated,
    InvalidAnswer,
    InvalidInput,
    NotFound,
    SessionClosed,
    StudyFull,
)
from study.models import Event, Participant, Response, Step, Study, StudyVersion
from study.protocols.base import Trial
from study.quality import exclusion_reasons, quality_flags
from study.versions import VersionContext, get_version, utcnow, version_context

PROLIFIC_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
MAX_ANSWER_BYTES = 8192
OPEN = ("started", "active")          # sessions that still hold a slot
COUNTED = ("started", "active", "completed")
CLOSED = ("completed", "withdrawn", "declined", "abandoned", "screened_out")


@dataclass(frozen=True)
class SessionInfo:
    """What `start`/`resume` return. Keep `token` (e.g. in the URL) to resume after a reload."""

    token: str
    participant_id: str
    study: str
    version: int
    condition: str
    status: str
    n_steps: int
    current_step: int
    resumed: bool = False
    protocol: str = ""


@dataclass(frozen=True)
class StepView:
    """The step to render. kind: consent | instructions | quiz | practice | trial | attention |
    questionnaire. `content` never contains the correct answer."""

    index: int
    kind: str
    content: dict[str, Any]
    n_steps: int
    stimuli_dir: str


@dataclass(frozen=True)
class SubmitResult:
    step_index: int
    stored: bool                # False: a duplicate submit, the first answer was kept
    correct: bool | None
    feedback: dict[str, Any] | None = None   # practice trials with feedback: the right answer
    done: bool = False          # every step answered: call `finish`
    screened_out: bool = False
    completion_code: str | None = None


@dataclass(frozen=True)
class FinishResult:
    completion_code: str
    status: str
    redirect_url: str | None
    flags: dict[str, Any] = field(default_factory=dict)


class _Ack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool = True


class _Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: str = Field(max_length=200)


class _Questionnaire(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[str, int | str | None] = Field(max_length=200)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pid_hash(secret: str, study_id: int, prolific_pid: str) -> str:
    """The stored form of a Prolific PID: ``HMAC-SHA256(study secret, sha256("<study_id>:<PID>"))``.

    The key is the study's random `Study.secret` (in the database, never exported), so a leaked
    table or export cannot be searched for a known PID offline, and the same PID hashes differently
    in every study. Migration 0002 converted the earlier unsalted hashes with the same formula.
    """
    return hmac.new(bytes.fromhex(secret), _hash(f"{study_id}:{prolific_pid}").encode(), hashlib.sha256).hexdigest()


def _check_id(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not PROLIFIC_ID.match(value):
        raise InvalidInput(f"{name} must be 1-64 letters or digits")
    return value


class Runtime:
    """Participant API bound to one database. `clock` (naive UTC) is injectable for bots."""

    def __init__(self, db: Database | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db or connect()
        self.clock = clock

    # ------------------------------------------------------------------ helpers
    def _context(self, s: Session, version_id: int) -> VersionContext:
        """Frozen versions never change, so their context is cached per process."""
        ctx = _contexts.get((self.db.url, version_id))
        if ctx is None:
            v = s.get(StudyVersion, version_id)
            ctx = version_context(self.db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version)
            _contexts[(self.db.url, version_id)] = ctx
        return ctx

    def _pid_hash(self, s: Session, study_id: int, pid: str) -> str:
        """`pid_hash` with the study's secret (read in the caller's transaction)."""
        secret = s.scalar(select(Study.secret).where(Study.id == study_id))
        if not secret:
            raise NotFound(f"study {study_id} has no secret (database not migrated?)")
        return pid_hash(secret, study_id, pid)

    def _participant(self, s: Session, token: str, lock: bool = True) -> Participant:
        if not isinstance(token, str) or not TOKEN.match(token):
            raise InvalidInput("malformed resume token")
        q = select(Participant).where(Participant.token_hash == _hash(token))
        p = s.scalar(q.with_for_update(key_share=True) if lock else q)
        if p is None:
            raise NotFound("unknown resume token")
        return p

    def _expire_if_idle(self, s: Session, p: Participant, ctx: VersionContext) -> None:
        limit = timedelta(minutes=ctx.spec.time_limits.session_minutes)
        if p.status in OPEN and p.last_activity_at < self.clock() - limit:
            p.status = "abandoned"
            s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="abandoned",
                        at=self.clock(), detail={"last_activity_at": p.last_activity_at.isoformat()}))

    def _open(self, s: Session, token: str) -> tuple[Participant, VersionContext]:
        p = self._participant(s, token)
        ctx = self._context(s, p.study_version_id)
        self._expire_if_idle(s, p, ctx)
        return p, ctx

    @staticmethod
    def _info(s: Session, p: Participant, ctx: VersionContext, token: str, resumed: bool) -> SessionInfo:
        return SessionInfo(token, p.id, ctx.spec.id, ctx.version, p.condition, p.status, p.n_steps,
                           p.current_step, resumed, ctx.spec.protocol.name)

    # ------------------------------------------------------------------ API
    def start(self, study: str, prolific_pid: str | None = None, study_id: str | None = None,
              session_id: str | None = None) -> SessionInfo:
        """Enter the active version of `study` (a slug). With a Prolific PID, a person who is still
        in the study resumes (new token); one who finished, withdrew or timed out gets
        `AlreadyParticipated`. Without one, an anonymous session starts (if the spec allows).
        Assignment: least-filled condition counting completed and open sessions; idle sessions past
        the time limit are reclaimed first. The whole schedule is stored before returning."""
        pid = _check_id("PROLIFIC_PID", prolific_pid)
        sid, sess = _check_id("STUDY_ID", study_id), _check_id("SESSION_ID", session_id)
        version = get_version(self.db, study)
        try:
            with self.db.session() as s:
                return self._start(s, version.id, pid, sid, sess, version.version)
        except IntegrityError:  # the same PID raced in from another process: resume it
            with self.db.session() as s:
                return self._start(s, version.id, pid, sid, sess, version.version)

    def _start(self, s: Session, version_id: int, pid: str | None, sid: str | None, sess: str | None,
               version_no: int) -> SessionInfo:
        # FOR NO KEY UPDATE: serialises starts of this version across processes, yet does not block
        # the FOR KEY SHARE locks that foreign-key checks of concurrent submits take on this row
        # (plain FOR UPDATE deadlocked against a submit holding its participant row).
        v = s.scalar(select(StudyVersion).where(StudyVersion.id == version_id).with_for_update(key_share=True))
        ctx = self._context(s, v.id)
        spec, now = ctx.spec, self.clock()
        token = secrets.token_urlsafe(32)
        if pid is None and not spec.recruitment.allow_anonymous:
            raise InvalidInput("this study needs a Prolific PROLIFIC_PID")
        hashed_pid = self._pid_hash(s, v.study_id, pid) if pid is not None else None
        if pid is not None:
            old = s.scalar(select(Participant).where(Participant.study_id == v.study_id,
                                                     Participant.pid_hash == hashed_pid))
            if old is not None:
                old_ctx = self._context(s, old.study_version_id)
                self._expire_if_idle(s, old, old_ctx)
                if old.status not in OPEN:
                    raise AlreadyParticipated("this Prolific participant has already taken part in this study")
                old.token_hash = _hash(token)
                old.last_activity_at = now
                return self._info(s, old, old_ctx, token, True)
        self._reclaim(s, v.id, spec.time_limits.session_minutes)
        counts = dict(s.execute(select(Participant.condition, func.count()).where(
            Participant.study_version_id == v.id, Participant.status.in_(COUNTED)).group_by(Participant.condition)).all())
        conds = conditions(spec)
        seed = secrets.randbits(63)
        low = min(counts.get(c, 0) for c in conds)
        if spec.recruitment.stop_when_full and low >= spec.recruitment.target_per_condition:
            raise StudyFull("every condition has reached its target number of participants")
        tied = [c for c in conds if counts.get(c, 0) == low]
        condition = tied[int(np.random.default_rng(seed).integers(len(tied)))]
        steps = build_schedule(spec, ctx.items, condition, seed)
        p = Participant(id=str(uuid.uuid4()), study_id=v.study_id, study_version_id=v.id, prolific_pid=pid,
                        pid_hash=hashed_pid, prolific_study_id=sid,
                        prolific_session_id=sess, token_hash=_hash(token), seed=seed, condition=condition,
                        status="started", current_step=0, n_steps=len(steps), started_at=now,
                        last_activity_at=now, flags={})
        s.add(p)
        s.flush()
        s.add_all([Step(participant_id=p.id, index=i, kind=st.kind, payload=st.payload) for i, st in enumerate(steps)])
        return SessionInfo(token, p.id, spec.id, version_no, condition, p.status, p.n_steps, 0, False,
                           spec.protocol.name)

    def _reclaim(self, s: Session, version_id: int, minutes: float) -> None:
        cutoff = self.clock() - timedelta(minutes=minutes)
        stale = s.scalars(select(Participant.id).where(Participant.study_version_id == version_id,
                                                       Participant.status.in_(OPEN),
                                                       Participant.last_activity_at < cutoff)).all()
        if stale:
            s.execute(update(Participant).where(Participant.id.in_(stale)).values(status="abandoned"))
            s.add_all([Event(study_version_id=version_id, participant_id=pid, kind="abandoned", at=self.clock(),
                             detail={"reclaimed": True}) for pid in stale])

    def resume(self, token: str) -> SessionInfo:
        """The session behind `token` (status tells whether it is still open)."""
        with self.db.session() as s:
            p, ctx = self._open(s, token)
            return self._info(s, p, ctx, token, True)

    def consent(self, token: str, agree: bool) -> SessionInfo:
        """Record consent (status 'active') or its refusal (status 'declined', logged, slot freed)."""
        with self.db.session() as s:
            p, ctx = self._open(s, token)
            if p.status == "started":
                p.status, p.last_activity_at = ("active" if agree else "declined"), self.clock()
                if agree:
                    p.consented_at = self.clock()
                else:
                    s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="declined",
                                at=self.clock(), detail={}))
            elif p.status != "active":
                raise SessionClosed(f"this session is {p.status}")
            return self._info(s, p, ctx, token, True)

    def current_step(self, token: str) -> StepView | None:
        """The step to show now (kind 'consent' before consent); None once every step is answered.
        The first call for a step starts its server-side clock."""
        with self.db.session() as s:
            p, ctx = self._open(s, token)
            if p.status == "started":
                return StepView(-1, "consent", {"text": ctx.spec.consent, "title": ctx.spec.title}, p.n_steps, "")
            if p.status != "active":
                raise SessionClosed(f"this session is {p.status}")
            if p.current_step >= p.n_steps:
                return None
            step = s.get(Step, (p.id, p.current_step))
            if step.shown_at is None:
                step.shown_at = self.clock()
            return StepView(step.index, step.kind, step.payload["content"], p.n_steps, ctx.stimuli_dir)

    def submit(self, token: str, step_index: int, answer: dict[str, Any]) -> SubmitResult:
        """Store the answer to step `step_index`, committed before returning. A repeat of an
        already stored answer returns stored=False and changes nothing; a different answer to an
        answered step, or an answer to a later step, raises `InvalidAnswer`."""
        if isinstance(step_index, bool) or not isinstance(step_index, int):
            raise InvalidAnswer("step_index must be an integer")
        if not isinstance(answer, dict):
            raise InvalidAnswer("an answer must be a JSON object")
        try:
            raw = json.dumps(answer)
        except (TypeError, ValueError):
            raise InvalidAnswer("an answer must be plain JSON") from None
        if len(raw.encode()) > MAX_ANSWER_BYTES:
            raise InvalidAnswer(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        with self.db.session() as s:
            p, ctx = self._open(s, token)
            if p.status == "started":
                raise InvalidAnswer("consent first")
            if p.status != "active" and not (p.status in ("completed", "screened_out") and step_index < p.current_step):
                raise SessionClosed(f"this session is {p.status}; nothing more can be stored")
            if not 0 <= step_index < p.n_steps:
                raise InvalidAnswer(f"step_index must be from 0 to {p.n_steps - 1}")
            if step_index > p.current_step:
                raise InvalidAnswer(f"step {step_index} is not the current step ({p.current_step})")
            step = s.get(Step, (p.id, step_index))
            parsed = self._validate(ctx, step, answer)
            if step_index < p.current_step:
                prior = s.scalar(select(Response).where(Response.participant_id == p.id,
                                                        Response.step_index == step_index))
                if prior is None or prior.answer != parsed:
                    raise InvalidAnswer("this step is already answered; answers cannot be changed")
                return SubmitResult(step_index, False, prior.correct, done=p.current_step >= p.n_steps)
            now = self.clock()
            correct, score = self._score(ctx, step, parsed)
            started = step.shown_at or p.last_activity_at
            s.add(Response(participant_id=p.id, study_version_id=p.study_version_id, step_index=step_index,
                           kind=step.kind, answer=parsed, correct=correct, score=score,
                           rt_ms=max(0.0, (now - started).total_seconds() * 1000), submitted_at=now))
            p.current_step += 1
            p.last_activity_at = now
            feedback = ({"correct_answer": step.payload["key"].get("truth")}
                        if step.kind == "practice" and step.payload["content"].get("feedback") else None)
            if step.kind == "quiz" and ctx.spec.quiz.screen_out and self._quiz_over(s, p, step_index):
                code = self._screen_out_if_failed(s, p, ctx)
                if code:
                    return SubmitResult(step_index, True, correct, feedback, True, True, code)
            return SubmitResult(step_index, True, correct, feedback, p.current_step >= p.n_steps)

    def _validate(self, ctx: VersionContext, step: Step, answer: dict[str, Any]) -> dict[str, Any]:
        content = step.payload["content"]
        try:
            if step.kind in ("practice", "trial"):
                return protocols.get(ctx.spec.protocol.name).validate_answer(content, answer)
            if step.kind == "instructions":
                return _Ack.model_validate(answer).model_dump()
            if step.kind in ("quiz", "attention"):
                parsed = _Choice.model_validate(answer).model_dump()
                if parsed["choice"] not in content["options"]:
                    raise InvalidAnswer("choice is not one of the options shown")
                return parsed
            return self._questionnaire(content, _Questionnaire.model_validate(answer).model_dump())
        except ValidationError as exc:
            raise InvalidAnswer("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None

    @staticmethod
    def _questionnaire(content: dict[str, Any], parsed: dict[str, Any]) -> dict[str, Any]:
        items = {q["id"]: q for q in content["items"]}
        answers = parsed["answers"]
        unknown = set(answers) - set(items)
        if unknown:
            raise InvalidAnswer(f"unknown questionnaire items: {sorted(unknown)[:5]}")
        for qid, q in items.items():
            value = answers.get(qid)
            if value is None:
                if q["required"]:
                    raise InvalidAnswer(f"{qid}: an answer is required")
                continue
            if q["type"] == "likert" and (not isinstance(value, int) or not 1 <= value <= q["scale"]):
                raise InvalidAnswer(f"{qid}: must be an integer from 1 to {q['scale']}")
            if q["type"] == "choice" and value not in q["options"]:
                raise InvalidAnswer(f"{qid}: not one of the options")
            if q["type"] == "text" and (not isinstance(value, str) or len(value) > q["max_length"]):
                raise InvalidAnswer(f"{qid}: must be text of at most {q['max_length']} characters")
        return parsed

    @staticmethod
    def _score(ctx: VersionContext, step: Step, answer: dict[str, Any]) -> tuple[bool | None, dict[str, Any] | None]:
        key = step.payload["key"]
        if step.kind in ("practice", "trial"):
            return protocols.get(ctx.spec.protocol.name).score(Trial(step.payload["content"], key), answer)
        if step.kind in ("quiz", "attention"):
            return answer["choice"] == key["truth"], None
        return None, None

    @staticmethod
    def _quiz_over(s: Session, p: Participant, step_index: int) -> bool:
        nxt = s.get(Step, (p.id, step_index + 1))
        return nxt is None or nxt.kind != "quiz"

    def _screen_out_if_failed(self, s: Session, p: Participant, ctx: VersionContext) -> str | None:
        s.flush()
        rows = s.execute(select(Response.correct).where(Response.participant_id == p.id, Response.kind == "quiz")).all()
        share = sum(bool(r[0]) for r in rows) / max(1, len(rows))
        if share >= ctx.spec.quiz.pass_mark:
            return None
        p.status, p.finished_at = "screened_out", self.clock()
        p.completion_code = ctx.spec.recruitment.screenout_code or ""
        p.flags = {"failed_quiz": {"share_correct": round(share, 3), "pass_mark": ctx.spec.quiz.pass_mark}}
        s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="screened_out",
                    at=self.clock(), detail=p.flags))
        return p.completion_code

    def finish(self, token: str) -> FinishResult:
        """Close a session whose steps are all answered: quality flags, status 'completed', the
        completion code (and Prolific's redirect URL). Idempotent for a completed session."""
        with self.db.session() as s:
            p, ctx = self._open(s, token)
            if p.status in ("completed", "screened_out"):
                return self._finished(p, ctx)
            if p.status != "active":
                raise SessionClosed(f"this session is {p.status}")
            if p.current_step < p.n_steps:
                raise InvalidAnswer(f"{p.n_steps - p.current_step} step(s) still unanswered")
            rows = s.execute(select(Response, Step).join(Step, (Step.participant_id == Response.participant_id)
                                                         & (Step.index == Response.step_index))
                             .where(Response.participant_id == p.id).order_by(Response.step_index)).all()
            records = [{"kind": r.kind, "correct": r.correct, "rt_ms": r.rt_ms, "answer": r.answer,
                        "content": st.payload["content"]} for r, st in rows]
            flags = quality_flags(ctx.spec, records)
            reasons = exclusion_reasons(ctx.spec, flags)
            p.flags = {**flags, "excluded": reasons}
            p.status, p.finished_at = "completed", self.clock()
            p.completion_code = ctx.spec.recruitment.completion_code
            p.last_activity_at = self.clock()
            if reasons:
                s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="flagged",
                            at=self.clock(), detail={"excluded": reasons}))
            return self._finished(p, ctx)

    @staticmethod
    def _finished(p: Participant, ctx: VersionContext) -> FinishResult:
        code = p.completion_code or ""
        url = (f"https://app.prolific.com/submissions/complete?cc={code}"
               if p.prolific_pid and ctx.spec.recruitment.platform == "prolific" and code else None)
        return FinishResult(code, p.status, url, dict(p.flags or {}))

    def withdraw(self, token: str) -> None:
        """Delete the participant's responses, schedule and Prolific ids; keep a logged tombstone
        (status 'withdrawn', condition) so counts stay honest and the PID cannot re-enter."""
        with self.db.session() as s:
            p = self._participant(s, token)
            if p.status == "withdrawn":
                return
            n = s.execute(delete(Response).where(Response.participant_id == p.id)).rowcount
            s.execute(delete(Step).where(Step.participant_id == p.id))
            s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="withdrawn",
                        at=self.clock(), detail={"responses_deleted": n, "previous_status": p.status}))
            p.status, p.prolific_pid, p.prolific_study_id, p.prolific_session_id = "withdrawn", None, None, None
            p.flags, p.completion_code, p.finished_at = {}, None, self.clock()


_contexts: dict[tuple[str, int], VersionContext] = {}
_default: Runtime | None = None


def default_runtime() -> Runtime:
    """A process-wide `Runtime` on the default database (`DATABASE_URL` or the SQLite file)."""
    global _default
    if _default is None:
        _default = Runtime()
    return _default

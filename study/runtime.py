"""The participant runtime API that pages (and bots) call. The database owns progress.

Flow: `start` -> `consent` -> repeat `current_step` / `submit` -> `finish` (completion code).
`withdraw` at any time deletes the participant's data and leaves a tombstone. Every call takes a
resume token returned by `start`; a reload or a crash resumes at the first unanswered step.

What a page receives never leads to the ground truth: a step's content and the bytes of the
images and maps it names (`StepView.assets`), correctness only as practice feedback, and no
quality flags. Errors are `study.errors.StudyError`s with messages meant for participants;
a lost database connection is `DatabaseUnavailable`, never a raw driver error.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from study import protocols
from study.assets import allowed_files, step_assets
from study.db import Database, connect
from study.design import build_schedule, conditions
from study.errors import (
    AlreadyParticipated,
    DatabaseUnavailable,
    InvalidAnswer,
    InvalidInput,
    NotFound,
    SessionClosed,
    SessionExpired,
    SessionMismatch,
    StudyError,
    StudyFull,
    StudyUnavailable,
    TooManyStarts,
)
from study.keys import client_hash, pid_hash
from study.models import (
    Event,
    Participant,
    Response,
    StartAttempt,
    Step,
    Study,
    StudyVersion,
    Token,
)
from study.protocols.base import Trial
from study.quality import exclusion_reasons, quality_flags
from study.spec import TimeLimits
from study.versions import VersionContext, get_version, utcnow, version_context

PROLIFIC_PID = re.compile(r"[0-9a-fA-F]{24}")      # Prolific participant ids: 24 hex digits
PROLIFIC_ID = re.compile(r"[A-Za-z0-9]{1,64}")     # STUDY_ID, SESSION_ID
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,128}")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # control characters other than \t \n \r
MAX_ANSWER_BYTES = 8192
MAX_ANSWER_DEPTH = 6
MAX_ANSWER_NODES = 1000
MAX_CLIENT_CHARS = 256
START_WINDOW = timedelta(minutes=10)    # per-client limit on new sessions: spec max_starts_per_client
OPEN = ("started", "active")                   # sessions still running
ASSIGNED = ("started", "active", "completed")  # balance conditions over these
FILLED = ("active", "completed")               # hold a slot of the target (consented)
DB_DOWN = "The study's database is not reachable; your answers so far are saved. Please try again in a moment."
_CLOSED = {
    "completed": "You have already finished this study. Thank you!",
    "screened_out": "This study has ended for you. Thank you for your time.",
    "withdrawn": "You have withdrawn from this study and your answers were deleted.",
    "declined": "You did not give consent, so this study has ended for you. Thank you for your time.",
    "abandoned": "This session has ended because its time limit was reached. The answers you gave are saved.",
}
_UNAVAILABLE = {
    "paused": "This study is paused at the moment and is not taking new participants. Please try again later.",
    "closed": "This study is closed and is not taking new participants. Thank you for your interest.",
}


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
    title: str = ""


@dataclass(frozen=True)
class StepView:
    """The step to render. kind: consent | instructions | quiz | practice | trial | attention |
    questionnaire. `content` never contains the correct answer; `assets` holds the bytes of
    exactly the files `content` names (`image_file`, `map`, `maps` values), keyed by those paths.
    `trial_number` is the 1-based position among the `n_trials` main trials (kind 'trial' only)."""

    index: int
    kind: str
    content: dict[str, Any]
    n_steps: int
    assets: dict[str, bytes]
    n_trials: int
    trial_number: int | None = None


@dataclass(frozen=True)
class SubmitResult:
    step_index: int
    stored: bool                # False: a duplicate submit, the first answer was kept
    correct: bool | None        # practice steps with feedback only; None everywhere else
    feedback: dict[str, Any] | None = None   # practice trials with feedback: the right answer
    done: bool = False          # every step answered: call `finish`
    screened_out: bool = False
    completion_code: str | None = None


@dataclass(frozen=True)
class FinishResult:
    completion_code: str
    status: str
    redirect_url: str | None


class _Ack(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ok: StrictBool = True

    @field_validator("ok")
    @classmethod
    def _true(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("must be true")
        return value


class _Choice(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    choice: str = Field(max_length=200)


class _Questionnaire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    answers: dict[str, int | str | None] = Field(max_length=200)


class _AfterCommit(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside `Runtime._tx`: commit what the transaction changed, then raise `error`."""

    def __init__(self, error: StudyError) -> None:
        super().__init__(str(error))
        self.error = error


P = ParamSpec("P")
R = TypeVar("R")


def _db_guard(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a lost or refused database connection into `DatabaseUnavailable`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            raise DatabaseUnavailable(DB_DOWN) from exc

    return wrapper


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _closed(status: str) -> SessionClosed:
    cls = SessionExpired if status == "abandoned" else SessionClosed
    return cls(_CLOSED.get(status, f"This session is {status}; nothing more can be stored."), status)


def _check_pid(value: str | None) -> str | None:
    """A Prolific PID (24 hex digits, stored in lower case) or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not PROLIFIC_PID.fullmatch(value):
        raise InvalidInput("PROLIFIC_PID must be a Prolific id (24 hexadecimal characters); "
                           "please open the study from its Prolific link")
    return value.lower()


def _check_id(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not PROLIFIC_ID.fullmatch(value):
        raise InvalidInput(f"{name} must be 1-64 letters or digits")
    return value


def _check_client(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_CLIENT_CHARS:
        raise InvalidInput(f"the client key must be text of at most {MAX_CLIENT_CHARS} characters")
    return value


def _check_text(text: str) -> None:
    if len(text) > MAX_ANSWER_BYTES:
        raise InvalidAnswer(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    if CONTROL.search(text):
        raise InvalidAnswer("text must not contain control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAnswer("text must be valid Unicode") from None


def check_plain_answer(answer: Any) -> None:
    """An answer must be a small JSON object: depth, size, finite numbers, text without control
    characters. Walks iteratively, so no input can exhaust the stack."""
    if not isinstance(answer, dict):
        raise InvalidAnswer("an answer must be a JSON object")
    stack: list[tuple[Any, int]] = [(answer, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if depth > MAX_ANSWER_DEPTH or seen > MAX_ANSWER_NODES:
            raise InvalidAnswer("answer is nested too deeply or has too many parts")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise InvalidAnswer("answer keys must be text")
                _check_text(key)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
        elif isinstance(node, str):
            _check_text(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise InvalidAnswer("numbers must be finite")
        elif node is not None and not isinstance(node, (bool, int, float)):
            raise InvalidAnswer("an answer must be plain JSON")
    if len(json.dumps(answer).encode()) > MAX_ANSWER_BYTES:
        raise InvalidAnswer(f"answer larger than {MAX_ANSWER_BYTES} bytes")


def _day(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day)


def _feedback(step: Step) -> dict[str, Any] | None:
    """The right answer of a practice step with feedback on (None for every other step)."""
    if step.kind == "practice" and step.payload["content"].get("feedback"):
        return {"correct_answer": step.payload["key"].get("truth")}
    return None


class Runtime:
    """Participant API bound to one database (connected on first use; `None`: the default
    database). `clock` (naive UTC) is injectable for bots and tests."""

    def __init__(self, db: Database | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self.clock = clock

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = connect()
        return self._db

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction; an `_AfterCommit` raised inside commits first, then raises its error
        (an expiry is recorded even though the call fails)."""
        error: StudyError | None = None
        with self.db.session() as s:
            try:
                yield s
            except _AfterCommit as signal:
                error = signal.error
        if error is not None:
            raise error

    def _context(self, s: Session, version_id: int) -> VersionContext:
        """Frozen versions never change, so their context is cached per process."""
        ctx = _contexts.get((self.db.url, version_id))
        if ctx is None:
            v = s.get(StudyVersion, version_id)
            ctx = version_context(self.db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version)
            _contexts[(self.db.url, version_id)] = ctx
        return ctx

    def _participant(self, s: Session, token: str, lock: bool = True) -> Participant:
        if not isinstance(token, str) or not TOKEN.fullmatch(token):
            raise InvalidInput("malformed resume token")
        pid = s.scalar(select(Token.participant_id).where(Token.token_hash == _hash(token)))
        if pid is None:
            raise NotFound("unknown resume token: please reopen the study from its link")
        q = select(Participant).where(Participant.id == pid)
        return s.scalar(q.with_for_update(key_share=True) if lock else q)

    def _limits_passed(self, p: Participant, limits: TimeLimits) -> str | None:
        """'idle' or 'total' if an open session is past a time limit, else None."""
        now = self.clock()
        if p.started_at < now - timedelta(minutes=limits.total_minutes):
            return "total"
        if p.last_activity_at < now - timedelta(minutes=limits.session_minutes):
            return "idle"
        return None

    def _expire(self, s: Session, p: Participant, ctx: VersionContext) -> None:
        """Mark an open session past its idle or total limit 'abandoned' (Prolific ids cleared)."""
        limit = self._limits_passed(p, ctx.spec.time_limits) if p.status in OPEN else None
        if limit:
            p.status, p.prolific_pid, p.prolific_session_id = "abandoned", None, None
            s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="abandoned",
                        at=self.clock(), detail={"limit": limit}))

    def _open(self, s: Session, token: str) -> tuple[Participant, VersionContext]:
        p = self._participant(s, token)
        ctx = self._context(s, p.study_version_id)
        self._expire(s, p, ctx)
        return p, ctx

    @staticmethod
    def _info(p: Participant, ctx: VersionContext, token: str, resumed: bool) -> SessionInfo:
        return SessionInfo(token, p.id, ctx.spec.id, ctx.version, p.condition, p.status, p.n_steps,
                           p.current_step, resumed, ctx.spec.protocol.name, ctx.spec.title)

    def _new_token(self, s: Session, participant_id: str) -> str:
        token = secrets.token_urlsafe(32)
        s.add(Token(token_hash=_hash(token), participant_id=participant_id, created_at=self.clock()))
        return token

    # ------------------------------------------------------------------ API
    @_db_guard
    def start(self, study: str, prolific_pid: str | None = None, study_id: str | None = None,
              session_id: str | None = None, client: str | None = None) -> SessionInfo:
        """Enter the active version of `study` (a slug).

        With a Prolific PID seen before: the open session resumes (a new token; earlier tokens
        stay valid) only if `session_id` equals the SESSION_ID it started with, else
        `SessionMismatch`; a finished, withdrawn, declined or timed-out one gives
        `AlreadyParticipated`. A new session needs a live study (`StudyUnavailable`), a PID unless
        the spec allows anonymous sessions, a free slot (`StudyFull` counts consented sessions)
        and, with a `client` key (e.g. the browser's IP address; stored only as a keyed hash),
        at most `recruitment.max_starts_per_client` new sessions per 10 minutes (`TooManyStarts`).
        Assignment: least-assigned condition; sessions past a time limit are reclaimed first.
        The whole schedule is stored before returning."""
        pid = _check_pid(prolific_pid)
        sid, sess = _check_id("STUDY_ID", study_id), _check_id("SESSION_ID", session_id)
        client_key = _check_client(client)
        version = get_version(self.db, study)
        try:
            with self._tx() as s:
                return self._start(s, version.id, pid, sid, sess, client_key)
        except IntegrityError:  # the same PID raced in from another process: resume it
            with self._tx() as s:
                return self._start(s, version.id, pid, sid, sess, client_key)

    def _start(self, s: Session, version_id: int, pid: str | None, sid: str | None, sess: str | None,
               client: str | None) -> SessionInfo:
        # FOR NO KEY UPDATE: serialises starts of this version across processes, yet does not block
        # the FOR KEY SHARE locks that foreign-key checks of concurrent submits take on this row
        # (plain FOR UPDATE deadlocked against a submit holding its participant row).
        v = s.scalar(select(StudyVersion).where(StudyVersion.id == version_id).with_for_update(key_share=True))
        study = s.get(Study, v.study_id)
        ctx = self._context(s, v.id)
        hashed = pid_hash(study.slug, pid) if pid is not None else None
        if hashed is not None:
            old = s.scalar(select(Participant).where(Participant.study_id == v.study_id, Participant.pid_hash == hashed)
                           .with_for_update(key_share=True))
            if old is not None:
                return self._resume_by_link(s, old, sess)
        if pid is None and not ctx.spec.recruitment.allow_anonymous:
            raise InvalidInput("This study can only be taken from its Prolific link (PROLIFIC_PID is missing).")
        if study.status != "live":
            raise StudyUnavailable(_UNAVAILABLE.get(study.status, "This study is not taking new participants."),
                                   study.status)
        self._limit_client(s, study, ctx.spec.recruitment.max_starts_per_client, client)
        self._reclaim(s, v.id, ctx.spec.time_limits)
        condition = self._assign(s, v.id, ctx)
        seed = secrets.randbits(63)
        steps = build_schedule(ctx.spec, ctx.items, condition, seed)
        now = self.clock()
        p = Participant(id=str(uuid.uuid4()), study_id=v.study_id, study_version_id=v.id, prolific_pid=pid,
                        pid_hash=hashed, prolific_study_id=sid, prolific_session_id=sess, seed=seed,
                        condition=condition, status="started", current_step=0, n_steps=len(steps), started_at=now,
                        last_activity_at=now, flags={})
        s.add(p)
        s.flush()
        token = self._new_token(s, p.id)
        s.add_all([Step(participant_id=p.id, index=i, kind=st.kind, payload=st.payload) for i, st in enumerate(steps)])
        return self._info(p, ctx, token, False)

    def _resume_by_link(self, s: Session, old: Participant, sess: str | None) -> SessionInfo:
        """A known PID came back: resume its open session if the SESSION_ID matches."""
        ctx = self._context(s, old.study_version_id)
        self._expire(s, old, ctx)
        if old.status not in OPEN:
            raise _AfterCommit(AlreadyParticipated(
                "You have already taken part in this study (it can be taken only once). Thank you!"))
        stored = old.prolific_session_id
        if sess is None or stored is None or not hmac.compare_digest(stored.encode(), sess.encode()):
            raise SessionMismatch("You already have a session open in this study. Please continue it in the "
                                  "browser where you started, or reopen the study from the same Prolific submission.")
        return self._info(old, ctx, self._new_token(s, old.id), True)

    def _limit_client(self, s: Session, study: Study, limit: int | None, client: str | None) -> None:
        """Count this new session against the client's limit (rows older than the window pruned)."""
        if client is None or limit is None:
            return
        now = self.clock()
        cutoff = now - START_WINDOW
        s.execute(delete(StartAttempt).where(StartAttempt.study_id == study.id, StartAttempt.at < cutoff))
        key = client_hash(study.slug, client)
        n = s.scalar(select(func.count()).select_from(StartAttempt).where(
            StartAttempt.study_id == study.id, StartAttempt.client_hash == key, StartAttempt.at >= cutoff))
        if n >= limit:
            raise TooManyStarts("Too many new sessions were started from this device or network just now. "
                                "Please wait a few minutes and try again.")
        s.add(StartAttempt(study_id=study.id, client_hash=key, at=now))

    def _assign(self, s: Session, version_id: int, ctx: VersionContext) -> str:
        """The least-assigned condition among those with free slots (ties broken at random)."""
        rec = ctx.spec.recruitment
        rows = s.execute(select(Participant.condition, Participant.status, func.count()).where(
            Participant.study_version_id == version_id, Participant.status.in_(ASSIGNED))
            .group_by(Participant.condition, Participant.status)).all()
        assigned: dict[str, int] = {}
        filled: dict[str, int] = {}
        for cond, status, n in rows:
            assigned[cond] = assigned.get(cond, 0) + n
            if status in FILLED:
                filled[cond] = filled.get(cond, 0) + n
        conds = conditions(ctx.spec)
        if rec.stop_when_full:
            conds = [c for c in conds if filled.get(c, 0) < rec.target_per_condition]
            if not conds:
                raise StudyFull("This study has all the participants it needs. Thank you for your interest.")
        low = min(assigned.get(c, 0) for c in conds)
        tied = [c for c in conds if assigned.get(c, 0) == low]
        return tied[int(np.random.default_rng(secrets.randbits(63)).integers(len(tied)))]

    def _reclaim(self, s: Session, version_id: int, limits: TimeLimits) -> None:
        now = self.clock()
        stale = s.scalars(select(Participant.id).where(
            Participant.study_version_id == version_id, Participant.status.in_(OPEN),
            or_(Participant.last_activity_at < now - timedelta(minutes=limits.session_minutes),
                Participant.started_at < now - timedelta(minutes=limits.total_minutes)))).all()
        if stale:
            s.execute(update(Participant).where(Participant.id.in_(stale)).values(
                status="abandoned", prolific_pid=None, prolific_session_id=None))
            s.add_all([Event(study_version_id=version_id, participant_id=pid, kind="abandoned", at=now,
                             detail={"reclaimed": True}) for pid in stale])

    @_db_guard
    def resume(self, token: str) -> SessionInfo:
        """The session behind `token` (status tells whether it is still open)."""
        with self._tx() as s:
            p, ctx = self._open(s, token)
            return self._info(p, ctx, token, True)

    @_db_guard
    def consent(self, token: str, agree: bool) -> SessionInfo:
        """Record consent (status 'active') or its refusal (status 'declined', logged, Prolific ids
        cleared). `agree` must be a real boolean."""
        if not isinstance(agree, bool):
            raise InvalidInput("consent must be true or false")
        with self._tx() as s:
            p, ctx = self._open(s, token)
            now = self.clock()
            if p.status == "started" and agree:
                p.status, p.consented_at, p.last_activity_at = "active", now, now
            elif p.status == "started":
                p.status, p.last_activity_at, p.prolific_pid, p.prolific_session_id = "declined", now, None, None
                s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="declined", at=now,
                            detail={}))
            elif p.status != "active":
                raise _AfterCommit(_closed(p.status))
            return self._info(p, ctx, token, True)

    @_db_guard
    def current_step(self, token: str) -> StepView | None:
        """The step to show now (kind 'consent' before consent); None once every step is answered.
        The first call for a step starts its server-side clock."""
        with self._tx() as s:
            p, ctx = self._open(s, token)
            n_trials = ctx.spec.trials
            if p.status == "started":
                return StepView(-1, "consent", {"text": ctx.spec.consent, "title": ctx.spec.title}, p.n_steps, {},
                                n_trials)
            if p.status != "active":
                raise _AfterCommit(_closed(p.status))
            if p.current_step >= p.n_steps:
                return None
            step = s.get(Step, (p.id, p.current_step))
            if step.shown_at is None:
                step.shown_at = self.clock()
            content = step.payload["content"]
            number = int(content.get("position", 0)) + 1 if step.kind == "trial" else None
            assets = step_assets(ctx.stimuli_dir, _allowed(ctx), content)
            return StepView(step.index, step.kind, content, p.n_steps, assets, n_trials, number)

    @_db_guard
    def submit(self, token: str, step_index: int, answer: dict[str, Any]) -> SubmitResult:
        """Store the answer to step `step_index`, committed before returning. A repeat of an
        already stored answer returns stored=False and changes nothing; a different answer to an
        answered step, or an answer to a later step, raises `InvalidAnswer`."""
        if isinstance(step_index, bool) or not isinstance(step_index, int):
            raise InvalidAnswer("step_index must be an integer")
        check_plain_answer(answer)
        with self._tx() as s:
            p, ctx = self._open(s, token)
            if p.status == "started":
                raise InvalidAnswer("consent first")
            if p.status != "active" and not (p.status in ("completed", "screened_out") and step_index < p.current_step):
                raise _AfterCommit(_closed(p.status))
            if not 0 <= step_index < p.n_steps:
                raise InvalidAnswer(f"step_index must be from 0 to {p.n_steps - 1}")
            if step_index > p.current_step:
                raise InvalidAnswer(f"step {step_index} is not the current step ({p.current_step})")
            step = s.get(Step, (p.id, step_index))
            parsed = self._validate(ctx, step, answer)
            feedback = _feedback(step)
            if step_index < p.current_step:
                prior = s.scalar(select(Response).where(Response.participant_id == p.id,
                                                        Response.step_index == step_index))
                if prior is None or prior.answer != parsed:
                    raise InvalidAnswer("this step is already answered; answers cannot be changed")
                return SubmitResult(step_index, False, prior.correct if feedback else None, feedback,
                                    p.current_step >= p.n_steps)
            now = self.clock()
            correct, score = self._score(ctx, step, parsed)
            started = step.shown_at or p.last_activity_at
            s.add(Response(participant_id=p.id, study_version_id=p.study_version_id, step_index=step_index,
                           kind=step.kind, answer=parsed, correct=correct, score=score,
                           rt_ms=max(0.0, (now - started).total_seconds() * 1000), submitted_at=now))
            p.current_step += 1
            p.last_activity_at = now
            shown = correct if feedback else None
            if step.kind == "quiz" and ctx.spec.quiz.screen_out and self._quiz_over(s, p, step_index):
                code = self._screen_out_if_failed(s, p, ctx)
                if code is not None:
                    return SubmitResult(step_index, True, shown, feedback, True, True, code)
            return SubmitResult(step_index, True, shown, feedback, p.current_step >= p.n_steps)

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
        except (RecursionError, ValueError, TypeError):
            raise InvalidAnswer("the answer could not be read") from None

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
            if q["type"] == "likert" and (type(value) is not int or not 1 <= value <= q["scale"]):
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
        p.prolific_pid = p.prolific_session_id = None
        p.completion_code = ctx.spec.recruitment.screenout_code or ""
        p.flags = {"failed_quiz": {"share_correct": round(share, 3), "pass_mark": ctx.spec.quiz.pass_mark}}
        s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="screened_out",
                    at=self.clock(), detail=p.flags))
        return p.completion_code

    @_db_guard
    def finish(self, token: str) -> FinishResult:
        """Close a session whose steps are all answered: quality flags (stored for researchers,
        not returned), status 'completed', the completion code (and Prolific's redirect URL).
        Idempotent for a completed session."""
        with self._tx() as s:
            p, ctx = self._open(s, token)
            if p.status in ("completed", "screened_out"):
                return self._finished(p, ctx)
            if p.status != "active":
                raise _AfterCommit(_closed(p.status))
            if p.current_step < p.n_steps:
                raise InvalidAnswer(f"{p.n_steps - p.current_step} step(s) still unanswered")
            rows = s.execute(select(Response, Step).join(Step, (Step.participant_id == Response.participant_id)
                                                         & (Step.index == Response.step_index))
                             .where(Response.participant_id == p.id).order_by(Response.step_index)).all()
            records = [{"kind": r.kind, "correct": r.correct, "rt_ms": r.rt_ms, "answer": r.answer,
                        "content": st.payload["content"]} for r, st in rows]
            flags = quality_flags(ctx.spec, records)
            reasons = exclusion_reasons(ctx.spec, flags)
            now = self.clock()
            p.flags = {**flags, "excluded": reasons}
            p.status, p.finished_at, p.last_activity_at = "completed", now, now
            p.completion_code = ctx.spec.recruitment.completion_code
            p.prolific_session_id = None
            if reasons:
                s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="flagged",
                            at=now, detail={"excluded": reasons}))
            return self._finished(p, ctx)

    @staticmethod
    def _finished(p: Participant, ctx: VersionContext) -> FinishResult:
        code = p.completion_code or ""
        url = (f"https://app.prolific.com/submissions/complete?cc={code}"
               if p.pid_hash and ctx.spec.recruitment.platform == "prolific" and code else None)
        return FinishResult(code, p.status, url)

    @_db_guard
    def withdraw(self, token: str) -> None:
        """Delete the participant's answers, schedule, events and Prolific ids, and redact the
        row (seed, condition, progress, times, flags). What remains is a tombstone: status
        'withdrawn', the version, the day of withdrawal, and the keyed PID hash so that the same
        Prolific participant cannot enter the study again."""
        with self._tx() as s:
            self._redact(s, self._participant(s, token))

    def withdraw_by_pid(self, study: str, prolific_pid: str) -> str:
        """The researcher's door to the same withdrawal, for a participant who asks by message
        (Prolific passes their id): returns the withdrawn participant_id; `NotFound` if this study
        has nobody with that id."""
        pid = _check_pid(prolific_pid)
        if pid is None:
            raise InvalidInput("a Prolific id is needed")
        with self._tx() as s:
            row = s.scalar(select(Study).where(Study.slug == study))
            p = None if row is None else s.scalar(
                select(Participant).where(Participant.study_id == row.id, Participant.pid_hash == pid_hash(study, pid))
                .with_for_update(key_share=True))
            if p is None:
                raise NotFound(f"nobody with this Prolific id took part in study {study!r}")
            self._redact(s, p)
            return p.id

    def _redact(self, s: Session, p: Participant) -> None:
        if p.status == "withdrawn":
            return
        s.execute(delete(Response).where(Response.participant_id == p.id))
        s.execute(delete(Step).where(Step.participant_id == p.id))
        s.execute(delete(Event).where(Event.participant_id == p.id))
        day = _day(self.clock())
        s.add(Event(study_version_id=p.study_version_id, participant_id=p.id, kind="withdrawn", at=day, detail={}))
        p.status, p.prolific_pid, p.prolific_study_id, p.prolific_session_id = "withdrawn", None, None, None
        p.seed, p.condition, p.current_step, p.n_steps = 0, "", 0, 0
        p.started_at = p.last_activity_at = day
        p.consented_at = p.finished_at = None
        p.flags, p.completion_code = {}, None

def _allowed(ctx: VersionContext) -> dict[str, str]:
    """The readable files of a version's stimuli (cached per manifest object)."""
    entry = _allowed_cache.get(id(ctx.manifest))
    if entry is None or entry[0] is not ctx.manifest:
        entry = _allowed_cache[id(ctx.manifest)] = (ctx.manifest, allowed_files(ctx.manifest))
    return entry[1]


_contexts: dict[tuple[str, int], VersionContext] = {}
_allowed_cache: dict[int, tuple[Any, dict[str, str]]] = {}
_default: Runtime | None = None


def default_runtime() -> Runtime:
    """A process-wide `Runtime` on the default database (`DATABASE_URL` or the SQLite file),
    connected on first use."""
    global _default
    if _default is None:
        _default = Runtime()
    return _default

"""SQLAlchemy 2 tables. Every participant and response row points to a frozen study version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the study schema."""


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime())
    #: live | paused | closed: only a live study takes new participants (`study.versions.set_status`).
    status: Mapped[str] = mapped_column(String(16), default="live")


class StudyVersion(Base):
    __tablename__ = "study_versions"
    __table_args__ = (
        UniqueConstraint("study_id", "version"),
        UniqueConstraint("study_id", "config_sha256"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    config_json: Mapped[str] = mapped_column(Text)
    config_sha256: Mapped[str] = mapped_column(String(64))
    spec_yaml: Mapped[str] = mapped_column(Text)
    stimuli_dir: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime())


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "pid_hash"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    study_version_id: Mapped[int] = mapped_column(ForeignKey("study_versions.id"), index=True)
    #: raw Prolific id: kept only for finished participants (approval and bonus files)
    prolific_pid: Mapped[str | None] = mapped_column(String(64))
    #: keyed hash of the Prolific id (`study.keys.pid_hash`): blocks re-entry, never exported
    pid_hash: Mapped[str | None] = mapped_column(String(64))
    prolific_study_id: Mapped[str | None] = mapped_column(String(64))
    #: Prolific SESSION_ID: kept while the session is open (resume by Prolific link)
    prolific_session_id: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    condition: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    n_steps: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime())
    consented_at: Mapped[datetime | None] = mapped_column(DateTime())
    last_activity_at: Mapped[datetime] = mapped_column(DateTime())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime())
    completion_code: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Token(Base):
    """A resume token (sha256 of it); a participant may hold several (one per device or reopening)."""

    __tablename__ = "participant_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    participant_id: Mapped[str] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime())


class StartAttempt(Base):
    """A new session started from one client (keyed hash), for per-client rate limits; pruned."""

    __tablename__ = "start_attempts"
    __table_args__ = (Index("ix_start_attempts_lookup", "study_id", "client_hash", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    client_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime())


class Step(Base):
    """One step of a participant's schedule, stored before the first trial."""

    __tablename__ = "steps"
    participant_id: Mapped[str] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    shown_at: Mapped[datetime | None] = mapped_column(DateTime())


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("participant_id", "step_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    study_version_id: Mapped[int] = mapped_column(ForeignKey("study_versions.id"), index=True)
    step_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    score: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rt_ms: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[datetime] = mapped_column(DateTime())


class Event(Base):
    """Audit log (withdrawals, reclaimed sessions, exclusions); never points at deleted rows by FK."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_version_id: Mapped[int] = mapped_column(Integer, index=True)
    participant_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class StudyDraft(Base):
    """A study spec being prepared (before launch, or the next version of a launched study)."""

    __tablename__ = "study_drafts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    yaml_text: Mapped[str] = mapped_column(Text)
    #: folder that relative image paths resolve against
    base_dir: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class PrecomputeJob(Base):
    """A background stimulus build (`study.jobs`): its progress, heartbeat, timings and outcome.

    `active_slug` equals `slug` while the job is queued or running and is NULL once it ended; its
    unique constraint lets only one job per study be active, across processes and hosts.
    """

    __tablename__ = "precompute_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), index=True)
    active_slug: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: queued | running | done | failed | cancelled
    state: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))  # "draft" or "version N"
    stimuli_dir: Mapped[str | None] = mapped_column(Text)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # found already stored
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    #: the worker process's start time (Linux clock ticks since boot) against pid reuse
    proc_start: Mapped[str | None] = mapped_column(String(32))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(Text)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime())
    started_at: Mapped[datetime | None] = mapped_column(DateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime())
    progress_at: Mapped[datetime | None] = mapped_column(DateTime())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime())

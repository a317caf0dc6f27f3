"""participant safety: key outside the database, several tokens, rate limits, study status

- ``studies.secret`` is dropped: the HMAC key now lives outside the database (``study.keys``:
  ``$CONVIS_PID_KEY`` or ``<data dir>/secrets/pid_hmac.key``) and per-study keys are derived
  from it and the slug. ``pid_hash = HMAC-SHA256(per-study key, PID)``.
- Existing PID hashes are recomputed from the raw PID where the row still has one (open and
  finished sessions). Rows whose raw PID was already deleted (withdrawals, and the decliners,
  abandoned and screened-out sessions cleared below) cannot be re-keyed: an HMAC cannot be
  inverted and the old secret goes with its column. Their ``pid_hash`` is set to NULL, so those
  people are no longer recognised by this database (Prolific's own "one submission per study"
  rule still holds); everyone else keeps the re-entry check and resume by Prolific link.
- Raw Prolific ids are cleared where no file needs them: on declined, abandoned, screened-out
  and withdrawn sessions; SESSION_IDs on every closed session.
- Withdrawals made earlier are redacted like new ones: seed, condition, progress, times, flags
  and the events derived from the deleted answers; a tombstone event ("withdrawn") remains.
- ``participants.token_hash`` moves to ``participant_tokens`` (several tokens per participant:
  reopening a study from the same Prolific link no longer invalidates the first token).
- ``start_attempts`` (keyed client hash, time) for per-client limits on new sessions.
- ``studies.status``: live | paused | closed (existing studies: live).

Frozen study versions are never rewritten: a Prolific study launched before this revision froze
the old default ``allow_anonymous: true`` and keeps allowing anonymous sessions until it is
launched again (the new default is false for platform prolific). Its new time and start limits
(``total_minutes`` 120, ``max_starts_per_client`` 5) apply at once, as defaults of fields it lacks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HEX24 = re.compile(r"[0-9a-fA-F]{24}")
_studies = sa.table("studies", sa.column("id", sa.Integer), sa.column("slug", sa.String),
                    sa.column("secret", sa.String))
_parts = sa.table("participants", *(sa.column(c) for c in (
    "id", "study_id", "prolific_pid", "pid_hash", "prolific_session_id", "status", "token_hash")),
    sa.column("started_at", sa.DateTime))
_tokens = sa.table("participant_tokens", sa.column("token_hash", sa.String), sa.column("participant_id", sa.String),
                   sa.column("created_at", sa.DateTime))
_events = sa.table("events", sa.column("participant_id", sa.String), sa.column("kind", sa.String),
                   sa.column("detail", sa.JSON))
_CLEAR_PID = ("declined", "abandoned", "screened_out", "withdrawn")


def _day(t: datetime | None) -> datetime:
    t = t or datetime(1970, 1, 1)
    return datetime(t.year, t.month, t.day)


def upgrade() -> None:
    """See the module docstring."""
    conn = op.get_bind()
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="live"))
    op.create_table(
        "participant_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("participant_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_participant_tokens_participant_id", "participant_tokens", ["participant_id"])
    op.create_table(
        "start_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_start_attempts_lookup", "start_attempts", ["study_id", "client_hash", "at"])
    conn.execute(_tokens.insert().from_select(
        ["token_hash", "participant_id", "created_at"],
        sa.select(_parts.c.token_hash, _parts.c.id, _parts.c.started_at)))
    _rekey_and_clear(conn)
    _redact_withdrawals(conn)
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("token_hash")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("secret")


def _rekey_and_clear(conn: sa.Connection) -> None:
    slugs = dict(conn.execute(sa.select(_studies.c.id, _studies.c.slug)).all())
    rows = conn.execute(sa.select(_parts.c.id, _parts.c.study_id, _parts.c.prolific_pid)
                        .where(_parts.c.pid_hash.is_not(None))).all()
    if rows:
        from study.keys import pid_hash

        for pid, study_id, raw in rows:
            raw = raw.lower() if raw and _HEX24.fullmatch(raw) else raw
            new = pid_hash(slugs[study_id], raw) if raw else None
            conn.execute(_parts.update().where(_parts.c.id == pid).values(pid_hash=new))
    conn.execute(_parts.update().where(_parts.c.status.in_(_CLEAR_PID)).values(prolific_pid=None))
    conn.execute(_parts.update().where(_parts.c.status.not_in(("started", "active")))
                 .values(prolific_session_id=None))


def _redact_withdrawals(conn: sa.Connection) -> None:
    full = sa.table("participants", *(sa.column(c) for c in (
        "id", "status", "seed", "condition", "current_step", "n_steps", "completion_code", "prolific_study_id")),
        *(sa.column(c, sa.DateTime) for c in ("started_at", "consented_at", "last_activity_at", "finished_at")),
        sa.column("flags", sa.JSON))
    rows = conn.execute(sa.select(full.c.id, full.c.last_activity_at).where(full.c.status == "withdrawn")).all()
    for pid, last in rows:
        day = _day(last)
        conn.execute(full.update().where(full.c.id == pid).values(
            seed=0, condition="", current_step=0, n_steps=0, started_at=day, consented_at=None,
            last_activity_at=day, finished_at=None, completion_code=None, flags={}, prolific_study_id=None))
        conn.execute(_events.delete().where(_events.c.participant_id == pid, _events.c.kind != "withdrawn"))
        conn.execute(_events.update().where(_events.c.participant_id == pid).values(detail={}))


def downgrade() -> None:
    """Back to per-study secrets in the database. Hashes are recomputed with a new secret where a
    raw PID is stored and set to NULL elsewhere; each participant keeps one (its oldest) token;
    rate-limit rows and the study status are dropped; redactions stay."""
    conn = op.get_bind()
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=64), nullable=True))
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
    for (study_id,) in conn.execute(sa.select(_studies.c.id)).all():
        secret = secrets.token_hex(32)
        conn.execute(_studies.update().where(_studies.c.id == study_id).values(secret=secret))
        rows = conn.execute(sa.select(_parts.c.id, _parts.c.prolific_pid).where(_parts.c.study_id == study_id)).all()
        for pid, raw in rows:
            digest = hashlib.sha256(f"{study_id}:{raw}".encode()).hexdigest()
            new = hmac.new(bytes.fromhex(secret), digest.encode(), hashlib.sha256).hexdigest() if raw else None
            conn.execute(_parts.update().where(_parts.c.id == pid).values(pid_hash=new))
    for (pid,) in conn.execute(sa.select(_parts.c.id)).all():
        tok = conn.execute(sa.select(_tokens.c.token_hash).where(_tokens.c.participant_id == pid)
                           .order_by(_tokens.c.created_at).limit(1)).scalar()
        conn.execute(_parts.update().where(_parts.c.id == pid).values(
            token_hash=tok or hashlib.sha256(secrets.token_bytes(32)).hexdigest()))
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.alter_column("token_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_participants_token_hash", ["token_hash"])
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("status")
    op.drop_index("ix_start_attempts_lookup", table_name="start_attempts")
    op.drop_table("start_attempts")
    op.drop_index("ix_participant_tokens_participant_id", table_name="participant_tokens")
    op.drop_table("participant_tokens")

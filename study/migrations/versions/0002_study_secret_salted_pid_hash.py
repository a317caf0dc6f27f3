"""per-study secret; Prolific PID hashes become HMACs keyed by it

Before this revision ``participants.pid_hash`` was ``sha256("<study_id>:<PID>")``: anyone holding a
copy of the table and a known PID could find that person's row. Now every study has a random
``secret`` and ``pid_hash = HMAC-SHA256(secret, sha256("<study_id>:<PID>"))``. Because the HMAC is
taken over the old digest, existing rows (withdrawal tombstones included, whose PID is already
deleted) are converted in place and the "a PID cannot take a study twice" rule still holds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _hmac(secret: str, digest: str) -> str:
    return hmac.new(bytes.fromhex(secret), digest.encode(), hashlib.sha256).hexdigest()


def upgrade() -> None:
    """Add `studies.secret` and re-key every stored PID hash with it."""
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    studies = sa.table("studies", sa.column("id", sa.Integer), sa.column("secret", sa.String))
    parts = sa.table("participants", sa.column("id", sa.String), sa.column("study_id", sa.Integer),
                     sa.column("pid_hash", sa.String))
    for (study_id,) in conn.execute(sa.select(studies.c.id)).all():
        secret = secrets.token_hex(32)
        conn.execute(studies.update().where(studies.c.id == study_id).values(secret=secret))
        rows = conn.execute(sa.select(parts.c.id, parts.c.pid_hash).where(
            parts.c.study_id == study_id, parts.c.pid_hash.is_not(None))).all()
        for pid, old in rows:
            conn.execute(parts.update().where(parts.c.id == pid).values(pid_hash=_hmac(secret, old)))
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    """Drop the secret. The keyed hashes cannot be turned back: re-entry checks are lost."""
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("secret")

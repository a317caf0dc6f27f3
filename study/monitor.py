"""Read-only queries of the Monitor page: a `Snapshot` of one study version in five small queries,
and `data_version`, a cheap fingerprint that changes whenever the version's data does.

Nothing here writes, and nothing names a participant by Prolific id: people appear by the first
characters of their opaque participant id (`short_id`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from study.db import Database
from study.design import conditions
from study.errors import NotFound
from study.models import Event, Participant, Response, Study, StudyVersion
from study.runtime import FILLED, OPEN
from study.spec import FLAGS
from study.versions import utcnow, version_context

RECENT = 20      # activity lines in a snapshot
LIVE = 50        # open sessions listed in a snapshot


def short_id(participant_id: str | None) -> str:
    """The first 8 characters of an opaque participant id (enough to tell people apart on screen)."""
    return (participant_id or "")[:8] or "—"


@dataclass(frozen=True)
class Activity:
    """One line of recent activity."""

    at: datetime
    kind: str           # started | consented | completed | declined | screened_out | abandoned | flagged | withdrawn
    participant: str    # short opaque id
    detail: str = ""


@dataclass(frozen=True)
class LiveSession:
    """An open session: where it is and how long it has been idle."""

    participant: str
    condition: str
    status: str
    step: int
    n_steps: int
    idle_s: float
    past_limit: bool    # idle or total limit passed: reclaimed at the next start


@dataclass(frozen=True)
class Snapshot:
    """What the Monitor page draws for one study version."""

    version_id: int
    slug: str
    version: int
    title: str
    study_status: str                      # live | paused | closed
    protocol: str
    conditions: list[str]
    target_per_condition: int
    counts: dict[str, dict[str, int]]      # condition -> status -> participants ('' = withdrawn, redacted)
    filled: dict[str, int]                 # condition -> consented sessions (active + completed)
    consort: dict[str, Any]
    flags: dict[str, int]                  # flag -> completed participants carrying it
    excluded: int                          # completed participants excluded by the spec's rules
    exclude_rules: list[str]
    trials_answered: int
    rt_median_ms: float | None
    rt_p90_ms: float | None
    rt_by_condition: dict[str, float]      # condition -> median trial time (ms)
    timed_out: dict[str, int]              # abandoned sessions by cause: idle, total, reclaimed
    recent: list[Activity]
    live: list[LiveSession]
    data_version: tuple[Any, ...]
    taken_at: datetime = field(default_factory=utcnow)


def data_version(db: Database, version_id: int) -> tuple[Any, ...]:
    """A fingerprint of the version's data in one query: responses (count, max id), events (count,
    max id), participants (count, latest activity). Any answer, status change or log line moves it."""
    with db.session() as s:
        return _fingerprint(s.connection(), version_id)


def _fingerprint(conn: Connection, version_id: int) -> tuple[Any, ...]:
    r, e, p = Response, Event, Participant
    row = conn.execute(select(
        select(func.count(r.id)).where(r.study_version_id == version_id).scalar_subquery(),
        select(func.max(r.id)).where(r.study_version_id == version_id).scalar_subquery(),
        select(func.count(e.id)).where(e.study_version_id == version_id).scalar_subquery(),
        select(func.max(e.id)).where(e.study_version_id == version_id).scalar_subquery(),
        select(func.count(p.id)).where(p.study_version_id == version_id).scalar_subquery(),
        select(func.max(p.last_activity_at)).where(p.study_version_id == version_id).scalar_subquery(),
    )).one()
    return tuple(str(x) if isinstance(x, datetime) else x for x in row)


def snapshot(db: Database, version_id: int, now: datetime | None = None) -> Snapshot:
    """Counts, flow, flags, trial times, time-outs, recent activity and open sessions of a version."""
    now = now or utcnow()
    with db.session() as s:
        row = s.execute(select(StudyVersion, Study).join(Study, Study.id == StudyVersion.study_id)
                        .where(StudyVersion.id == version_id)).first()
        if row is None:
            raise NotFound(f"no study version {version_id}")
        v, st = row
        ctx = version_context(db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version)
        conn = s.connection()  # plain rows: no ORM bookkeeping for thousands of answers
        parts = conn.execute(select(
            Participant.id, Participant.condition, Participant.status, Participant.started_at,
            Participant.consented_at, Participant.finished_at, Participant.last_activity_at,
            Participant.current_step, Participant.n_steps, Participant.flags,
        ).where(Participant.study_version_id == version_id)).all()
        rts = conn.execute(select(Response.participant_id, Response.rt_ms).where(
            Response.study_version_id == version_id, Response.kind == "trial")).all()
        events = conn.execute(select(Event.kind, Event.at, Event.participant_id, Event.detail)
                           .where(Event.study_version_id == version_id)
                           .order_by(Event.at.desc(), Event.id.desc()).limit(RECENT)).all()
        abandoned = conn.scalars(select(Event.detail).where(Event.study_version_id == version_id,
                                                         Event.kind == "abandoned")).all()
        fingerprint = _fingerprint(conn, version_id)
    spec = ctx.spec
    conds = conditions(spec)
    counts: dict[str, dict[str, int]] = {c: {} for c in conds}
    filled = dict.fromkeys(conds, 0)
    flags = dict.fromkeys(FLAGS, 0)
    excluded = 0
    for p in parts:
        counts.setdefault(p.condition, {})
        counts[p.condition][p.status] = counts[p.condition].get(p.status, 0) + 1
        if p.status in FILLED:
            filled[p.condition] = filled.get(p.condition, 0) + 1
        if p.status == "completed":
            f = p.flags or {}
            for k in f:
                if k != "excluded":
                    flags[k] = flags.get(k, 0) + 1
            excluded += bool(f.get("excluded"))
    cond_of = {p.id: p.condition for p in parts}
    rt = np.array([x.rt_ms for x in rts], dtype=float)
    by_cond: dict[str, list[float]] = {}
    for x in rts:
        by_cond.setdefault(cond_of.get(x.participant_id, ""), []).append(x.rt_ms)
    return Snapshot(
        version_id=v.id, slug=st.slug, version=v.version, title=st.title, study_status=st.status,
        protocol=spec.protocol.name, conditions=conds, target_per_condition=spec.recruitment.target_per_condition,
        counts=counts, filled=filled, consort=_flow(parts), flags=flags, excluded=excluded,
        exclude_rules=list(spec.quality.exclude), trials_answered=len(rt),
        rt_median_ms=float(np.median(rt)) if len(rt) else None,
        rt_p90_ms=float(np.percentile(rt, 90)) if len(rt) else None,
        rt_by_condition={c: float(np.median(x)) for c, x in sorted(by_cond.items())},
        timed_out=_timeouts(abandoned), recent=_recent(parts, events),
        live=_live(parts, now, spec.time_limits.session_minutes, spec.time_limits.total_minutes),
        data_version=fingerprint, taken_at=now)


def _flow(parts: list[Any]) -> dict[str, Any]:
    """The numbers of `study.analysis.consort`, counted over the rows already fetched (the pandas
    version costs more than the queries on a study this size; a test keeps the two equal)."""

    def flow(rows: list[Any]) -> dict[str, Any]:
        status = [p.status for p in rows]
        done = [p for p in rows if p.status == "completed"]
        reasons: dict[str, int] = {}
        for p in done:
            for x in (p.flags or {}).get("excluded", []):
                reasons[x] = reasons.get(x, 0) + 1
        excluded = sum(bool((p.flags or {}).get("excluded")) for p in done)
        return {"started": len(rows), "consented": sum(p.consented_at is not None for p in rows),
                "declined": status.count("declined"), "withdrawn": status.count("withdrawn"),
                "abandoned": status.count("abandoned"), "screened_out": status.count("screened_out"),
                "in_progress": status.count("started") + status.count("active"),
                "completed": len(done), "excluded": excluded, "excluded_by_reason": reasons,
                "analysed": len(done) - excluded}

    out = flow(parts)
    out["withdrawals_logged"] = out["withdrawn"]  # one event per withdrawal, the only one it keeps
    groups: dict[str, list[Any]] = {}
    for p in parts:
        if p.condition:  # withdrawn rows are redacted to ''
            groups.setdefault(p.condition, []).append(p)
    out["by_condition"] = {c: flow(g) for c, g in sorted(groups.items())}
    return out


def _timeouts(details: list[dict[str, Any]]) -> dict[str, int]:
    out = {"idle": 0, "total": 0, "reclaimed": 0}
    for d in details:
        key = "reclaimed" if (d or {}).get("reclaimed") else (d or {}).get("limit", "idle")
        out[key] = out.get(key, 0) + 1
    return out


def _recent(parts: list[Any], events: list[Any]) -> list[Activity]:
    """The latest RECENT lines from the participants' milestones and the event log."""
    lines = [Activity(e.at, e.kind, short_id(e.participant_id), _detail(e.kind, e.detail)) for e in events]
    for p in parts:
        if p.status == "withdrawn":
            continue  # redacted: only the withdrawal event remains
        lines.append(Activity(p.started_at, "started", short_id(p.id), p.condition))
        if p.consented_at:
            lines.append(Activity(p.consented_at, "consented", short_id(p.id), p.condition))
        if p.finished_at and p.status == "completed":
            lines.append(Activity(p.finished_at, "completed", short_id(p.id), p.condition))
    lines.sort(key=lambda a: a.at, reverse=True)
    return lines[:RECENT]


def _detail(kind: str, detail: dict[str, Any] | None) -> str:
    d = detail or {}
    if kind == "abandoned":
        return "reclaimed" if d.get("reclaimed") else f"{d.get('limit', 'idle')} limit"
    if kind == "flagged":
        return "excluded: " + ", ".join(d.get("excluded", []))
    if kind == "screened_out":
        return "failed quiz" if "failed_quiz" in d else ""
    return ""


def _live(parts: list[Any], now: datetime, idle_min: float, total_min: float) -> list[LiveSession]:
    rows = sorted((p for p in parts if p.status in OPEN), key=lambda p: p.last_activity_at, reverse=True)
    return [LiveSession(short_id(p.id), p.condition, p.status, p.current_step, p.n_steps,
                        max(0.0, (now - p.last_activity_at).total_seconds()),
                        (now - p.last_activity_at).total_seconds() > idle_min * 60
                        or (now - p.started_at).total_seconds() > total_min * 60)
            for p in rows[:LIVE]]

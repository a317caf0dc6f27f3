"""Tidy export: one row per response and per participant, codebook, frozen config and hash,
CSV + Parquet, and Prolific bonus/approval files.

The research files (responses, participants, events) carry no Prolific id: `participant_id` is
an opaque uuid. Raw Prolific ids appear only in the two Prolific files, for participants who
completed the study; `forget_prolific_ids` deletes them from the database once they are paid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select, update

from study.db import Database
from study.errors import NotFound
from study.models import Event, Participant, Response, Step, Study, StudyVersion
from study.versions import get_version, version_context

CODEBOOK: dict[str, str] = {
    "participant_id": "opaque participant id (uuid)",
    "study": "study slug", "version": "study version number", "config_sha256": "sha256 of the frozen config",
    "condition": "assigned condition: method, 'none' (no-explanation control), or Latin-square row 'L<r>'",
    "step_index": "position of the step in the participant's schedule (0-based)",
    "kind": "instructions | quiz | practice | trial | attention | questionnaire",
    "item": "image id of the trial", "method": "method shown ('none': no map; 'a+b': a pairwise pair)",
    "position": "trial position among main trials (0-based)",
    "answer": "the submitted answer (JSON)", "correct": "answer matches the model's ground truth (empty if unscored)",
    "score": "protocol score fields (JSON: ratings, or winner/loser for preferences)",
    "rt_ms": "server-measured time from showing the step to the answer (ms)",
    "submitted_at": "UTC time the answer was committed",
    "status": "started | active | completed | withdrawn | declined | abandoned | screened_out",
    "prolific_study_id": "Prolific STUDY_ID the participant came from (not a person's id)",
    "started_at": "UTC start of the session (withdrawn: the day of withdrawal)",
    "consented_at": "UTC time of consent", "finished_at": "UTC time the session was completed or screened out",
    "excluded": "excluded by the spec's exclusion rules", "exclusion_reasons": "flags that triggered exclusion",
    "flags": "all data-quality flags (JSON)", "accuracy": "share of correct main trials",
    "n_trials": "main trials answered",
    "bonus": "bonus owed: spec bonus.per_correct x correct main trials, for completed participants not "
             "excluded by the spec's exclusion rules (quality.exclude); 0 otherwise",
    "prolific_bonus.csv": "file for Prolific's bulk bonus: 'PID,amount' lines, no header; only completed "
                          "participants not excluded by the spec's exclusion rules, with a bonus above 0",
    "prolific_approvals.csv": "file for Prolific approvals: prolific_pid, decision (approve, or review if "
                              "excluded by the spec's exclusion rules), exclusion_reasons; completed participants",
}


PARTICIPANT_COLUMNS = ["participant_id", "study", "version", "condition", "status", "prolific_study_id",
                       "started_at", "consented_at", "finished_at", "n_trials", "accuracy", "excluded",
                       "exclusion_reasons", "flags", "bonus"]


def load_frames(db: Database, study: str, version: int | None = None) -> dict[str, Any]:
    """DataFrames of one version: 'responses', 'participants', 'events', plus 'config', 'sha256'."""
    info = get_version(db, study, version)
    with db.session() as s:
        v = s.get(StudyVersion, info.id)
        ctx = version_context(db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version)
        parts = s.scalars(select(Participant).where(Participant.study_version_id == v.id)).all()
        rows = s.execute(select(Response, Step).join(Step, (Step.participant_id == Response.participant_id)
                                                     & (Step.index == Response.step_index))
                         .where(Response.study_version_id == v.id)).all()
        events = s.scalars(select(Event).where(Event.study_version_id == v.id)).all()
        cond = {p.id: p.condition for p in parts}
        resp = pd.DataFrame([{
            "participant_id": r.participant_id, "study": info.slug, "version": info.version,
            "config_sha256": info.config_sha256, "condition": cond[r.participant_id],
            "step_index": r.step_index, "kind": r.kind, "item": st.payload.get("item"),
            "method": st.payload.get("arm"), "position": st.payload["content"].get("position"),
            "answer": json.dumps(r.answer, sort_keys=True), "correct": r.correct,
            "score": json.dumps(r.score, sort_keys=True) if r.score is not None else None,
            "rt_ms": r.rt_ms, "submitted_at": r.submitted_at} for r, st in rows], columns=[
            "participant_id", "study", "version", "config_sha256", "condition", "step_index", "kind", "item",
            "method", "position", "answer", "correct", "score", "rt_ms", "submitted_at"])
        resp = resp.sort_values(["participant_id", "step_index"]).reset_index(drop=True)
        resp["correct"] = resp["correct"].astype("boolean")
        trials = resp[resp.kind == "trial"]
        acc = trials.groupby("participant_id")["correct"].mean()
        n_correct = trials.groupby("participant_id")["correct"].sum()
        per_correct = ctx.spec.bonus.per_correct
        part = pd.DataFrame([{
            "participant_id": p.id, "study": info.slug, "version": info.version, "condition": p.condition,
            "status": p.status, "prolific_study_id": p.prolific_study_id, "started_at": p.started_at,
            "consented_at": p.consented_at, "finished_at": p.finished_at,
            "n_trials": int((trials.participant_id == p.id).sum()),
            "accuracy": float(acc.get(p.id)) if p.id in acc.index and pd.notna(acc.get(p.id)) else None,
            "excluded": bool((p.flags or {}).get("excluded")),
            "exclusion_reasons": ";".join((p.flags or {}).get("excluded", [])),
            "flags": json.dumps({k: v for k, v in (p.flags or {}).items() if k != "excluded"}, sort_keys=True),
            "bonus": (round(per_correct * float(n_correct.get(p.id, 0) or 0), 2)
                      if p.status == "completed" and not (p.flags or {}).get("excluded") else 0.0),
        } for p in parts], columns=PARTICIPANT_COLUMNS)
        ev = pd.DataFrame([{"participant_id": e.participant_id, "kind": e.kind, "at": e.at,
                            "detail": json.dumps(e.detail, sort_keys=True)} for e in events],
                          columns=["participant_id", "kind", "at", "detail"])
    return {"responses": resp, "participants": part, "events": ev, "config": ctx.config,
            "sha256": info.config_sha256, "spec": ctx.spec, "info": info}


def export_study(db: Database, study: str, out_dir: str | Path, version: int | None = None) -> dict[str, Path]:
    """Write responses/participants/events (.csv and .parquet), codebook.csv, config.json,
    config.sha256, prolific_bonus.csv (no header: 'PID,amount', Prolific's bulk-bonus format)
    and prolific_approvals.csv. Returns the written paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = load_frames(db, study, version)
    paths: dict[str, Path] = {}
    for name in ("responses", "participants", "events"):
        df = frames[name]
        df.to_csv(out / f"{name}.csv", index=False)
        df.to_parquet(out / f"{name}.parquet", index=False)
        paths[name] = out / f"{name}.csv"
        paths[f"{name}_parquet"] = out / f"{name}.parquet"
    cols = sorted(set(frames["responses"].columns) | set(frames["participants"].columns))
    cols += ["prolific_approvals.csv", "prolific_bonus.csv"]
    pd.DataFrame({"column": cols, "meaning": [CODEBOOK.get(c, "") for c in cols]}).to_csv(out / "codebook.csv", index=False)
    (out / "config.json").write_text(json.dumps(frames["config"], indent=1, sort_keys=True))
    (out / "config.sha256").write_text(frames["sha256"] + "\n")
    pro = _prolific_rows(db, frames)
    bonus = pro[(pro.bonus > 0) & ~pro.excluded.astype(bool)][["prolific_pid", "bonus"]]
    bonus.to_csv(out / "prolific_bonus.csv", index=False, header=False, float_format="%.2f")
    approvals = pro.assign(decision=pro.excluded.map({True: "review", False: "approve"}))
    approvals[["prolific_pid", "decision", "exclusion_reasons"]].to_csv(out / "prolific_approvals.csv", index=False)
    paths.update({n: out / f for n, f in [("codebook", "codebook.csv"), ("config", "config.json"),
                                          ("sha256", "config.sha256"), ("bonus", "prolific_bonus.csv"),
                                          ("approvals", "prolific_approvals.csv")]})
    return paths


def _prolific_rows(db: Database, frames: dict[str, Any]) -> pd.DataFrame:
    """Completed participants with a stored Prolific id, joined to their bonus and exclusion."""
    part = frames["participants"]
    with db.session() as s:
        pids = dict(s.execute(select(Participant.id, Participant.prolific_pid).where(
            Participant.study_version_id == frames["info"].id, Participant.status == "completed",
            Participant.prolific_pid.is_not(None))).all())
    pro = part[part.participant_id.isin(list(pids))].copy()
    pro["prolific_pid"] = pro.participant_id.map(pids)
    return pro


def forget_prolific_ids(db: Database, study: str) -> int:
    """Delete every raw Prolific id still stored for `study` (all versions), e.g. once approvals
    and bonuses are paid; keyed hashes stay, so nobody can take the study twice. Returns the count."""
    with db.session() as s:
        study_id = s.scalar(select(Study.id).where(Study.slug == study))
        if study_id is None:
            raise NotFound(f"no launched study {study!r}")
        return s.execute(update(Participant).where(Participant.study_id == study_id,
                                                   Participant.prolific_pid.is_not(None))
                         .values(prolific_pid=None)).rowcount

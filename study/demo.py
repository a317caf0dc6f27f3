"""The first-start demo: an engine-built study on Shapes-world scenes, launched, with simulated
participants, so that every researcher page shows something real on a fresh machine.

`ensure_demo` (called once per app process) starts `python -m study demo` as a detached
background process when the database holds no study and the demo was never removed; the app
answers at once and the Studies page shows the build's progress like any precompute job. The
demo's rows are ordinary study rows under the slug `demo-shapes`, labelled as demo data on every
page; `remove_demo` deletes them all (and its stimuli) and remembers not to build it again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from sqlalchemy import delete, func, select

from study.bots import BotProfile, run_bots
from study.config import REPO_ROOT, data_dir
from study.db import Database
from study.drafts import delete_draft, get_draft, list_drafts, save_draft
from study.errors import NotFound
from study.models import (
    Event,
    Participant,
    PrecomputeJob,
    Response,
    StartAttempt,
    Step,
    Study,
    StudyDraft,
    StudyVersion,
    Token,
)
from study.versions import launch

SLUG = "demo-shapes"
EXAMPLE = REPO_ROOT / "examples" / "studies" / "shapes_forward.yaml"
ENV = "CONVIS_DEMO"          # "0" turns the automatic first-start demo off (tests do)
BOTS = 45
ACCURACY = {"convis": 0.8, "none": 0.5}


def is_demo(slug: str) -> bool:
    return slug == SLUG


def _marker() -> Path:
    return data_dir() / "demo_removed"


def demo_yaml(scenes: int | None = None, concepts: int | None = None, trials: int | None = None) -> str:
    """The Shapes-world forward-simulation example as the demo study (smaller for tests)."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["id"], spec["title"] = SLUG, "Demo: which shape does the model see?"
    spec["recruitment"]["max_starts_per_client"] = None
    if scenes is not None:
        spec["images"] = {"shapes": scenes}
    if concepts is not None:
        spec["concepts"] = spec["concepts"][:concepts]
        spec["protocol"]["options"]["n_candidates"] = min(spec["protocol"]["options"]["n_candidates"], concepts)
    if trials is not None:
        spec["trials"], spec["practice"]["trials"] = trials, min(spec["practice"]["trials"], 1)
        spec["attention_checks"] = {"count": 1, "pass_min": 1}
    return yaml.safe_dump(spec, sort_keys=False)


def _empty(db: Database) -> bool:
    with db.session() as s:
        studies = s.scalar(select(func.count()).select_from(Study))
    return not studies and not list_drafts(db)


def ensure_demo(db: Database) -> bool:
    """Start building the demo in the background if this is a first start; True if started."""
    if os.environ.get(ENV) == "0" or _marker().exists() or not _empty(db):
        return False
    save_draft(db, demo_yaml(), base_dir=str(EXAMPLE.parent))
    log = data_dir() / "jobs" / "demo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        subprocess.Popen([sys.executable, "-m", "study", "demo"], cwd=REPO_ROOT, stdout=fh, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, "DATABASE_URL": db.url})
    return True


def build_demo(db: Database, bots: int = BOTS, seed: int = 0, **size: int) -> dict[str, int]:
    """Precompute the demo's stimuli (as a precompute job, so its progress shows), launch it and
    let `bots` simulated participants take it. Idempotent: a finished step is skipped. `size`
    (scenes, concepts, trials) makes a smaller demo (tests)."""
    from study import jobs

    draft = get_draft(db, SLUG)
    if draft is None:
        save_draft(db, demo_yaml(**size), base_dir=str(EXAMPLE.parent))
        draft = get_draft(db, SLUG)
    spec = draft.spec()
    if not jobs.ready(spec):
        job = jobs.run_worker(db, SLUG)
        if job.state != "done":
            raise NotFound(f"the demo's stimuli were not built: {job.error or job.state}")
    if _marker().exists():      # removed while its stimuli were being built
        return {"bots": 0, "participants": 0}
    launch(db, spec)
    delete_draft(db, SLUG)
    with db.session() as s:
        have = s.scalar(select(func.count()).select_from(Participant).join(Study, Participant.study_id == Study.id)
                        .where(Study.slug == SLUG))
    outs = run_bots(db, SLUG, max(0, bots - have), BotProfile(accuracy=ACCURACY, dropout=0.05), workers=4,
                    seed=seed) if have < bots else []
    return {"bots": len(outs), "participants": have + len(outs)}


def remove_demo(db: Database) -> None:
    """Delete every row and file of the demo, and never build it again on this data folder (a
    build still running is cancelled and will not launch)."""
    from study import jobs

    _marker().parent.mkdir(parents=True, exist_ok=True)
    _marker().write_text("the first-start demo was removed; delete this file to build it again\n")
    job = jobs.status(db, SLUG)
    if job is not None and job.active:
        jobs.cancel(db, SLUG)
    with db.session() as s:
        study = s.scalar(select(Study).where(Study.slug == SLUG))
        if study is not None:
            versions = s.execute(select(StudyVersion.id, StudyVersion.stimuli_dir)
                                 .where(StudyVersion.study_id == study.id)).all()
            pids = select(Participant.id).where(Participant.study_id == study.id)
            for table in (Response, Step, Token):
                s.execute(delete(table).where(table.participant_id.in_(pids)))
            s.execute(delete(Event).where(Event.study_version_id.in_([v for v, _ in versions])))
            s.execute(delete(Participant).where(Participant.study_id == study.id))
            s.execute(delete(StartAttempt).where(StartAttempt.study_id == study.id))
            s.execute(delete(StudyVersion).where(StudyVersion.study_id == study.id))
            s.delete(study)
            for _, folder in versions:
                shutil.rmtree(folder, ignore_errors=True)
        s.execute(delete(StudyDraft).where(StudyDraft.slug == SLUG))
        s.execute(delete(PrecomputeJob).where(PrecomputeJob.slug == SLUG))

"""Every study at a glance, for the researcher's list: drafts and launched studies with their
status, active version, participant counts and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from study.db import Database
from study.design import conditions
from study.drafts import list_drafts
from study.models import Participant, Study, StudyVersion
from study.spec import StudySpec
from study.versions import version_context


@dataclass(frozen=True)
class StudyRow:
    """One line of the studies list. `status`: draft | live | paused | closed."""

    slug: str
    title: str
    status: str
    version: int | None
    protocol: str
    counts: dict[str, int] = field(default_factory=dict)   # participants of the active version by status
    target: int = 0                                        # consented participants wanted (all conditions)
    has_draft: bool = False
    updated_at: datetime | None = None

    @property
    def completed(self) -> int:
        return self.counts.get("completed", 0)

    @property
    def in_progress(self) -> int:
        return self.counts.get("started", 0) + self.counts.get("active", 0)


def study_rows(db: Database) -> list[StudyRow]:
    """Launched studies (their active version) and drafts not launched yet, newest first."""
    drafts = {d.slug: d for d in list_drafts(db)}
    rows: list[StudyRow] = []
    with db.session() as s:
        launched = s.execute(select(Study, StudyVersion).join(StudyVersion, StudyVersion.study_id == Study.id)
                             .where(StudyVersion.status == "active")).all()
        counts: dict[int, dict[str, int]] = {}
        for vid, status, n in s.execute(select(Participant.study_version_id, Participant.status, func.count())
                                        .group_by(Participant.study_version_id, Participant.status)):
            counts.setdefault(vid, {})[status] = n
    for study, v in launched:
        ctx = version_context(db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version)
        spec = ctx.spec
        rows.append(StudyRow(study.slug, study.title, study.status, v.version, spec.protocol.name,
                             counts.get(v.id, {}), spec.recruitment.target_per_condition * len(conditions(spec)),
                             study.slug in drafts, v.created_at))
    seen = {r.slug for r in rows}
    for d in drafts.values():
        if d.slug not in seen:
            rows.append(StudyRow(d.slug, d.title, "draft", None, _protocol(d.yaml_text), {}, 0, True, d.updated_at))
    return sorted(rows, key=lambda r: (r.updated_at or datetime.min), reverse=True)


def _protocol(yaml_text: str) -> str:
    import yaml

    try:
        data = yaml.safe_load(yaml_text)
        return str(data["protocol"]["name"])
    except Exception:  # a draft that no longer parses still gets its row
        return "?"


def frozen_spec(db: Database, slug: str) -> StudySpec | None:
    """The spec of a study's active version as launched (its stimulus folder made absolute), or
    None if the study was never launched."""
    with db.session() as s:
        v = s.scalar(select(StudyVersion).join(Study, StudyVersion.study_id == Study.id)
                     .where(Study.slug == slug, StudyVersion.status == "active"))
    if v is None:
        return None
    spec = version_context(db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version).spec
    return spec.model_copy(update={"stimuli": spec.stimuli.model_copy(update={"dir": v.stimuli_dir})})

"""Launching freezes a version: the exact config and its sha256, never rewritten."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from study.db import Database
from study.design import build_items
from study.errors import InvalidInput, NotFound, StimulusError
from study.models import Study, StudyVersion
from study.protocols.base import Item
from study.spec import ShapesImages, StudySpec, config_sha256, load_spec
from study.stimuli import (
    Manifest,
    Progress,
    build_engine_stimuli,
    build_synthetic_stimuli,
    load_manifest,
)


def utcnow() -> datetime:
    """Naive UTC now (all stored times are naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class VersionInfo:
    """A frozen study version as the pages see it."""

    id: int
    study_id: int
    slug: str
    title: str
    version: int
    config_sha256: str
    stimuli_dir: str
    status: str
    random_weights: bool
    synthetic: bool
    created: bool = False  # True if `launch` created it just now


def build_stimuli(spec: StudySpec, force: bool = False, progress: Progress | None = None) -> Manifest:
    """Build the spec's stimulus folder unless it exists (or `force`): synthetic demo stimuli, or
    maps rendered by `convis_core` (``stimuli.source: engine``) on the spec's images. The model is
    `stimuli.model`/`pretrained`, else `study.stimuli.resolve_model`'s default (real CLIP weights
    configured through ``$CONVIS_MODEL``, else the bundled Shapes-world toy model)."""
    folder = spec.stimuli_dir()
    if (folder / "manifest.json").is_file() and not force:
        return load_manifest(folder)
    n = spec.stimuli.n_images
    if spec.stimuli.source == "synthetic":
        ids = [f"img{i:03d}" for i in range(n)]
        return build_synthetic_stimuli(folder, ids, spec.concepts, spec.methods, seed=spec.stimuli.seed)
    st = spec.stimuli
    return build_engine_stimuli(folder, spec_images(spec), spec.concepts, spec.methods, st.model, st.pretrained,
                                st.style, bank=st.bank, params=st.params, progress=progress)


def spec_images(spec: StudySpec) -> dict[str, dict[str, Any]]:
    """The spec's images as `build_engine_stimuli` takes them: files, a folder, or Shapes scenes."""
    base = Path(spec.base_dir or ".")
    if spec.images is None:
        raise StimulusError("stimuli.source 'engine' needs an `images` list, folder or {shapes: N} in the spec")
    if isinstance(spec.images, list):
        return {im.id or Path(im.file).stem: {"path": base / im.file, "label": im.label,
                                              "boxes": [list(b) for b in im.boxes]} for im in spec.images}
    if isinstance(spec.images, ShapesImages):
        return _shapes_images(spec.images, spec.concepts)
    folder = base / spec.images.folder
    if not folder.is_dir():
        raise StimulusError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
    if not files:
        raise StimulusError(f"no images in {folder}")
    return {p.stem: {"path": p} for p in files}


def _shapes_images(cfg: ShapesImages, concepts: list[str]) -> dict[str, dict[str, Any]]:
    """Shapes-world scenes (held-out ids by default) with their objects as label and boxes."""
    from convis_core.shapes import ALL_CONCEPTS, TEST_ID_START, render_scene

    pool = cfg.pool or [c for c in concepts if c in ALL_CONCEPTS] or list(ALL_CONCEPTS)
    bad = [c for c in pool if c not in ALL_CONCEPTS]
    if bad:
        raise StimulusError(f"images.pool: {bad} are not Shapes-world concepts ({', '.join(ALL_CONCEPTS)})")
    if cfg.n_objects is not None and cfg.n_objects > len(pool):
        raise StimulusError(f"images.n_objects {cfg.n_objects} > {len(pool)} concepts in the pool")
    first = TEST_ID_START if cfg.first_id is None else cfg.first_id
    out: dict[str, dict[str, Any]] = {}
    for scene_id in range(first, first + cfg.shapes):
        n = cfg.n_objects if cfg.n_objects is not None else min(len(pool), 1 + scene_id % 4)
        scene = render_scene(scene_id, n_objects=n, pool=pool)
        out[f"scene{scene_id}"] = {"image": scene.image, "label": ", ".join(scene.synsets),
                                   "boxes": [[float(v) for v in o.box] for o in scene.objects]}
    return out


def launch(db: Database, spec_or_path: StudySpec | str | Path, build: bool = True) -> VersionInfo:
    """Freeze `spec` as the active version of its study (a no-op if this exact config is active).

    Builds missing stimuli when `build`, re-validates the spec against the manifest, stores the
    canonical config and its sha256. Editing a running study and launching again creates version
    n+1 and marks older versions 'superseded'; rows of older versions are never rewritten.
    """
    spec = spec_or_path if isinstance(spec_or_path, StudySpec) else load_spec(spec_or_path)
    manifest = build_stimuli(spec) if build else load_manifest(spec.stimuli_dir())
    spec = load_spec_again(spec, manifest)
    frozen = spec.frozen(manifest.sha256())
    digest = config_sha256(frozen)
    with db.session() as s:
        study = s.scalar(select(Study).where(Study.slug == spec.id).with_for_update(key_share=True))
        if study is None:
            study = Study(slug=spec.id, title=spec.title, created_at=utcnow(), status="live")
            s.add(study)
            s.flush()
        existing = s.scalar(select(StudyVersion).where(StudyVersion.study_id == study.id,
                                                       StudyVersion.config_sha256 == digest))
        created = existing is None
        if created:
            last = s.scalar(select(StudyVersion.version).where(StudyVersion.study_id == study.id)
                            .order_by(StudyVersion.version.desc()).limit(1)) or 0
            existing = StudyVersion(study_id=study.id, version=last + 1, config_json=json.dumps(frozen, sort_keys=True),
                                    config_sha256=digest, spec_yaml=_spec_text(spec_or_path),
                                    stimuli_dir=str(spec.stimuli_dir().resolve()),
                                    manifest_sha256=manifest.sha256(), status="active", created_at=utcnow())
            s.add(existing)
            s.flush()
        s.execute(update(StudyVersion).where(StudyVersion.study_id == study.id, StudyVersion.id != existing.id,
                                             StudyVersion.status == "active").values(status="superseded"))
        existing.status = "active"
        study.title, study.status = spec.title, "live"
        return _info(existing, study, manifest, created)


def load_spec_again(spec: StudySpec, manifest: Manifest) -> StudySpec:
    """Validate the spec once more, now against its stimulus manifest (methods, concepts, images)."""
    import yaml

    from study.spec import validate_text

    return validate_text(yaml.safe_dump(spec.model_dump(mode="json")), spec.id, spec.base_dir, manifest)


def _spec_text(spec_or_path: StudySpec | str | Path) -> str:
    if isinstance(spec_or_path, StudySpec):
        import yaml

        return yaml.safe_dump(spec_or_path.model_dump(mode="json"), sort_keys=False)
    return Path(spec_or_path).read_text()


def _info(v: StudyVersion, study: Study, manifest: Manifest, created: bool = False) -> VersionInfo:
    return VersionInfo(v.id, study.id, study.slug, study.title, v.version, v.config_sha256, v.stimuli_dir,
                       v.status, manifest.random_weights, manifest.synthetic, created)


def get_version(db: Database, study: str | int, version: int | None = None) -> VersionInfo:
    """A study's active version (or version number `version`); `study` is a slug or a version id."""
    with db.session() as s:
        if isinstance(study, int):
            v = s.get(StudyVersion, study)
            st = s.get(Study, v.study_id) if v else None
        else:
            st = s.scalar(select(Study).where(Study.slug == study))
            q = select(StudyVersion).where(StudyVersion.study_id == (st.id if st else -1))
            q = q.where(StudyVersion.version == version) if version else q.where(StudyVersion.status == "active")
            v = s.scalar(q.order_by(StudyVersion.version.desc()).limit(1))
        if v is None or st is None:
            raise NotFound(f"no launched study {study!r}" + (f" version {version}" if version else ""))
        context = version_context(db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version)
        return _info(v, st, context.manifest)


def list_studies(db: Database) -> list[dict[str, Any]]:
    """Every study with its versions (id, number, sha256, version status, created_at) and the
    study's own status (`study_status`: live | paused | closed)."""
    with db.session() as s:
        rows = s.execute(select(Study, StudyVersion).join(StudyVersion, StudyVersion.study_id == Study.id)
                         .order_by(Study.slug, StudyVersion.version)).all()
        return [{"slug": st.slug, "title": st.title, "version_id": v.id, "version": v.version,
                 "config_sha256": v.config_sha256, "status": v.status, "created_at": v.created_at,
                 "study_status": st.status} for st, v in rows]


STUDY_STATUSES = ("live", "paused", "closed")


def set_status(db: Database, slug: str, status: str) -> str:
    """Set a study's status: 'live' takes new participants; 'paused' and 'closed' do not (people
    already in the study may continue and finish). `launch` makes a study live again."""
    if status not in STUDY_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STUDY_STATUSES)}")
    with db.session() as s:
        study = s.scalar(select(Study).where(Study.slug == slug).with_for_update(key_share=True))
        if study is None:
            raise NotFound(f"no launched study {slug!r}")
        study.status = status
        return status


@dataclass(frozen=True)
class VersionContext:
    spec: StudySpec
    manifest: Manifest
    items: list[Item]
    config: dict[str, Any]
    version: int
    stimuli_dir: str


@lru_cache(maxsize=64)
def version_context(url: str, version_id: int, config_json: str, stimuli_dir: str, manifest_sha: str,
                    version: int = 0) -> VersionContext:
    """Spec, manifest and items of a frozen version (cached); refuses stimuli changed since launch."""
    config = json.loads(config_json)
    spec = StudySpec.model_validate({**config["spec"], "base_dir": ""})
    manifest = load_manifest(stimuli_dir, verify=False)
    if manifest.sha256() != manifest_sha:
        raise StimulusError(f"stimuli in {stimuli_dir} changed since version {version_id} was launched")
    return VersionContext(spec, manifest, build_items(spec, manifest), config, version, stimuli_dir)

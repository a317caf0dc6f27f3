"""Study drafts: a spec being prepared (before its launch, or the next version of a launched
study), stored in the database with the folder its relative image paths resolve against, and the
researcher's uploaded images.

A draft's stimuli go to a folder of their own unless its spec names one (`stimuli.dir`):
``<data dir>/stimuli/<slug>.<key>``, where `key` hashes everything the stimuli depend on (the
``stimuli`` section, the resolved model, images by content, concepts, methods). Editing the
consent text keeps the folder; changing a concept, a parameter or an image gives a new one, so a
launched version's folder is never rebuilt under it. `Draft.spec()` returns the spec with that
folder set, and `study.versions.launch` then uses what `study.jobs` precomputed there.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from sqlalchemy import delete, select

from study.config import data_dir
from study.db import Database
from study.errors import InvalidInput, NotFound, SpecError
from study.models import StudyDraft
from study.spec import ImageFolder, ShapesImages, StudySpec, validate_text
from study.stimuli import canonical_json, resolve_model

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}   # what a spec's image folder takes
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024        # one image file
MAX_ZIP_BYTES = 500 * 1024 * 1024          # the zip file itself
MAX_ZIP_FILES = 2000                       # entries in one zip
MAX_ZIP_TOTAL = 1024 * 1024 * 1024         # all images of one zip, uncompressed (staged on disk)
MAX_RATIO = 100                            # uncompressed / compressed size of one entry (zip bombs)
MAX_NAME = 100
MAX_UPLOAD_PIXELS = 50_000_000            # one image, checked from its header before decoding


class UploadError(InvalidInput):
    """An uploaded file was refused (not an image, too large, a dangerous zip); nothing was saved."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise InvalidInput(f"{slug!r} is not a study id (lower-case letters, digits, - and _, at most 64)")
    return slug


def draft_dir(slug: str) -> Path:
    """`<data dir>/drafts/<slug>/`: a draft's default base folder (created)."""
    path = data_dir() / "drafts" / _check_slug(slug)
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_dir(slug: str) -> Path:
    """Where uploaded images of draft `slug` go: `<data dir>/drafts/<slug>/images/` (created)."""
    path = draft_dir(slug) / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------- drafts
@dataclass(frozen=True)
class Draft:
    """A stored draft. `base_dir`: the folder relative image paths resolve against."""

    slug: str
    title: str
    yaml_text: str
    base_dir: str
    updated_at: datetime
    created_at: datetime | None = None

    def spec(self) -> StudySpec:
        """The validated spec, its stimulus folder set (see the module docstring); `SpecError`
        if it no longer validates (e.g. WordNet or the protocols changed)."""
        return _validated(self.yaml_text, self.base_dir, f"draft {self.slug}")


def _explicit_dir(text: str) -> bool:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    stim = data.get("stimuli") if isinstance(data, dict) else None
    return isinstance(stim, dict) and stim.get("dir") is not None


def _validated(text: str, base_dir: str, source: str) -> StudySpec:
    explicit = _explicit_dir(text)
    spec = validate_text(text, source, base_dir, find_manifest=explicit)
    problems = _image_problems(spec)
    if problems:
        raise SpecError(problems, source)
    if not explicit:
        folder = data_dir() / "stimuli" / f"{spec.id}.{stimuli_key(spec)[:16]}"
        spec = spec.model_copy(update={"stimuli": spec.stimuli.model_copy(update={"dir": str(folder.resolve())})})
    return spec


def _image_problems(spec: StudySpec) -> list[str]:
    """Image files the spec names that are not there (the build would fail on them)."""
    if spec.stimuli.source != "engine" or spec.images is None or isinstance(spec.images, ShapesImages):
        return []
    base = Path(spec.base_dir or ".")
    if isinstance(spec.images, ImageFolder):
        folder = base / spec.images.folder
        if not folder.is_dir():
            return [f"images.folder: no folder {spec.images.folder!r} in {base}"]
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            return [f"images.folder: no .png, .jpg or .webp images in {folder}"]
        return []
    return [f"images.{i}.file: no file {im.file!r} in {base}" for i, im in enumerate(spec.images)
            if not (base / im.file).is_file()]


_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime)."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def stimuli_key(spec: StudySpec) -> str:
    """sha256 of what a spec's stimuli depend on: the `stimuli` section (its folder aside), the
    model it resolves to, the images (files by content), concepts and methods."""
    base = Path(spec.base_dir or ".")
    images: Any = None
    if isinstance(spec.images, ShapesImages):
        images = spec.images.model_dump(mode="json")
    elif isinstance(spec.images, ImageFolder):
        folder = base / spec.images.folder
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        images = {"folder": [[p.name, _file_sha256(p)] for p in files]}
    elif isinstance(spec.images, list):
        images = [{**im.model_dump(mode="json"), "file": _file_sha256(base / im.file),
                   "id": im.id or Path(im.file).stem} for im in spec.images]
    stimuli = spec.stimuli.model_dump(mode="json", exclude={"dir"})
    if spec.stimuli.source == "engine":
        stimuli["resolved_model"] = list(resolve_model(spec.stimuli.model, spec.stimuli.pretrained))
    body = {"format": 1, "stimuli": stimuli, "images": images, "concepts": spec.concepts, "methods": spec.methods}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _draft(row: StudyDraft) -> Draft:
    return Draft(row.slug, row.title, row.yaml_text, row.base_dir, row.updated_at, row.created_at)


def save_draft(db: Database, yaml_text: str, base_dir: str | None = None) -> Draft:
    """Validate `yaml_text` and store it as the draft of its spec `id` (new, or replacing that
    draft). Raises `SpecError` with every problem (nothing stored). `base_dir`: the folder
    relative image paths resolve against; default `<data dir>/drafts/<slug>/` (created). A
    launched study may have a draft: its next version."""
    if not isinstance(yaml_text, str):
        raise SpecError(["the spec must be text"], "draft")
    base = Path(base_dir).resolve() if base_dir else _default_base(yaml_text)
    spec = _validated(yaml_text, str(base), "draft")
    base.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    with db.session() as s:
        row = s.scalar(select(StudyDraft).where(StudyDraft.slug == spec.id).with_for_update())
        if row is None:
            row = StudyDraft(slug=spec.id, created_at=now)
            s.add(row)
        row.title, row.yaml_text, row.base_dir, row.updated_at = spec.title, yaml_text, str(base), now
        s.flush()
        return _draft(row)


def _default_base(text: str) -> Path:
    """`<data dir>/drafts/<id>/` for the spec's id (not created), or the working folder when the
    text has no usable id (validation then says why)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    slug = data.get("id") if isinstance(data, dict) else None
    if isinstance(slug, str) and SLUG.match(slug):
        return (data_dir() / "drafts" / slug).resolve()
    return Path(".").resolve()


def get_draft(db: Database, slug: str) -> Draft | None:
    """The draft of `slug`, or None."""
    with db.session() as s:
        row = s.scalar(select(StudyDraft).where(StudyDraft.slug == slug))
        return _draft(row) if row is not None else None


def list_drafts(db: Database) -> list[Draft]:
    """Every draft, most recently saved first."""
    with db.session() as s:
        rows = s.scalars(select(StudyDraft).order_by(StudyDraft.updated_at.desc(), StudyDraft.slug)).all()
        return [_draft(r) for r in rows]


def delete_draft(db: Database, slug: str) -> None:
    """Delete the draft of `slug` (its uploaded images and built stimuli stay on disk);
    `NotFound` if there is none."""
    with db.session() as s:
        n = s.execute(delete(StudyDraft).where(StudyDraft.slug == slug)).rowcount
    if not n:
        raise NotFound(f"no draft {slug!r}")


# ---------------------------------------------------------------------------------- uploads
def safe_filename(filename: str) -> str:
    """The last component of `filename`, NFKC-normalised, with anything but letters, digits,
    ``.``, ``-`` and ``_`` replaced by ``_``; no leading dots; at most 100 characters."""
    name = unicodedata.normalize("NFKC", str(filename)).replace("\\", "/").split("/")[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem[: MAX_NAME - len(suffix) - 1] or "image"
    return f"{stem}.{suffix}" if suffix else stem


def _checked_image(name: str, data: bytes) -> str:
    """The file name to store `data` under (its suffix fitting its real format), or `UploadError`."""
    from PIL import Image, UnidentifiedImageError

    from convis_core import ConvisError, open_image

    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name}: {len(data) / 2**20:.1f} MB is over the limit of {MAX_UPLOAD_BYTES >> 20} MB per image")
    try:
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only
            fmt, (w, h) = probe.format, probe.size
    except UnidentifiedImageError:
        raise UploadError(f"{name}: not an image file, or a format Pillow cannot read") from None
    except Exception as exc:  # noqa: BLE001  anything Pillow raises on a hostile header
        raise UploadError(f"{name}: not a readable image ({type(exc).__name__})") from None
    if fmt not in FORMATS:
        raise UploadError(f"{name}: {fmt or 'unknown'} images are not accepted; use PNG, JPEG or WebP")
    if w * h > MAX_UPLOAD_PIXELS:
        raise UploadError(f"{name}: {w}×{h} pixels is over the limit of {MAX_UPLOAD_PIXELS / 1e6:.0f} MP")
    try:
        open_image(data)  # the engine's safe loading: conversions, size and decoding checks
    except ConvisError as exc:
        raise UploadError(f"{name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise UploadError(f"{name}: not a readable image ({type(exc).__name__})") from None
    clean = safe_filename(name)
    stem = clean.rsplit(".", 1)[0] if "." in clean else clean
    return stem + FORMATS[fmt]


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_upload(slug: str, filename: str, data: bytes) -> str:
    """Store one uploaded image of draft `slug` in `upload_dir(slug)` and return its path
    relative to the draft's default base folder (``images/<name>``), for the spec's `images`.

    The name is sanitised (`safe_filename`; the suffix follows the real format: PNG, JPEG or
    WebP); the bytes must load with `convis_core`'s safe image loading and be at most
    `MAX_UPLOAD_BYTES`. A file of the same name is replaced. `UploadError` otherwise."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise UploadError(f"{filename}: the file is empty")
    name = _checked_image(str(filename), bytes(data))
    _write(upload_dir(slug) / name, bytes(data))
    return f"images/{name}"


def _zip_entry_name(info: zipfile.ZipInfo) -> str | None:
    """The entry's file name, None for entries to skip (folders, macOS metadata), or `UploadError`
    for a path that would leave the folder, a link or an encrypted entry."""
    raw = info.filename
    if info.is_dir():
        return None
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw) or ".." in parts:
        raise UploadError(f"zip entry {raw!r} points outside the folder; nothing was saved")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UploadError(f"zip entry {raw!r} is a link; nothing was saved")
    if info.flag_bits & 0x1:
        raise UploadError(f"zip entry {raw!r} is encrypted; nothing was saved")
    if not parts or parts[0] == "__MACOSX" or parts[-1].startswith("."):
        return None
    return parts[-1]


def save_zip(slug: str, data: bytes) -> list[str]:
    """Store every image of a zip file (folders inside are flattened) as `save_upload` would;
    returns their relative paths. All or nothing: a path leaving the folder, a link, an encrypted
    entry, a non-image file, two entries with one name, more than `MAX_ZIP_FILES` entries, an
    entry over `MAX_UPLOAD_BYTES` or compressed more than `MAX_RATIO`:1, or more than
    `MAX_ZIP_TOTAL` bytes in all refuse the whole zip (`UploadError`) before anything is saved.
    Sizes are enforced while reading, whatever the zip's headers claim."""
    if len(data) > MAX_ZIP_BYTES:
        raise UploadError(f"the zip file is over {MAX_ZIP_BYTES >> 20} MB")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UploadError(f"not a readable zip file: {exc}") from None
    if len(infos) > MAX_ZIP_FILES:
        raise UploadError(f"the zip holds {len(infos)} entries; at most {MAX_ZIP_FILES}")
    entries: list[tuple[zipfile.ZipInfo, str]] = []
    seen: dict[str, str] = {}
    for info in infos:
        name = _zip_entry_name(info)
        if name is None:
            continue
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise UploadError(f"zip entry {info.filename!r} is not a .png, .jpg or .webp image; nothing was saved")
        clean = safe_filename(name).lower()
        if clean in seen:
            raise UploadError(f"zip entries {seen[clean]!r} and {info.filename!r} have the same name")
        seen[clean] = info.filename
        if info.file_size > MAX_UPLOAD_BYTES:
            raise UploadError(f"zip entry {info.filename!r} is over {MAX_UPLOAD_BYTES >> 20} MB")
        entries.append((info, name))
    if not entries:
        raise UploadError("the zip holds no images")
    target = upload_dir(slug)
    total = 0
    names: list[str] = []
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".zip-") as tmp:
        for info, _name in entries:
            limit = MAX_UPLOAD_BYTES
            if info.compress_size > 2**16:
                limit = min(limit, info.compress_size * MAX_RATIO)
            try:
                with zf.open(info) as fh:
                    body = fh.read(limit + 1)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
                raise UploadError(f"zip entry {info.filename!r} cannot be read: {exc}") from None
            if len(body) > limit:
                raise UploadError(f"zip entry {info.filename!r} expands beyond {limit / 2**20:.0f} MB (more than "
                                  f"{MAX_RATIO}:1, or over the per-image limit); nothing was saved")
            total += len(body)
            if total > MAX_ZIP_TOTAL:
                raise UploadError(f"the zip expands to more than {MAX_ZIP_TOTAL >> 20} MB; nothing was saved")
            name = _checked_image(info.filename, body)
            if name in names:
                raise UploadError(f"several zip entries become {name!r}; rename them")
            names.append(name)
            (Path(tmp) / name).write_bytes(body)
        for name in names:
            os.replace(Path(tmp) / name, target / name)
    return [f"images/{n}" for n in names]

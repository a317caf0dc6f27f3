"""Stimulus folders: images, rendered maps, metadata and model ground truth, listed in a manifest.

Layout of a stimulus folder::

    manifest.json            # format "convis-stimuli/1", see `Manifest`
    images/<image_id>.png
    maps/<stimulus_id>.png   # the rendered explanation map
    meta/<stimulus_id>.json  # the method's metadata (JSON)

Every file is listed with its sha256; `manifest_sha256` hashes the canonical manifest JSON, so a
frozen study version pins the exact pixels it showed. A stimulus is (image, concept, method).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from study.errors import StimulusError

FORMAT = "convis-stimuli/1"
MANIFEST = "manifest.json"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for every hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    pretrained: str | None = None
    random_weights: bool = False


class ImageEntry(BaseModel):
    file: str
    sha256: str
    label: str | None = None
    boxes: list[list[float]] = Field(default_factory=list)
    concept_scores: dict[str, float] = Field(default_factory=dict)


class StimulusEntry(BaseModel):
    id: str
    image: str
    concept: str
    method: str
    map: str
    map_sha256: str
    meta: str
    meta_sha256: str
    random_weights: bool = False


class Manifest(BaseModel):
    """The manifest of a stimulus folder (see module docstring)."""

    format: str = FORMAT
    model: ModelInfo
    synthetic: bool = False
    style: str = "whitefade"
    images: dict[str, ImageEntry]
    stimuli: list[StimulusEntry]

    @property
    def random_weights(self) -> bool:
        """True if any map came from a model with random weights: pages must warn."""
        return self.model.random_weights or any(s.random_weights for s in self.stimuli)

    @property
    def methods(self) -> list[str]:
        return sorted({s.method for s in self.stimuli})

    @property
    def concepts(self) -> list[str]:
        return sorted({s.concept for s in self.stimuli} | {c for i in self.images.values() for c in i.concept_scores})

    def sha256(self) -> str:
        return sha256_bytes(canonical_json(self.model_dump(mode="json")).encode())

    def find(self, image: str, concept: str, method: str) -> StimulusEntry | None:
        index = self.__dict__.setdefault("_index", {})
        if not index:
            index.update({(s.image, s.concept, s.method): s for s in self.stimuli})
        return index.get((image, concept, method))

    def ranking(self, image: str, candidates: list[str]) -> list[str]:
        """`candidates` sorted by the model's score for `image`, best first (ground truth)."""
        scores = self.images[image].concept_scores
        missing = [c for c in candidates if c not in scores]
        if missing:
            raise StimulusError(f"image {image!r} has no model score for {missing}")
        return sorted(candidates, key=lambda c: (-scores[c], c))


def load_manifest(folder: str | Path, verify: bool = True) -> Manifest:
    """Read `folder/manifest.json`; with `verify`, check every listed file exists and matches its hash."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise StimulusError(f"no stimulus manifest at {path} (run `python -m study build-stimuli`)")
    try:
        manifest = Manifest.model_validate_json(path.read_text())
    except ValueError as exc:
        raise StimulusError(f"{path}: invalid manifest: {exc}") from exc
    if manifest.format != FORMAT:
        raise StimulusError(f"{path}: unknown format {manifest.format!r}, expected {FORMAT!r}")
    if verify:
        files = [(i.file, i.sha256) for i in manifest.images.values()]
        files += [(s.map, s.map_sha256) for s in manifest.stimuli]
        files += [(s.meta, s.meta_sha256) for s in manifest.stimuli]
        for rel, digest in files:
            f = (folder / rel).resolve()
            if folder.resolve() not in f.parents:
                raise StimulusError(f"{path}: file {rel!r} lies outside the stimulus folder")
            if not f.is_file():
                raise StimulusError(f"{path}: listed file {rel!r} is missing")
            if sha256_bytes(f.read_bytes()) != digest:
                raise StimulusError(f"{path}: {rel!r} does not match its sha256 (changed after building?)")
    for s in manifest.stimuli:
        if s.image not in manifest.images:
            raise StimulusError(f"{path}: stimulus {s.id!r} names unknown image {s.image!r}")
    return manifest


class StimulusWriter:
    """Writes a stimulus folder file by file, then its manifest (`finish`)."""

    def __init__(self, folder: str | Path, model: ModelInfo, style: str = "whitefade", synthetic: bool = False) -> None:
        self.folder = Path(folder)
        for sub in ("images", "maps", "meta"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.model, self.style, self.synthetic = model, style, synthetic
        self.images: dict[str, ImageEntry] = {}
        self.stimuli: list[StimulusEntry] = []

    def _write(self, rel: str, data: bytes) -> str:
        (self.folder / rel).write_bytes(data)
        return sha256_bytes(data)

    def add_image(self, image_id: str, png: bytes, concept_scores: dict[str, float],
                  label: str | None = None, boxes: list[list[float]] | None = None) -> None:
        rel = f"images/{_SAFE.sub('_', image_id)}.png"
        self.images[image_id] = ImageEntry(file=rel, sha256=self._write(rel, png), label=label,
                                           boxes=boxes or [], concept_scores=concept_scores)

    def add_stimulus(self, image_id: str, concept: str, method: str, png: bytes, meta: dict[str, Any]) -> None:
        sid = _SAFE.sub("_", f"{image_id}__{concept}__{method}")
        map_rel, meta_rel = f"maps/{sid}.png", f"meta/{sid}.json"
        self.stimuli.append(StimulusEntry(
            id=sid, image=image_id, concept=concept, method=method,
            map=map_rel, map_sha256=self._write(map_rel, png),
            meta=meta_rel, meta_sha256=self._write(meta_rel, canonical_json(meta).encode()),
            random_weights=bool(meta.get("random_weights", False)),
        ))

    def finish(self) -> Manifest:
        manifest = Manifest(model=self.model, synthetic=self.synthetic, style=self.style,
                            images=self.images, stimuli=sorted(self.stimuli, key=lambda s: s.id))
        (self.folder / MANIFEST).write_text(json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True))
        return manifest


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def build_synthetic_stimuli(folder: str | Path, image_ids: list[str], concepts: list[str],
                            methods: list[str], seed: int = 0, size: int = 32) -> Manifest:
    """Demo/test stimuli without the engine: random shapes, blob maps, random model scores.

    The manifest is flagged ``synthetic`` (and ``random_weights``): pages must warn that its
    "ground truth" is made up. Deterministic in `seed`. Returns the written `Manifest`.
    """
    rng = np.random.default_rng(seed)
    writer = StimulusWriter(folder, ModelInfo(name="synthetic", random_weights=True), synthetic=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for image_id in image_ids:
        img = np.full((size, size, 3), 235, np.uint8)
        cx, cy, r = rng.uniform(0.25, 0.75, 2).tolist() + [rng.uniform(0.1, 0.25)]
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 200, 3)
        scores = {c: round(float(s), 6) for c, s in zip(concepts, rng.uniform(0.1, 0.35, len(concepts)), strict=True)}
        writer.add_image(image_id, _png(img), scores, label=None)
        for concept in concepts:
            for method in methods:
                mx, my = rng.uniform(0.2, 0.8, 2)
                heat = np.exp(-((xx - mx) ** 2 + (yy - my) ** 2) / 0.02)
                writer.add_stimulus(image_id, concept, method, _png((heat * 255).astype(np.uint8)),
                                    {"method": method, "synthetic": True, "random_weights": True})
    return writer.finish()


DEFAULT_MODEL = "shapes-world"   # the bundled toy CLIP: meaningful maps offline
REAL_DEFAULT_TAG = "openai"


def resolve_model(name: str | None = None, pretrained: str | None = None) -> tuple[str, str]:
    """The model a stimulus build uses: `name`/`pretrained` when given, else ``$CONVIS_MODEL`` /
    ``$CONVIS_PRETRAINED`` (real CLIP weights configured by the operator), else the bundled
    Shapes-world toy model. ``pretrained`` defaults to ``bundled`` for shapes-world, else ``openai``."""
    name = name or os.environ.get("CONVIS_MODEL") or DEFAULT_MODEL
    if pretrained is None:
        pretrained = os.environ.get("CONVIS_PRETRAINED") if os.environ.get("CONVIS_MODEL") == name else None
    if pretrained is None:
        pretrained = "bundled" if name == DEFAULT_MODEL else REAL_DEFAULT_TAG
    return name, pretrained


Progress = Callable[[int, int, str], None]


def build_engine_stimuli(folder: str | Path, images: dict[str, dict[str, Any]], concepts: list[str],
                         methods: list[str], model_name: str | None = None, pretrained: str | None = None,
                         style: str = "whitefade", bank: str = "all",
                         params: dict[str, dict[str, Any]] | None = None, model: Any = None,
                         progress: Progress | None = None) -> Manifest:
    """Render every (image, concept, method) with `convis_core` and write a stimulus folder.

    `images` maps image id -> {"path": file} or {"image": PIL image}, plus optional "label" and
    "boxes". `methods` are `convis_core` method names or aliases (the stimulus keeps the name used
    here); `params` gives per-method engine parameters and `bank` the ConVis concept bank. Ground
    truth per image is `convis_core.concept_scores` over all `concepts`. The model is `model` (an
    already loaded `convis_core.ClipModel`) or `load_model(*resolve_model(model_name, pretrained))`.
    The manifest records the model identity and carries ``random_weights`` when the model had
    random weights. Engine errors become `StimulusError`s naming the image, concept and method.
    Returns the written `Manifest`.
    """
    import convis_core
    from convis_core import ConvisError, concept_scores, explain, load_image, load_model, render_png

    params = params or {}
    unknown = [m for m in methods if m not in convis_core.REGISTRY and m not in _engine_aliases()]
    if unknown:
        raise StimulusError(f"unknown engine method(s) {unknown}; convis_core has: {', '.join(convis_core.REGISTRY)}")
    stray = sorted(set(params) - set(methods))
    if stray:
        raise StimulusError(f"parameters given for {stray}, which are not among the methods {methods}")
    if model is None:
        name, weights = resolve_model(model_name, pretrained)
        try:
            model = load_model(name, weights)
        except (ConvisError, RuntimeError, ValueError, AssertionError, OSError) as exc:  # open_clip's own checks
            raise StimulusError(f"cannot load model {name!r} ({weights}): {exc}") from None
    identity = dict(model.identity)
    identity.pop("device", None)  # where it ran is not what it is: keep the manifest hash portable
    name = str(identity.pop("model"))
    info = ModelInfo(**identity, name=name, bank=bank)
    writer = StimulusWriter(folder, info, style=style)
    random_weights = bool(model.random_weights)
    for n, (image_id, spec) in enumerate(images.items()):
        if progress:
            progress(n, len(images), image_id)
        source = spec["image"] if "image" in spec else spec["path"]
        try:
            loaded = load_image(source)
        except ConvisError as exc:
            raise StimulusError(f"image {image_id!r}: {exc}") from None
        buf = io.BytesIO()
        loaded.original.save(buf, format="PNG")
        try:
            scores = {k: float(v) for k, v in concept_scores(model, loaded, list(concepts)).items()}
        except ConvisError as exc:
            raise StimulusError(f"image {image_id!r}: model scores: {exc}") from None
        writer.add_image(image_id, buf.getvalue(), scores, label=spec.get("label"), boxes=spec.get("boxes"))
        for concept in concepts:
            for method in methods:
                try:
                    res = explain(model, loaded, concept, method=method, bank=bank, **params.get(method, {}))
                except ConvisError as exc:
                    raise StimulusError(f"image {image_id!r}, concept {concept!r}, method {method!r}: {exc}") from None
                meta = json.loads(res.metadata_json())
                meta.pop("timings", None)  # wall-clock noise: equal inputs give equal files
                random_weights = random_weights or bool(meta.get("random_weights", False))
                writer.add_stimulus(image_id, concept, method, render_png(res, loaded.original, style=style), meta)
    if progress:
        progress(len(images), len(images), "")
    writer.model.random_weights = random_weights
    return writer.finish()


def _engine_aliases() -> set[str]:
    from convis_core.methods import ALIASES

    return set(ALIASES)

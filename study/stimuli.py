"""Stimulus folders: images, rendered maps, metadata and model ground truth, listed in a manifest.

Layout of a stimulus folder::

    manifest.json            # format "convis-stimuli/1", see `Manifest`
    images/<image_id>.png
    maps/<stimulus_id>.png   # the rendered explanation map
    meta/<stimulus_id>.json  # the method's metadata (JSON)
    .build/<key>.json        # engine builds: what each stored output is (`EngineBuild`), for resuming

Every file is listed with its sha256; `manifest_sha256` hashes the canonical manifest JSON, so a
frozen study version pins the exact pixels it showed. A stimulus is (image, concept, method).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from study.errors import StimulusError

if TYPE_CHECKING:
    from convis_core.executors import Executor

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
        _atomic_write(self.folder / rel, data)
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
        _write_manifest(self.folder, manifest)
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


def resolve_model(name: str | None = None, pretrained: str | None = None) -> tuple[str, str]:
    """The model a stimulus build uses: `name`/`pretrained` when given, else ``$CONVIS_MODEL``
    (real CLIP weights configured by the operator), else the bundled Shapes-world toy model; the
    weights of a bare name are `convis_core.models.default_pretrained`'s answer."""
    from convis_core.models import default_pretrained

    name = name or os.environ.get("CONVIS_MODEL") or DEFAULT_MODEL
    return name, pretrained if pretrained is not None else default_pretrained(name)


Progress = Callable[[int, int, str], None]

BUILD_DIR = ".build"   # records of stored outputs, one JSON file per content key (see `EngineBuild`)
RECORD_FORMAT = 1      # bump when a change of this module changes stored files for equal inputs


@dataclass(frozen=True)
class MapEvent:
    """One map of an engine build: computed now (`seconds` of explain + render + write) or found
    stored. `first` is true for the first map computed for its (image, method) in this run: for
    ConVis it pays the crop encoding that the image's further concepts reuse."""

    image: str
    concept: str
    method: str
    computed: bool
    first: bool
    seconds: float


class BuildObserver:
    """Callbacks of `EngineBuild.run` (all optional; override what you need)."""

    def planned(self, total: int, stored: int, plan: BuildPlan) -> None:
        """Before any work: `total` maps, `stored` of them already in the folder."""

    def image_scored(self, image_id: str, seconds: float) -> None:
        """An image was loaded, scored by the model and written (`seconds` it took)."""

    def map_done(self, done: int, total: int, event: MapEvent) -> None:
        """A map was computed and stored; `done` counts stored maps (found or computed)."""

    def check(self) -> None:
        """Called between maps; raise to stop the build (what is stored stays stored)."""


@dataclass
class PlannedMap:
    concept: str
    method: str
    key: str
    stored: StimulusEntry | None


@dataclass
class PlannedImage:
    image_id: str
    spec: dict[str, Any]
    source_sha256: str
    key: str
    stored: ImageEntry | None
    maps: list[PlannedMap]


@dataclass
class BuildPlan:
    """What a build will do: every image and map with its content key and stored record, if any."""

    images: list[PlannedImage]

    @property
    def total(self) -> int:
        return sum(len(p.maps) for p in self.images)

    @property
    def stored(self) -> int:
        return sum(m.stored is not None for p in self.images for m in p.maps)

    @property
    def complete(self) -> bool:
        return all(p.stored is not None and all(m.stored is not None for m in p.maps) for p in self.images)


def _atomic_write(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of it. No fsync: a killed process
    loses nothing written, and a resumed build checks every stored file against its sha256."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _source_sha256(source: Any) -> str:
    """Content hash of an image source: a file's bytes, or a PIL image's mode, size and pixels."""
    from PIL import Image

    h = hashlib.sha256()
    if isinstance(source, Image.Image):
        h.update(f"pil:{source.mode}:{source.size}:".encode())
        h.update(source.tobytes())
        return h.hexdigest()
    path = Path(source)
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else str(exc)
        raise StimulusError(f"image file {path}: {reason}") from None
    return h.hexdigest()


class EngineBuild:
    """An engine stimulus build that can stop anywhere and resume without redoing stored work.

    Every output has a content key: an image's is the sha256 of (image id, source bytes, the
    concept list, model identity); a map's is the sha256 of (image id, source bytes, concept,
    method, its parameters, model identity, bank, style). After its files are written
    (atomically) a record ``.build/<key>.json`` names them with their sha256. A run first plans
    (hashes sources, looks up records and checks the files they name), then computes only what is
    missing, image by image with one loaded model, so the engine's per-image caches (crop
    embeddings, rank index) serve every concept of an image. The manifest is written last,
    atomically, from the records: a build stopped at any point and run again writes the same
    manifest, byte for byte, as one uninterrupted run.
    """

    def __init__(self, folder: str | Path, images: dict[str, dict[str, Any]], concepts: list[str],
                 methods: list[str], model_name: str | None = None, pretrained: str | None = None,
                 style: str = "whitefade", bank: str = "all", params: dict[str, dict[str, Any]] | None = None,
                 model: Any = None) -> None:
        import convis_core

        self.params = params or {}
        unknown = [m for m in methods if m not in convis_core.REGISTRY and m not in _engine_aliases()]
        if unknown:
            raise StimulusError(f"unknown engine method(s) {unknown}; convis_core has: {', '.join(convis_core.REGISTRY)}")
        stray = sorted(set(self.params) - set(methods))
        if stray:
            raise StimulusError(f"parameters given for {stray}, which are not among the methods {methods}")
        self.folder = Path(folder)
        self.images, self.concepts, self.methods = images, list(concepts), list(methods)
        self.model_name, self.pretrained, self.style, self.bank = model_name, pretrained, style, bank
        self.model = model
        self._plan: BuildPlan | None = None

    # ------------------------------------------------------------------ model and keys
    def load_model(self) -> Any:
        """The build's model (loaded once)."""
        if self.model is None:
            from convis_core import ConvisError, load_model

            name, weights = resolve_model(self.model_name, self.pretrained)
            try:
                self.model = load_model(name, weights)
            except (ConvisError, RuntimeError, ValueError, AssertionError, OSError) as exc:  # open_clip's own checks
                raise StimulusError(f"cannot load model {name!r} ({weights}): {exc}") from None
        return self.model

    def model_identity(self) -> dict[str, Any]:
        identity = dict(self.load_model().identity)
        identity.pop("device", None)  # where it ran is not what it is: keep the manifest hash portable
        return identity

    def _key(self, kind: str, **parts: Any) -> str:
        body = {"format": RECORD_FORMAT, "kind": kind, "model": self.model_identity(), **parts}
        return sha256_bytes(canonical_json(body).encode())

    def _record(self, key: str) -> Path:
        return self.folder / BUILD_DIR / f"{key}.json"

    def _read_record(self, key: str, files: Callable[[dict[str, Any]], list[tuple[str, str]]]) -> dict[str, Any] | None:
        """A record whose listed files exist with their sha256 (else None: compute again)."""
        try:
            data = json.loads(self._record(key).read_text())
        except (OSError, ValueError):
            return None
        try:
            for rel, digest in files(data):
                f = self.folder / rel
                if not f.is_file() or sha256_bytes(f.read_bytes()) != digest:
                    return None
        except (KeyError, TypeError):
            return None
        return data

    # ------------------------------------------------------------------ plan
    def plan(self) -> BuildPlan:
        """Hash every source and look up what is stored (loads the model for its identity)."""
        if self._plan is not None:
            return self._plan
        for sub in ("images", "maps", "meta"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        out = []
        for image_id, spec in self.images.items():
            source = spec["image"] if "image" in spec else spec["path"]
            try:
                src = _source_sha256(source)
            except StimulusError as exc:
                raise StimulusError(f"image {image_id!r}: {exc}") from None
            ikey = self._key("image", image=image_id, source=src, concepts=self.concepts)
            rec = self._read_record(ikey, lambda d: [(d["file"], d["sha256"])])
            stored = None
            if rec is not None:
                stored = ImageEntry(file=rec["file"], sha256=rec["sha256"], label=spec.get("label"),
                                    boxes=spec.get("boxes") or [], concept_scores=rec["concept_scores"])
            maps = []
            for concept in self.concepts:
                for method in self.methods:
                    key = self._key("map", image=image_id, source=src, concept=concept, method=method,
                                    params=self.params.get(method, {}), bank=self.bank, style=self.style)
                    r = self._read_record(key, lambda d: [(d["map"], d["map_sha256"]), (d["meta"], d["meta_sha256"])])
                    maps.append(PlannedMap(concept, method, key, StimulusEntry(**r) if r is not None else None))
            out.append(PlannedImage(image_id, spec, src, ikey, stored, maps))
        self._plan = BuildPlan(out)
        return self._plan

    # ------------------------------------------------------------------ run
    def warm_bank(self, executor: Executor | None = None) -> Any:
        """Embed the concept bank before the first map when a method ranks against it (cached
        on disk; sharded over a remote `executor`'s workers). Returns the embeddings or None."""
        from convis_core import ConvisError, bank_embeddings, get_bank, get_method

        if not any(getattr(get_method(m), "uses_bank", False) for m in self.methods):
            return None
        try:
            return bank_embeddings(self.load_model(), get_bank(self.bank), executor=executor)
        except ConvisError as exc:
            raise StimulusError(f"concept bank {self.bank!r}: {exc}") from None

    def run(self, observer: BuildObserver | None = None, progress: Progress | None = None,
            executor: Executor | None = None) -> Manifest:
        """Compute what the plan lacks, then write the manifest; see the class docstring.

        `executor` (default: this process) runs the images: each image is one unit (its scores,
        then every missing concept × method, so the engine's per-image caches serve them all).
        Workers write the files and records into this folder; this process alone writes the
        manifest. A remote executor's workers must see the folder at the same path (a shared
        filesystem): every file a worker reports is checked here against its sha256, and a
        build whose workers wrote elsewhere fails with a message saying so."""
        from convis_core.executors import LocalExecutor, ModelSetup

        ex = executor or LocalExecutor()
        obs = observer or BuildObserver()
        plan = self.plan()
        model = self.load_model()
        total = plan.total
        obs.planned(total, plan.stored, plan)
        todo = [p for p in plan.images if not (p.stored is not None and all(m.stored is not None for m in p.maps))]
        counter = {"done": plan.stored, "images": len(plan.images) - len(todo)}
        if progress:
            progress(counter["images"], len(plan.images), todo[0].image_id if todo else "")
        setup = ModelSetup.of(model)
        if todo and ex.remote:
            emb = self.warm_bank(ex)
            if emb is not None:
                from convis_core import get_bank

                setup.with_bank(model, get_bank(self.bank), emb)
        units = [_ImageUnit(str(self.folder), p.image_id, p.spec, p.key if p.stored is None else None,
                            [(m.concept, m.method, m.key) for m in p.maps if m.stored is None],
                            list(self.concepts), self.bank, self.style, self.params) for p in todo]

        def on_event(i: int, event: Any) -> None:
            kind, payload = event
            if kind == "image":
                obs.image_scored(todo[i].image_id, payload)
            else:
                counter["done"] += 1
                obs.map_done(counter["done"], total, payload)

        def on_result(i: int, result: _ImageDone) -> None:
            item = todo[i]
            if ex.remote:
                self._verify(item.image_id, result)
            if result.image is not None:
                item.stored = ImageEntry(**result.image, label=item.spec.get("label"), boxes=item.spec.get("boxes") or [])
            by_key = {m.key: m for m in item.maps}
            for key, entry in result.maps:
                by_key[key].stored = StimulusEntry(**entry)
            counter["images"] += 1
            if progress:
                progress(counter["images"], len(plan.images), item.image_id)

        ex.map(setup, _build_image, units, on_event=on_event, on_result=on_result, check=obs.check)
        if progress:
            progress(len(plan.images), len(plan.images), "")
        return self.write_manifest()

    def _verify(self, image_id: str, result: _ImageDone) -> None:
        """Every file a remote worker says it wrote is here with its sha256 (shared store)."""
        files = [(result.image["file"], result.image["sha256"])] if result.image is not None else []
        files += [(e["map"], e["map_sha256"]) for _, e in result.maps] + [(e["meta"], e["meta_sha256"]) for _, e in result.maps]
        for rel, digest in files:
            f = self.folder / rel
            if not f.is_file() or sha256_bytes(f.read_bytes()) != digest:
                raise StimulusError(
                    f"image {image_id!r}: a worker on {result.host} wrote {rel!r} into {self.folder}, but this "
                    f"machine does not see it there: the stimulus folder must be on a filesystem every worker "
                    f"shares at the same path (see deploy/README.md)")

    def manifest(self) -> Manifest:
        """The manifest of a complete plan (nothing written)."""
        plan = self.plan()
        if not plan.complete:
            raise StimulusError(f"{self.folder}: {plan.total - plan.stored} map(s) not built yet")
        identity = self.model_identity()
        name = str(identity.pop("model"))
        stimuli = [m.stored for p in plan.images for m in p.maps]
        random_weights = bool(self.load_model().random_weights) or any(s.random_weights for s in stimuli)
        info = ModelInfo(**{**identity, "random_weights": random_weights}, name=name, bank=self.bank)
        return Manifest(model=info, style=self.style, images={p.image_id: p.stored for p in plan.images},
                        stimuli=sorted(stimuli, key=lambda s: s.id))

    def write_manifest(self) -> Manifest:
        """Write `manifest.json` atomically (untouched when it already holds these bytes)."""
        manifest = self.manifest()
        _write_manifest(self.folder, manifest)
        return manifest


def _write_manifest(folder: Path, manifest: Manifest) -> None:
    data = json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True).encode()
    path = folder / MANIFEST
    if not (path.is_file() and path.read_bytes() == data):
        _atomic_write(path, data)


@dataclass
class _ImageUnit:
    """One image of an engine build, as a worker gets it (picklable)."""

    folder: str
    image_id: str
    spec: dict[str, Any]
    image_key: str | None                  # None: the image is stored already
    maps: list[tuple[str, str, str]]       # (concept, method, record key) still to compute
    concepts: list[str]
    bank: str
    style: str
    params: dict[str, dict[str, Any]]


@dataclass
class _ImageDone:
    """What a worker stored for one image: the image record (if it wrote one) and map records."""

    image: dict[str, Any] | None
    maps: list[tuple[str, dict[str, Any]]]
    host: str


def _build_image(model: Any, unit: _ImageUnit, ctx: Any) -> _ImageDone:
    """An executor's unit: score and store one image, then every missing map of it (files and
    records written atomically, as they finish). Emits ("image", seconds) and ("map", MapEvent);
    calls ``ctx.check()`` between maps."""
    import socket

    from convis_core import ConvisError, concept_scores, explain, load_image, render_png

    folder = Path(unit.folder)
    ctx.check()
    t0 = time.perf_counter()
    source = unit.spec["image"] if "image" in unit.spec else unit.spec["path"]
    try:
        loaded = load_image(source)
    except ConvisError as exc:
        raise StimulusError(f"image {unit.image_id!r}: {exc}") from None
    image = None
    if unit.image_key is not None:
        buf = io.BytesIO()
        loaded.original.save(buf, format="PNG")
        try:
            scores = {k: float(v) for k, v in concept_scores(model, loaded, list(unit.concepts)).items()}
        except ConvisError as exc:
            raise StimulusError(f"image {unit.image_id!r}: model scores: {exc}") from None
        rel = f"images/{_SAFE.sub('_', unit.image_id)}.png"
        png = buf.getvalue()
        _atomic_write(folder / rel, png)
        image = {"file": rel, "sha256": sha256_bytes(png), "concept_scores": scores}
        _write_record(folder, unit.image_key, image)
        ctx.emit(("image", time.perf_counter() - t0))
    maps: list[tuple[str, dict[str, Any]]] = []
    firsts: set[str] = set()
    for concept, method, key in unit.maps:
        ctx.check()
        t0 = time.perf_counter()
        try:
            res = explain(model, loaded, concept, method=method, bank=unit.bank, **unit.params.get(method, {}))
        except ConvisError as exc:
            raise StimulusError(f"image {unit.image_id!r}, concept {concept!r}, method {method!r}: {exc}") from None
        meta = json.loads(res.metadata_json())
        meta.pop("timings", None)  # wall-clock noise: equal inputs give equal files
        entry = _store_map(folder, unit.image_id, concept, method, key,
                           render_png(res, loaded.original, style=unit.style), meta)
        maps.append((key, entry))
        first = method not in firsts
        firsts.add(method)
        ctx.emit(("map", MapEvent(unit.image_id, concept, method, True, first, time.perf_counter() - t0)))
    return _ImageDone(image, maps, socket.gethostname())


def _write_record(folder: Path, key: str, data: dict[str, Any]) -> None:
    (folder / BUILD_DIR).mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / BUILD_DIR / f"{key}.json", canonical_json(data).encode())


def _store_map(folder: Path, image_id: str, concept: str, method: str, key: str, png: bytes,
               meta: dict[str, Any]) -> dict[str, Any]:
    sid = _SAFE.sub("_", f"{image_id}__{concept}__{method}")
    map_rel, meta_rel = f"maps/{sid}.png", f"meta/{sid}.json"
    meta_bytes = canonical_json(meta).encode()
    _atomic_write(folder / map_rel, png)
    _atomic_write(folder / meta_rel, meta_bytes)
    entry = StimulusEntry(id=sid, image=image_id, concept=concept, method=method,
                          map=map_rel, map_sha256=sha256_bytes(png), meta=meta_rel,
                          meta_sha256=sha256_bytes(meta_bytes),
                          random_weights=bool(meta.get("random_weights", False))).model_dump(mode="json")
    _write_record(folder, key, entry)
    return entry


def build_engine_stimuli(folder: str | Path, images: dict[str, dict[str, Any]], concepts: list[str],
                         methods: list[str], model_name: str | None = None, pretrained: str | None = None,
                         style: str = "whitefade", bank: str = "all",
                         params: dict[str, dict[str, Any]] | None = None, model: Any = None,
                         progress: Progress | None = None, observer: BuildObserver | None = None) -> Manifest:
    """Render every (image, concept, method) with `convis_core` and write a stimulus folder.

    `images` maps image id -> {"path": file} or {"image": PIL image}, plus optional "label" and
    "boxes". `methods` are `convis_core` method names or aliases (the stimulus keeps the name used
    here); `params` gives per-method engine parameters and `bank` the ConVis concept bank. Ground
    truth per image is `convis_core.concept_scores` over all `concepts`. The model is `model` (an
    already loaded `convis_core.ClipModel`) or `load_model(*resolve_model(model_name, pretrained))`.
    The manifest records the model identity and carries ``random_weights`` when the model had
    random weights. Engine errors become `StimulusError`s naming the image, concept and method.
    Resumable: outputs already stored in `folder` are kept (`EngineBuild`). Returns the `Manifest`.
    """
    build = EngineBuild(folder, images, concepts, methods, model_name, pretrained, style, bank, params, model)
    return build.run(observer, progress)


def _engine_aliases() -> set[str]:
    from convis_core.methods import ALIASES

    return set(ALIASES)

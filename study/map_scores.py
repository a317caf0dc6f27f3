"""Automatic scores of a version's maps where its images carry ground-truth boxes (Shapes-world
scenes, or listed images with `boxes`): the pointing game against the concept's own boxes and
the deletion AUC, both from `convis_core.metrics`.

A stimulus folder keeps rendered pictures, not saliency arrays, so every map is recomputed with
the engine from its stored metadata (model, method, parameters, bank) and rendered again. Only a
map whose PNG equals the stored one byte for byte (sha256) is scored: the scores belong to
exactly the pictures people saw, and a map that cannot be reproduced is counted, never guessed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from study.db import Database
from study.errors import NotFound
from study.models import StudyVersion
from study.spec import SYNSET
from study.stimuli import ImageEntry, Manifest
from study.versions import VersionContext, version_context

Box = tuple[float, float, float, float]
COLUMNS = ["item", "concept", "method", "in_scene", "pointing", "deletion_auc", "verified"]


def concept_boxes(entry: ImageEntry) -> dict[str, list[Box]]:
    """Ground-truth boxes per concept of one image: a label 'a.n.01, b.n.01' pairs its synsets
    with the boxes in order (Shapes-world scenes); a single synset owns every box. Else none."""
    names = [x.strip() for x in (entry.label or "").split(",") if x.strip()]
    if not entry.boxes or not names or not all(SYNSET.match(n) for n in names):
        return {}
    boxes = [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in entry.boxes]
    if len(names) == 1:
        return {names[0]: boxes}
    if len(names) != len(boxes):
        return {}
    out: dict[str, list[Box]] = {}
    for name, box in zip(names, boxes, strict=True):
        out.setdefault(name, []).append(box)
    return out


def unavailable(manifest: Manifest) -> str | None:
    """Why a version's maps cannot be scored against ground truth, or None when they can."""
    if manifest.synthetic:
        return "the stimuli are synthetic demo pictures (made-up maps, no engine behind them)"
    if not any(concept_boxes(e) for e in manifest.images.values()):
        return "no image has ground-truth boxes with its concepts (Shapes-world scenes and listed images with `boxes` do)"
    return None


def context(db: Database, version_id: int) -> VersionContext:
    """The frozen version's spec, manifest and items."""
    with db.session() as s:
        v = s.get(StudyVersion, version_id)
        if v is None:
            raise NotFound(f"no study version {version_id}")
        return version_context(db.url, v.id, v.config_json, v.stimuli_dir, v.manifest_sha256, v.version)


def score_maps(db: Database, version_id: int, deletion_steps: int = 16,
               progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per map shown for an item's candidate concepts (item, concept, method): whether the
    concept is in the scene, the pointing-game hit (in-scene concepts only), the deletion AUC
    (`deletion_steps` + 1 points; lower: removing the map's top pixels hurts CLIP's score sooner)
    and whether the recomputed map reproduced the stored picture. Scores are NaN when unverified."""
    import convis_core as cc
    from convis_core.methods import ExplainContext
    from convis_core.metrics import perturbation_curve, pointing_game
    from convis_core.wordnet import nouns

    ctx = context(db, version_id)
    manifest, folder = ctx.manifest, Path(ctx.stimuli_dir)
    seed = _random_seed(manifest)
    model = cc.load_model_cached(manifest.model.name, manifest.model.pretrained or "none", seed=seed)
    jobs = [(item, concept, method) for item in ctx.items for concept in item.candidates
            for method in ctx.spec.methods if manifest.find(item.image, concept, method)]
    rows: list[dict[str, Any]] = []
    for n, (item, concept, method) in enumerate(jobs):
        if progress:
            progress(n, len(jobs))
        entry = manifest.find(item.image, concept, method)
        image = manifest.images[item.image]
        meta = json.loads((folder / entry.meta).read_text())
        bank, mode = _bank(meta, manifest)
        loaded = cc.load_image(folder / image.file)
        res = cc.explain(model, loaded, concept, method=meta["method"], bank=bank, text_mode=mode,
                         **meta.get("params", {}))
        png = cc.render_png(res, loaded.original, style=manifest.style)
        verified = hashlib.sha256(png).hexdigest() == entry.map_sha256
        boxes = [_to_frame(b, loaded.frame) for b in concept_boxes(image).get(concept, [])]
        row = {"item": item.image, "concept": concept, "method": method, "in_scene": bool(boxes),
               "pointing": float("nan"), "deletion_auc": float("nan"), "verified": verified}
        if verified:
            if boxes:
                row["pointing"] = float(pointing_game(res.map, boxes))
            ectx = ExplainContext(model, loaded, nouns().synset(concept), bank, mode)
            row["deletion_auc"] = perturbation_curve(model, ectx.frame_tensor(), res.map, ectx.text_embedding,
                                                     "deletion", steps=deletion_steps).auc
        rows.append(row)
    if progress:
        progress(len(jobs), len(jobs))
    return pd.DataFrame(rows, columns=COLUMNS)


def _bank(meta: dict[str, Any], manifest: Manifest) -> tuple[str, str]:
    """The bank and text mode a map was made with: its metadata's 'SPEC:MODE', else the manifest's bank."""
    stored = meta.get("bank")
    if stored and str(stored).rsplit(":", 1)[-1] in ("definitions", "lemmas"):
        bank, mode = str(stored).rsplit(":", 1)
        return bank, mode
    return str(stored or (manifest.model.model_extra or {}).get("bank") or "all"), "definitions"


def _random_seed(manifest: Manifest) -> int:
    """The seed of a random-weights model, from its weights id ('random-seed<N>'); 0 otherwise."""
    wid = str((manifest.model.model_extra or {}).get("weights_id", ""))
    return int(wid.removeprefix("random-seed")) if wid.startswith("random-seed") and wid[11:].isdigit() else 0


def _to_frame(box: Box, frame: Any) -> Box:
    """A box in original pixels -> the 224-px frame the maps live in (centre square, scaled)."""
    k = frame.size / frame.side
    x0, y0, x1, y1 = box
    return ((x0 - frame.left) * k, (y0 - frame.top) * k, (x1 - frame.left) * k, (y1 - frame.top) * k)

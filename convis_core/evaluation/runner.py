"""Run an evaluation into a folder: tasks -> (cached) per-item records -> figures, files, plots.

The per-item work goes through ``mapper`` (default: the built-in ``map``, one process): any callable
with ``map``'s signature that returns results in order can run the items elsewhere, e.g. a process
pool's ``map`` or an executor of ``convis_core.executors``. Records are cached in the run folder
as they arrive, so a stopped run, started again with the same folder, does only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConvisError
from .cache import file_sha256, item_key
from .datasets import Sample, read_wnid_folders, read_wsol, subsample
from .runs import StateWriter, write_json
from .tasks import ModelSpec, OodTask, WsolTask, ood_item, wsol_item

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]
METRICS_VERSION = 1  # bump when a per-item record changes meaning (invalidates caches)


@dataclass
class RunConfig:
    """Everything a run depends on (written to ``config.json``; a folder's identity)."""

    kind: str  # wsol | ood
    data: str
    out: str
    model: str
    pretrained: str
    model_seed: int = 0
    device: str | None = None
    sample: int | None = None
    seed: int = 0
    # wsol
    concept: str = ""
    methods: list[str] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    bank: str = "all"
    text_mode: str = "definitions"
    format: str = "auto"
    split: str = "test"
    gallery: int = 4
    # ood
    in_synset: str = ""
    out_synset: str = ""
    preset: str = ""
    resnet50: str | None = None
    plots: bool = True


def _software() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("torch", "open_clip_torch", "numpy", "scipy", "scikit-learn", "torchvision", "convis-studio"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    try:
        import subprocess

        from ..paths import PROJECT_ROOT

        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                           text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _progress(items: Iterable[Any], total: int, desc: str, state: StateWriter, show: bool) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, disable=not show, file=sys.stderr, dynamic_ncols=True) as bar:
        for i, x in enumerate(items, 1):
            bar.update(1)
            state.progress(i, total, desc)
            yield x


def _prepare(cfg: RunConfig) -> tuple[Path, StateWriter, Any]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    old = (out / "config.json")
    if old.is_file():
        prev = json.loads(old.read_text())
        if {k: v for k, v in prev.items() if k != "plots"} != {k: v for k, v in asdict(cfg).items() if k != "plots"}:
            raise ConvisError(f"{out} holds a run with another configuration: give another --out (or delete it)")
    write_json(old, asdict(cfg))
    (out / "cache").mkdir(exist_ok=True)
    state = StateWriter(out)
    model = ModelSpec(cfg.model, cfg.pretrained, cfg.model_seed, cfg.device).load()
    return out, state, model


# ------------------------------------------------------------------------------------ WSOL
def wsol_tasks(cfg: RunConfig, samples: list[Sample], model_key: str, methods: list[str]) -> list[WsolTask]:
    spec = ModelSpec(cfg.model, cfg.pretrained, cfg.model_seed, cfg.device)
    cache = Path(cfg.out) / "cache"
    tasks = []
    for s in samples:
        digest = file_sha256(s.path) if s.path.is_file() else f"missing:{s.path}"
        for m in methods:
            params = json.dumps(cfg.params.get(m, {}), sort_keys=True)
            key = item_key(v=METRICS_VERSION, kind="wsol", model=model_key, image=digest, boxes=s.boxes, concept=cfg.concept,
                           method=m, params=params, bank=cfg.bank, text_mode=cfg.text_mode)
            tasks.append(WsolTask(str(cache / f"{key}.npz"), spec, str(s.path), tuple(s.boxes), cfg.concept, m, params,
                                  cfg.bank, cfg.text_mode))
    return tasks


def run_wsol(cfg: RunConfig, mapper: Mapper = map, show_progress: bool = True) -> dict[str, Any]:
    """A localisation run (see the module docstring); returns the summary."""
    from ..methods import get_method
    from ..wordnet import nouns
    from .report import write_wsol_files, wsol_summary

    if not cfg.methods:
        raise ConvisError("name at least one method (--methods)")
    nouns().synset(cfg.concept)  # unknown concepts fail here, with suggestions
    for m in cfg.methods:
        get_method(m)
    samples = subsample(read_wsol(Path(cfg.data), cfg.format, cfg.split), cfg.sample, cfg.seed)
    out, state, model = _prepare(cfg)
    try:
        skipped = {m: r for m in cfg.methods if (r := get_method(m).unsupported_reason(model))}
        methods = [m for m in cfg.methods if m not in skipped]
        tasks = wsol_tasks(cfg, samples, model.key, methods)
        records = list(_progress(mapper(wsol_item, tasks), len(tasks), "wsol", state, show_progress))
        summary = wsol_summary(cfg, model, samples, methods, tasks, records, skipped, _software())
        write_wsol_files(out, cfg, samples, tasks, records, summary)
    except BaseException as e:
        state.write(state="failed", error=f"{type(e).__name__}: {e}", finished=time.time())
        raise
    state.write(state="done", finished=time.time())
    return summary


# ------------------------------------------------------------------------------------- OOD
def run_ood(cfg: RunConfig, mapper: Mapper = map, show_progress: bool = True) -> dict[str, Any]:
    """An OOD-detection run: the paper's three text scores (and ResNet-50's maximum logit)."""
    from ..wordnet import nouns
    from .presets import ood_texts
    from .report import ood_summary, write_ood_files

    for s in (cfg.in_synset, cfg.out_synset):
        nouns().synset(s)
    if cfg.resnet50 and not Path(cfg.resnet50).is_file():
        raise ConvisError(f"ResNet-50 weights not found: {cfg.resnet50}")
    samples, folders = read_wnid_folders(Path(cfg.data), cfg.in_synset, cfg.out_synset)
    samples = subsample(samples, cfg.sample, cfg.seed, stratify=True)
    out, state, model = _prepare(cfg)
    try:
        spec = ModelSpec(cfg.model, cfg.pretrained, cfg.model_seed, cfg.device)
        rn = file_sha256(Path(cfg.resnet50)) if cfg.resnet50 else None
        tasks = [OodTask(str(out / "cache" / f"{item_key(v=METRICS_VERSION, kind='ood', model=model.key, image=file_sha256(s.path), resnet=rn)}.npz"),
                         spec, str(s.path), cfg.resnet50) for s in samples]
        records = list(_progress(mapper(ood_item, tasks), len(tasks), "ood", state, show_progress))
        texts = ood_texts(cfg.in_synset)
        state.write(stage="texts")
        text_emb = {k: model.encode_texts(v).float().cpu().numpy() for k, v in texts.items()}
        scores: dict[str, np.ndarray] = {}
        ok = [i for i, r in enumerate(records) if not r.get("error")]
        emb = np.stack([records[i]["embedding"] for i in ok]) if ok else np.zeros((0, 1))
        for k, t in text_emb.items():
            scores[k] = (emb @ t.T).max(axis=1)
        if cfg.resnet50:
            scores["resnet50_max_logit"] = np.array([float(records[i]["resnet_max_logit"]) for i in ok])
        summary = ood_summary(cfg, model, [samples[i] for i in ok], scores, texts, folders, records, _software())
        write_ood_files(out, cfg, samples, records, ok, scores, summary)
    except BaseException as e:
        state.write(state="failed", error=f"{type(e).__name__}: {e}", finished=time.time())
        raise
    state.write(state="done", finished=time.time())
    return summary


def finite(x: float) -> float | None:
    """JSON-safe float (None for nan/inf)."""
    return None if x is None or not math.isfinite(x) else float(x)

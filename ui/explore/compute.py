"""Everything the page computes, through `convis_core`'s public API, with caches.

Results are kept in one process-wide store keyed by what they depend on (model identity, image
content hash, concept, method, bank, text mode and the method's parameters), so going back to an
image, a concept or a method is a dictionary look-up. Errors are not cached."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import streamlit as st

import convis_core as cc
from convis_core.methods import ExplainContext

Progress = Callable[[int, int], None]


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def model_for(name: str, pretrained: str) -> cc.ClipModel:
    return cc.load_model(name, pretrained)


@st.cache_resource(show_spinner=False, max_entries=8)
def _loaded(digest: str, _raw: bytes) -> cc.LoadedImage:
    return cc.load_image(_raw)


def load(raw: bytes) -> cc.LoadedImage:
    """The image through the CLI's safe loader (`InvalidImageError` with its one-line reason)."""
    return _loaded(hashlib.sha256(raw).hexdigest(), raw)


class Store:
    """A bounded, thread-safe map of computed results (LRU)."""

    def __init__(self, size: int = 512) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: tuple, value: Any) -> Any:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


@st.cache_resource
def store() -> Store:
    return Store()


@dataclass(frozen=True)
class Request:
    """One map: what it depends on. `params` holds only the method's own parameters."""

    model: cc.ClipModel
    image: cc.LoadedImage
    concept: str
    method: str
    bank: str
    mode: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> tuple:
        return (self.model.key, self.image.sha256, self.concept, self.method, self.bank, self.mode,
                json.dumps(dict(self.params), sort_keys=True, default=str))

    def context(self) -> ExplainContext:
        return ExplainContext(self.model, self.image, cc.nouns().synset(self.concept), self.bank, self.mode)


def request(model: cc.ClipModel, image: cc.LoadedImage, concept: str, method: str, bank: str, mode: str,
            params: dict[str, Any] | None = None) -> Request:
    return Request(model, image, concept, method, bank, mode, tuple(sorted((params or {}).items())))


def cached(req: Request) -> cc.SaliencyResult | None:
    return store().get(("map",) + req.key)


def explain(req: Request, progress: Progress | None = None) -> tuple[cc.SaliencyResult, float, bool]:
    """The map (from the store, else computed): (result, server seconds, was it cached)."""
    t0 = time.perf_counter()
    hit = cached(req)
    if hit is not None:
        return hit, time.perf_counter() - t0, True
    res = cc.explain(req.model, req.image, req.concept, method=req.method, bank=req.bank, text_mode=req.mode,
                     progress=progress, **dict(req.params))
    store().put(("map",) + req.key, res)
    return res, time.perf_counter() - t0, False


def progressive_available() -> bool:
    """Whether the engine offers progressive maps (`convis_core.explain_progressive`)."""
    return hasattr(cc, "explain_progressive")


def explain_stages(req: Request, progress: Progress | None = None) -> Iterator[cc.SaliencyResult]:
    """The engine's progressive map: a coarse result (when it has one), then the final one, which
    is stored like any other map."""
    final = None
    for res in cc.explain_progressive(req.model, req.image, req.concept, method=req.method, bank=req.bank,
                                      text_mode=req.mode, progress=progress, **dict(req.params)):
        final = res
        yield res
    if final is not None:
        store().put(("map",) + req.key, final)


def unsupported(model: cc.ClipModel, method: str) -> str | None:
    """Why `method` cannot explain `model` (None when it can)."""
    return cc.REGISTRY[method].unsupported_reason(model)


def auc(req: Request, res: cc.SaliencyResult, steps: int = 16) -> dict[str, float]:
    """Deletion and insertion AUC of a map (Petsiuk et al. 2018; `convis_core.metrics`)."""
    from convis_core.metrics import deletion_insertion

    key = ("auc", steps) + req.key
    hit = store().get(key)
    if hit is None:
        curves = deletion_insertion(req.context(), res.map, steps=steps)
        hit = store().put(key, {f"{k}_auc": c.auc for k, c in curves.items()})
    return hit


def sanity(reqs: list[Request], layers: int) -> dict[str, Any]:
    """The model-randomisation check (Adebayo et al. 2018; `convis_core.metrics`) of the methods of
    `reqs` (one image and concept), over the top `layers` layer groups."""
    from convis_core.metrics import model_randomisation

    key = ("sanity", layers) + tuple(r.key for r in reqs)
    hit = store().get(key)
    if hit is None:
        ctx = reqs[0].context()
        res = model_randomisation(ctx, [r.method for r in reqs], {r.method: dict(r.params) for r in reqs},
                                  max_steps=layers)
        hit = store().put(key, res.as_dict())
    return hit


def top_concepts(model: cc.ClipModel, image: cc.LoadedImage, bank: str, mode: str, k: int = 8,
                 region: tuple[float, float, float, float] | None = None) -> list[cc.ConceptHit]:
    """What CLIP sees: the best concepts of the bank for the image, or for a region of it."""
    key = ("top", model.key, image.sha256, bank, mode, k, region)
    hit = store().get(key)
    if hit is None:
        hit = store().put(key, cc.top_concepts(model, image, k=k, bank=bank, text_mode=mode, region=region))
    return hit


@st.cache_data(show_spinner=False, max_entries=64)
def leaf_counts(bank: str, mode: str, names: tuple[str, ...]) -> dict[str, int]:
    """How many of each concept's leaves (itself and everything below it) the bank holds."""
    import numpy as np

    b = cc.get_bank(bank, mode)
    out = {}
    for name in names:
        try:
            out[name] = int(len(np.unique(b.row_synset[b.leaves(name)])))
        except cc.EmptyConceptError:
            out[name] = 0
    return out


def banks_holding(concept: str, banks: list[str], mode: str) -> dict[str, int]:
    """Of `banks`, those that hold some of the concept's leaves, with how many."""
    counts = {b: leaf_counts(b, mode, (concept,))[concept] for b in banks}
    return {b: n for b, n in counts.items() if n}

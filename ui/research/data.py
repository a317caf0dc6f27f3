"""What the Analysis page shows, computed by `study.analysis` and cached per data version.

Every cached call is keyed by the database URL, the study version and `study.monitor.data_version`'s
fingerprint, so a new answer, status change or log line recomputes, and nothing else does. The
mixed-effects model (seconds on a full study) is fitted in a background thread while the rest of
the page is drawn; its future is kept per (data version, exclusion rules).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from study import analysis, protocols
from study.db import connect
from study.export import load_frames

MAX_JOBS = 16


@st.cache_data(max_entries=8, show_spinner="Loading the responses…")
def frames(url: str, slug: str, version: int, fingerprint: tuple[Any, ...]) -> dict[str, Any]:
    """`study.export.load_frames` of one version at one data version."""
    return load_frames(connect(url), slug, version)


@st.cache_data(max_entries=32, show_spinner="Computing the analyses…")
def results(url: str, slug: str, version: int, fingerprint: tuple[Any, ...], rules: tuple[str, ...]) -> dict[str, Any]:
    """Every analysis that applies to the version's protocol, with the exclusion `rules` applied:
    the tables `study.analysis` returns, the main trials, and the CONSORT flow."""
    fr = analysis.with_exclusions(frames(url, slug, version, fingerprint), rules)
    spec, part = fr["spec"], fr["participants"]
    trials = analysis.main_trials(fr)
    kind = protocols.get(spec.protocol.name).analysis   # accuracy | bradley_terry | likert
    out: dict[str, Any] = {
        "protocol": spec.protocol.name, "kind": kind, "scored": kind == "accuracy",
        "chance": analysis.chance_level(spec),
        "consort": analysis.consort(fr), "trials": trials[["participant_id", "item", "method", "correct", "score",
                                                            "rt_ms"]].reset_index(drop=True),
        "completed": int((part.status == "completed").sum()), "excluded": int(part.excluded.sum()),
        "responses": len(fr["responses"]), "info": fr["info"], "methods": list(spec.methods),
        "questionnaire": analysis.questionnaire_likert(fr), "errors": {},
    }
    if trials.empty:
        return out
    out["rt"] = analysis.rt_summary(trials)
    if kind == "accuracy":
        out["accuracy"] = analysis.accuracy_table(trials)
        out["items"] = analysis.accuracy_by_item(trials)
        out["pairwise"] = _guard(out, "pairwise", lambda: analysis.pairwise_methods(trials))
    elif kind == "bradley_terry":
        out["bt"] = _guard(out, "bradley_terry", lambda: analysis.bradley_terry(trials))
    elif kind == "likert":
        out["likert"] = _guard(out, "likert", lambda: analysis.likert_summary(trials))
        out["likert_long"] = analysis.likert_long(trials)
    return out


def _guard(out: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    """Run one analysis; a model that cannot be fitted on these data (too few answers, perfect
    separation, a singular design) is reported on the page instead of stopping it."""
    try:
        return fn()
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
        out["errors"][name] = str(exc) or type(exc).__name__
        return None


class _Jobs:
    """One background worker and the futures of its recent jobs (bounded)."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convis-analysis")
        self.futures: OrderedDict[tuple[Any, ...], Future] = OrderedDict()
        self.lock = threading.Lock()

    def submit(self, key: tuple[Any, ...], fn: Callable[..., Any], *args: Any) -> Future:
        with self.lock:
            fut = self.futures.get(key)
            if fut is None:
                fut = self.futures[key] = self.pool.submit(fn, *args)
                while len(self.futures) > MAX_JOBS:
                    self.futures.popitem(last=False)
            return fut


@st.cache_resource
def _jobs() -> _Jobs:
    return _Jobs()


def mixed_model(url: str, version_id: int, fingerprint: tuple[Any, ...], rules: tuple[str, ...],
                trials: pd.DataFrame) -> Future:
    """The mixed-effects logistic model of `trials`, fitted in the background (one fit per key)."""
    return _jobs().submit(("mixed", url, version_id, fingerprint, rules), analysis.mixed_logit, trials)


@st.cache_data(max_entries=64, show_spinner=False)
def power(accuracy: tuple[tuple[str, float], ...], n_per_condition: int, n_trials: int, design: str,
          n_sims: int) -> dict[str, float]:
    """`study.analysis.power` (same inputs, same answer: the seed is fixed)."""
    return analysis.power(dict(accuracy), n_per_condition, n_trials, design, n_sims=n_sims)


@st.cache_data(max_entries=8, show_spinner=False)
def map_scores(url: str, version_id: int) -> pd.DataFrame:
    """`study.map_scores.score_maps` of a version (its maps never change, so once per process)."""
    from study.map_scores import score_maps

    return score_maps(connect(url), version_id)

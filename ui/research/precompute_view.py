"""Precompute: the estimate before starting, then the background job's progress, live."""

from __future__ import annotations

import streamlit as st

from study import jobs
from study.db import Database
from study.errors import StudyError
from study.spec import StudySpec


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else \
        f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def precompute(db: Database, slug: str, spec: StudySpec) -> None:
    if spec.stimuli.source == "synthetic":
        st.info("Synthetic demo stimuli (made-up ground truth) are built in seconds when you launch.")
    measure = st.button("Measure the estimate on this machine", key=f"pre_measure_{slug}",
                        help="Loads the model and draws one map per method (seconds to minutes).")
    try:
        est = jobs.estimate(spec, db=db, calibrate=measure)
    except StudyError as exc:
        st.warning(f"No estimate: {exc}")
    else:
        known = ", ".join(f"{m}: {_duration(t)}" for m, t in est.per_method_seconds.items())
        missing = [m for m in spec.methods if m not in est.per_method_seconds]
        st.markdown(f"**{_n(est.n_images, 'image')} × {_n(est.n_concepts, 'concept')} × "
                    f"{_n(est.n_methods, 'method')} = {_n(est.n_maps, 'map')}**" + (f", estimated **{_duration(est.seconds)}** on this machine"
                                              if not missing else "") + ".")
        if known:
            st.caption(known)
        if missing:
            st.caption(f"No measured figures yet for {', '.join(missing)}: measure them, or start (the running "
                       "job estimates the time left as it goes).")
    if jobs.ready(spec):
        st.success("The stimuli of this spec are stored. Preview them, then launch.")
    live = st.fragment(_progress, run_every=2)
    live(db, slug)


def _progress(db: Database, slug: str) -> None:
    job = jobs.status(db, slug)
    running = job is not None and job.state in ("queued", "running") and job.alive
    start, stop, _ = st.columns([1, 1, 3])
    if start.button("Start precompute" if job is None or job.state != "done" else "Recompute missing",
                    key=f"pre_start_{slug}", type="primary", disabled=running):
        try:
            jobs.start(db, slug)
        except StudyError as exc:
            st.error(str(exc))
        st.rerun(scope="fragment")
    if stop.button("Cancel", key=f"pre_cancel_{slug}", disabled=not running):
        jobs.cancel(db, slug)
        st.rerun(scope="fragment")
    if job is None:
        st.caption("Not started yet. The job runs in its own process: you can close this page.")
        return
    watching = f"pre_watching_{slug}"
    if running:
        st.session_state[watching] = True
    elif st.session_state.pop(watching, False):
        st.rerun()    # the job just ended: redraw the whole page (preview and launch see the stimuli)
    share = job.done / job.total if job.total else 0.0
    text = f"{job.state}: {job.done} of {job.total} maps"
    if running and job.eta_seconds is not None:
        text += f" · about {_duration(job.eta_seconds)} left"
    st.progress(min(1.0, share), text=text)
    if job.state in ("queued", "running") and not job.alive:
        st.warning("The worker stopped answering (heartbeat lost). Start again: stored maps are kept.")
    if job.error:
        st.error(job.error)
    with st.expander("Worker log"):
        st.code(job.log_tail() or "(empty)", language=None)

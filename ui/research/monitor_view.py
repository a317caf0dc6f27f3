"""Draw a `study.monitor.Snapshot`: recruitment against the target, the flow, quality, times and
activity. Participants appear by the first characters of their opaque id."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pandas as pd
import streamlit as st

from study.monitor import Snapshot
from ui.research import charts

STATUS_BADGE = {"live": ":green-badge[live]", "paused": ":orange-badge[paused]", "closed": ":gray-badge[closed]"}


def chart(builder: str, *args: Any, stretch: bool = True) -> None:
    """An altair chart of `ui.research.charts`, its Vega-Lite spec built once per distinct input:
    a refresh where nothing moved costs no chart building or schema validation."""
    spec = json.loads(_spec(builder, json.dumps(args, sort_keys=True, default=str)))
    st.vega_lite_chart(spec=spec, width="stretch" if stretch else "content")


@lru_cache(maxsize=64)
def _spec(builder: str, args_json: str) -> str:
    return json.dumps(getattr(charts, builder)(*json.loads(args_json)).to_dict(validate=False))


def draw(snap: Snapshot) -> None:
    """The whole live panel of the Monitor page."""
    st.markdown(f"**{snap.title}** · `{snap.slug}` v{snap.version} · {snap.protocol} · "
                f"{STATUS_BADGE.get(snap.study_status, snap.study_status)}")
    st.caption(f"Updated {snap.taken_at:%H:%M:%S} UTC · target {snap.target_per_condition} consented "
               f"participants per condition ({len(snap.conditions)} conditions)")
    flow = snap.consort
    cols = st.columns(5)
    cols[0].metric("Started", flow["started"])
    cols[1].metric("In progress", flow["in_progress"])
    cols[2].metric("Completed", flow["completed"])
    cols[3].metric("Consented / target", f"{sum(snap.filled.values())} / "
                                         f"{snap.target_per_condition * len(snap.conditions)}")
    cols[4].metric("Excluded", snap.excluded, help="completed participants the spec's exclusion rules exclude: "
                   + (", ".join(snap.exclude_rules) or "none"))
    if flow["started"] == 0:
        st.info("No participants yet. The study link is `?study=" + snap.slug + "`; this page refreshes on its own.")
        return
    left, right = st.columns(2)
    with left:
        st.subheader("By condition and status")
        chart("status_by_condition", snap.counts, snap.target_per_condition)
        st.caption(f"n = {flow['started']} participants; dashed line: target per condition")
    with right:
        st.subheader("Flow")
        chart("consort_flow", flow, stretch=False)
        st.caption(f"n = {flow['started']} participants")
    _quality_and_times(snap)
    _activity(snap)


def _quality_and_times(snap: Snapshot) -> None:
    flags, times, outs = st.columns(3)
    with flags:
        st.subheader("Quality flags")
        chart("flags", snap.flags, snap.exclude_rules)
        st.caption(f"n = {snap.consort['completed']} completed participants")
    with times:
        st.subheader("Time per trial")
        if snap.rt_median_ms is None:
            st.caption("No trial answered yet.")
        else:
            a, b = st.columns(2)
            a.metric("Median", f"{snap.rt_median_ms / 1000:.1f} s")
            b.metric("90th percentile", f"{snap.rt_p90_ms / 1000:.1f} s")
            chart("median_times", snap.rt_by_condition)
            st.caption(f"{snap.trials_answered} trials answered")
    with outs:
        st.subheader("Timed out")
        t = snap.timed_out
        a, b, c = st.columns(3)
        a.metric("Idle limit", t.get("idle", 0))
        b.metric("Total limit", t.get("total", 0))
        c.metric("Reclaimed", t.get("reclaimed", 0), help="sessions found past a limit when someone new started "
                                                          "and marked abandoned then")
        stale = sum(s.past_limit for s in snap.live)
        if stale:
            st.caption(f"{stale} open session(s) are past a time limit and will be reclaimed at the next start.")


def _activity(snap: Snapshot) -> None:
    recent, live = st.columns(2)
    with recent:
        st.subheader("Recent activity")
        df = pd.DataFrame([{"time (UTC)": a.at.strftime("%H:%M:%S"), "event": a.kind, "participant": a.participant,
                            "detail": a.detail} for a in snap.recent])
        st.dataframe(df, hide_index=True, width="stretch")
    with live:
        st.subheader("Open sessions")
        if not snap.live:
            st.caption("No session is open right now.")
            return
        df = pd.DataFrame([{"participant": s.participant, "condition": s.condition, "status": s.status,
                            "progress": s.step / s.n_steps if s.n_steps else 0.0,
                            "step": f"{s.step} / {s.n_steps}", "idle": _ago(s.idle_s),
                            "past limit": s.past_limit} for s in snap.live])
        st.dataframe(df, hide_index=True, width="stretch", column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent")})


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

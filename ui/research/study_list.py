"""The list of studies: status, version, counts against the target; pick one to open."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from study.overview import StudyRow


def study_table(rows: list[StudyRow]) -> str | None:
    """A table of every study; returns the slug the researcher opens."""
    if not rows:
        st.info("No studies yet. Create one below (an example is the quickest start).")
        return None
    frame = pd.DataFrame([{
        "study": r.slug, "title": r.title, "status": r.status, "version": r.version, "protocol": r.protocol,
        "completed": r.completed, "in progress": r.in_progress,
        "target": r.target or None, "updated": r.updated_at} for r in rows])
    st.dataframe(frame, hide_index=True, use_container_width=True,
                 column_config={"completed": st.column_config.ProgressColumn(
                     "completed", format="%d", min_value=0, max_value=max(1, max(r.target for r in rows)))})
    slugs = [r.slug for r in rows]
    current = st.session_state.pop("studies_open", None) or st.query_params.get("open")
    if current in slugs and current != st.session_state.get("studies_pick"):
        st.session_state["studies_pick"] = current
    slug = st.selectbox("Open", slugs, key="studies_pick")
    st.query_params["open"] = slug        # a reload or a shared link opens the same study
    return slug

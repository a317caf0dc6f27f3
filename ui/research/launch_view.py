"""Launch (freeze a version), pause, resume, close, and the participant link to copy."""

from __future__ import annotations

import streamlit as st

from study.db import Database
from study.errors import StudyError
from study.overview import StudyRow
from study.spec import StudySpec
from study.versions import launch, set_status

PLACEHOLDERS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def participant_link(base_url: str, slug: str, prolific: bool = True) -> str:
    """The study URL for Prolific, with its placeholders as Prolific expects them."""
    link = f"{base_url.rstrip('/')}/?study={slug}"
    return f"{link}&{PLACEHOLDERS}" if prolific else link


def _base_url() -> str:
    url = getattr(st.context, "url", None)
    if isinstance(url, str) and url.startswith("http"):
        return url.split("?")[0].rsplit("/", 1)[0] if url.count("/") > 3 else url.split("?")[0]
    return "http://localhost:8501"


def launch_panel(db: Database, row: StudyRow | None, spec: StudySpec | None) -> None:
    if spec is not None:
        label = "Launch" if row is None or row.status == "draft" else "Launch the edited spec as a new version"
        if st.button(label, key=f"launch_{spec.id}", type="primary"):
            try:
                with st.spinner("Freezing the version (building synthetic stimuli if needed)…"):
                    info = launch(db, spec)
            except StudyError as exc:
                st.error(str(exc))
            else:
                st.success(f"{info.slug} version {info.version} is live ({info.config_sha256[:12]}).")
                st.rerun()
    if row is None or row.status == "draft":
        st.caption("Not launched yet: launching freezes the spec and its stimuli as version 1.")
        return
    st.markdown(f"Status: **{row.status}** · version {row.version}")
    cols = st.columns(3)
    for col, (status, label) in zip(cols, (("paused", "Pause"), ("live", "Resume"), ("closed", "Close")), strict=True):
        if col.button(label, key=f"status_{row.slug}_{status}", disabled=row.status == status):
            set_status(db, row.slug, status)
            st.rerun()
    prolific = spec is None or spec.recruitment.platform == "prolific"
    st.markdown("**Participant link**" + (" for Prolific (paste it as the study URL):" if prolific else ":"))
    st.code(participant_link(_base_url(), row.slug, prolific), language=None)

"""Studies: list, create, edit, precompute, preview, launch, pause and close."""

import streamlit as st

from study.db import connect
from study.drafts import get_draft
from study.overview import frozen_spec, study_rows
from ui.research.demo_banner import demo_banner
from ui.research.launch_view import launch_panel
from ui.research.new_study import new_study
from ui.research.precompute_view import precompute
from ui.research.preview_view import preview
from ui.research.spec_editor import spec_editor
from ui.research.study_list import study_table

st.title("Studies")
if flash := st.session_state.pop("studies_flash", None):
    st.success(flash)
db = connect()
rows = study_rows(db)
slug = study_table(rows)
with st.expander("New study", expanded=not rows):
    new_study(db)
if slug:
    row = next(r for r in rows if r.slug == slug)
    draft = get_draft(db, slug)
    spec = draft.spec() if draft is not None else frozen_spec(db, slug)
    st.subheader(f"{row.title} ({row.status})")
    demo_banner(db, slug, "studies")
    tabs = st.tabs(["Spec", "Stimuli", "Preview", "Launch and share"])
    with tabs[0]:
        if draft is not None:
            spec_editor(db, draft)
        else:
            st.caption("Launched from the command line; its frozen spec:")
            st.code(spec.model_dump_json(indent=1) if spec else "", language="json")
    with tabs[1]:
        if spec is not None:
            precompute(db, slug, spec)
    with tabs[2]:
        if spec is not None:
            preview(spec)
    with tabs[3]:
        launch_panel(db, row, spec)

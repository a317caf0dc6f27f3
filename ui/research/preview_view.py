"""Preview: every step of a condition exactly as a participant sees it; nothing is stored."""

from __future__ import annotations

import streamlit as st

from study.design import conditions
from study.errors import StudyError
from study.preview import preview_steps
from study.spec import StudySpec
from ui.participant import steps as step_screens
from ui.participant.flow import draw_step, progress_header
from ui.participant.widgets import Answering


def _nothing_stored(_: object) -> None:
    st.toast("Preview: nothing is stored.")


def preview(spec: StudySpec) -> None:
    conds = conditions(spec)
    left, mid, right = st.columns([2, 1, 3])
    condition = left.selectbox("Condition", conds, key=f"preview_cond_{spec.id}")
    seed = mid.number_input("Participant seed", 0, 10**6, 0, key=f"preview_seed_{spec.id}")
    try:
        views = preview_steps(spec, condition, int(seed))
    except StudyError as exc:
        st.info(f"Nothing to preview yet: {exc}")
        return
    labels = [f"{v.index + 1}. {v.kind}" + (f" {v.trial_number}" if v.trial_number else "") for v in views]
    pick = right.select_slider("Step", options=list(range(len(views))), format_func=lambda i: labels[i],
                               key=f"preview_step_{spec.id}")
    view = views[pick]
    st.caption("Below is the participant's screen (buttons do nothing here).")
    with st.container(border=True):
        if view.kind == "consent":
            step_screens.consent(view.content, _nothing_stored)
        else:
            progress_header(spec.title, view)
            draw_step(view, spec.protocol.name, Answering(10_000 + view.index, _nothing_stored))

"""Pairwise preference: two maps of the same concept in their stored left/right order; which
shows the concept better, and by how much."""

from __future__ import annotations

from typing import Any

import streamlit as st

from study.labels import ConceptLabel
from ui.participant.widgets import Answering, concept_inline, panel


def _strength_label(v: int, scale: int) -> str:
    if scale == 1:
        return "better"
    return {1: "slightly better", scale: "much better"}.get(v, f"{v}")


def draw(content: dict[str, Any], assets: dict[str, bytes], labels: dict[str, ConceptLabel], ans: Answering) -> None:
    scale, label = content["strength_scale"], labels[content["concept"]]
    st.markdown(f"Both maps show where the model sees {concept_inline(label)}.")
    cols = st.columns([1, 1, 1, 1.4])
    with cols[0]:
        panel(assets, content["image_file"], "The image")
    with cols[1]:
        panel(assets, content["left"]["map"], "Left map")
    with cols[2]:
        panel(assets, content["right"]["map"], "Right map")
    with cols[3], st.form(ans.key("form"), border=False):
        st.radio(content["question"], ["left", "right"], index=None, key=ans.key("side"),
                 format_func=lambda s: f"{s.capitalize()} map")
        if scale > 1:
            st.radio(f"How much better? (1 = slightly, {scale} = much)", list(range(1, scale + 1)), index=None,
                     key=ans.key("strength"), horizontal=True)

        def build() -> dict[str, Any] | str:
            side, strength = ans.value("side"), ans.value("strength") if scale > 1 else 1
            if side is None or strength is None:
                return "Please pick a map" + (" and how much better it is." if scale > 1 else ".")
            return {"choice": side, "strength": int(strength)}

        ans.submit("Submit", build)

"""Distinction: one map per candidate concept; pick the concept the model ranks highest, and
say how confident you are."""

from __future__ import annotations

from typing import Any

import streamlit as st

from study.labels import ConceptLabel
from ui.participant.trials.forward_simulation import _choice_form
from ui.participant.widgets import Answering, concept, panel


def draw(content: dict[str, Any], assets: dict[str, bytes], labels: dict[str, ConceptLabel], ans: Answering) -> None:
    cands, maps = content["candidates"], content["maps"]
    st.markdown("Each map shows where the model sees one concept. Which concept does **the model** rank "
                "highest for this image?")
    image = content.get("image_file")
    cols = st.columns(len(cands) + (1 if image else 0))
    if image:
        with cols[0]:
            panel(assets, image, "The image")
    for col, cand in zip(cols[1:] if image else cols, cands, strict=True):
        with col:
            panel(assets, maps.get(cand), None)
            concept(labels[cand])
    _choice_form(ans, cands, labels, content["confidence_scale"])

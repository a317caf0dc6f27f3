"""Rating: one map of the image's concept; a Likert scale per statement."""

from __future__ import annotations

from typing import Any

import streamlit as st

from study.labels import ConceptLabel
from ui.participant.widgets import Answering, concept_inline, panel


def draw(content: dict[str, Any], assets: dict[str, bytes], labels: dict[str, ConceptLabel], ans: Answering) -> None:
    scale, items = content["scale"], content["items"]
    st.markdown(f"The map shows where the model sees {concept_inline(labels[content['concept']])}.")
    cols = st.columns([1, 1, 2.2])
    with cols[0]:
        panel(assets, content["image_file"], "The image")
    with cols[1]:
        panel(assets, content["map"], "The map")
    with cols[2], st.form(ans.key("form"), border=False):
        st.caption(f"1 = strongly disagree · {scale} = strongly agree")
        for item_id, text in items.items():
            st.radio(text, list(range(1, scale + 1)), index=None, key=ans.key(f"r_{item_id}"), horizontal=True)

        def build() -> dict[str, Any] | str:
            ratings = {i: ans.value(f"r_{i}") for i in items}
            if any(v is None for v in ratings.values()):
                return "Please rate every statement."
            return {"ratings": {i: int(v) for i, v in ratings.items()}}

        ans.submit("Submit", build)

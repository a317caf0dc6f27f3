"""Forward simulation: the image, the maps of the condition (none in the control), and the
candidate concepts; "top1" picks the concept the model ranks highest, "match" answers yes/no."""

from __future__ import annotations

from typing import Any

import streamlit as st

from study.labels import ConceptLabel
from ui.participant.widgets import Answering, concept, concept_inline, panel


def draw(content: dict[str, Any], assets: dict[str, bytes], labels: dict[str, ConceptLabel], ans: Answering) -> None:
    if content["task"] == "match":
        _match(content, assets, labels, ans)
    else:
        _top1(content, assets, labels, ans)


def _top1(c: dict[str, Any], assets: dict[str, bytes], labels: dict[str, ConceptLabel], ans: Answering) -> None:
    maps, cands, scale = c.get("maps") or {}, c["candidates"], c["confidence_scale"]
    st.markdown("Which of these concepts does **the model** rank highest for this image?"
                + (" Each map shows where the model sees that concept." if maps else ""))
    cols = st.columns(len(cands) + 1)
    with cols[0]:
        panel(assets, c["image_file"], "The image")
    for col, cand in zip(cols[1:], cands, strict=True):
        with col:
            if maps:
                panel(assets, maps.get(cand), None)
            if not scale:
                ans.button(labels[cand].name, {"choice": cand}, f"pick_{cands.index(cand)}",
                           use_container_width=True)
            concept(labels[cand], show_name=bool(scale))
    if scale:
        _choice_form(ans, cands, labels, scale)


def _confidence(ans: Answering, scale: int, where: Any = st) -> None:
    where.radio(f"How confident are you? (1 = guessing, {scale} = certain)", list(range(1, scale + 1)),
                index=None, key=ans.key("confidence"), horizontal=True)


def _choice_form(ans: Answering, cands: list[str], labels: dict[str, ConceptLabel], scale: int) -> None:
    with st.form(ans.key("form"), border=False):
        left, right = st.columns(2)
        left.radio("Your answer", cands, index=None, key=ans.key("choice"), horizontal=True,
                   format_func=lambda s: labels[s].name)
        _confidence(ans, scale, right)

        def build() -> dict[str, Any] | str:
            choice, conf = ans.value("choice"), ans.value("confidence")
            if choice is None or conf is None:
                return "Please pick a concept and how confident you are."
            return {"choice": choice, "confidence": int(conf)}

        ans.submit("Submit", build)


def _match(c: dict[str, Any], assets: dict[str, bytes], labels: dict[str, ConceptLabel], ans: Answering) -> None:
    named, maps, scale = c["concept"], c.get("maps") or {}, c["confidence_scale"]
    others = ", ".join(labels[x].name for x in c["candidates"])
    cols = st.columns([1, 1, 2] if maps else [1, 3])
    with cols[0]:
        panel(assets, c["image_file"], "The image")
    if maps:
        with cols[1]:
            panel(assets, maps.get(named), f"Map: {labels[named].name}")
    with cols[-1]:
        st.markdown(f"Does **the model** rank {concept_inline(labels[named])} highest for this image, "
                    f"among: {others}?")
        if scale:
            with st.form(ans.key("form"), border=False):
                st.radio("Your answer", ["Yes", "No"], index=None, key=ans.key("match"), horizontal=True)
                _confidence(ans, scale)

                def build() -> dict[str, Any] | str:
                    match, conf = ans.value("match"), ans.value("confidence")
                    if match is None or conf is None:
                        return "Please answer yes or no, and how confident you are."
                    return {"match": match == "Yes", "confidence": int(conf)}

                ans.submit("Submit", build)
        else:
            yes, no = st.columns(2)
            with yes:
                ans.button("Yes", {"match": True}, "yes", use_container_width=True)
            with no:
                ans.button("No", {"match": False}, "no", use_container_width=True)

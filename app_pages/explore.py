"""Explore: pick an image and any WordNet noun concept, see CLIP's map of it, walk WordNet on the
image, see every method side by side. The drawing lives in `ui.explore`, the science in
`convis_core`."""

from __future__ import annotations

import re

import streamlit as st

import convis_core as cc
from convis_core.shapes.headline import headline
from ui.explore import compute, concept, controls, grid, mapview, region, sources, walk
from ui.explore import state as S

TOY_NOTE = ("Toy model: a small CLIP trained here on synthetic shapes and digits (circles, ellipses, polygons, "
            "the digits 1-9). " + headline())


def notices(model: cc.ClipModel, picked: sources.Picked, left, right) -> None:  # noqa: ANN001
    """Random weights and photos on the toy model are flagged; what a link carried that did not
    check out is listed."""
    if model.random_weights:
        right.error("RANDOM WEIGHTS: this model was never trained. Its maps carry no meaning; use it only to "
                    "check the plumbing.", icon="⚠️")
    elif model.name == "shapes-world" and picked.ref.kind != "scene":
        right.warning(TOY_NOTE + " It has never seen a photo: read its maps here as a demonstration of the "
                      "plumbing only. For photos, load real CLIP weights (sidebar).", icon=":material/toys:")
    elif model.name == "shapes-world":
        left.caption(TOY_NOTE + " Photos are one click away (Photo), where its maps mean nothing.")
    for note in st.session_state.get(S.NOTES, []):
        right.info(f"Ignored from the link: {note}", icon=":material/link_off:")
    if st.session_state.get(S.NOTES):
        right.button("Dismiss", key=S.P + "notes_ok", on_click=st.session_state.pop, args=(S.NOTES,),
                     type="tertiary", icon=":material/close:")


def stem(picked: sources.Picked, name: str | None, method: str) -> str:
    raw = f"{picked.ref.link or 'upload'}-{name or 'none'}-{method}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)[:120]


def main() -> None:
    S.apply_link()
    settings = controls.sidebar()
    try:
        model = compute.model_for(settings.name, settings.pretrained)
    except cc.ConvisError as e:
        st.error(f"Model not available: {e}")
        return
    left, middle, right = st.columns([0.95, 1.2, 1.1], gap="medium")
    with left:
        picked = sources.picker(left)
        if S.CONCEPT not in st.session_state:      # a first visit opens on an object of the scene
            S.set_concept(picked.truth[0] if picked.truth else "cat.n.01")
        name = concept.picker(left)
        labels = {m.label: n for n, m in cc.REGISTRY.items()}
        method = labels[left.selectbox("Method", list(labels), key=S.METHOD)]
        style = left.segmented_control("Display", list(cc.STYLES), key=S.P + "style", default="heatmap",
                                       help="heatmap: viridis over the image; whitefade: the paper's figures (the "
                                            "image fades to white where the concept is absent); raw: the map") \
            or "heatmap"
    image = None
    if picked.raw is None:
        middle.info("Pick an image." if picked.ref.kind != "upload" else "Upload an image to explore it.")
    else:
        try:
            image = compute.load(picked.raw)
        except cc.ConvisError as e:
            middle.error(f"Cannot use this image: {e}", icon=":material/broken_image:")
    S.write_link(picked.ref if image is not None else None, name, method, settings.bank, settings.mode)
    if image is None:
        notices(model, picked, left, right)
        return
    req = res = None
    if name is None:
        middle.container(border=True).image(picked.raw, caption=picked.caption + " (pick a concept)", width="stretch")
    else:
        with right:
            walk.breadcrumbs(right, name)
        holds = concept.bank_check(middle, name, settings.bank, settings.mode, controls.BANKS)
        if holds or not cc.REGISTRY[method].uses_bank:
            req = compute.request(model, image, name, method, settings.bank, settings.mode, settings.params[method])
            res = mapview.single(middle, req, style)
        middle.caption(picked.caption)
        with right:
            walk.neighbours(right, name, settings.bank, settings.mode)
    if res is not None and req is not None:
        mapview.downloads(middle, res, req, style, stem(picked, name, method))
    notices(model, picked, left, right)
    sections = ["All methods side by side", "What CLIP sees here"]
    # one section at a time (not tabs): the region picker is a component that needs to be visible
    # when it is drawn, and nothing is computed for a section nobody looks at
    section = st.segmented_control("Below the map", sections, key=S.P + "section", default=sections[0],
                                   label_visibility="collapsed") or sections[0]
    body = st.container(key=S.P + "section_body")
    if section == sections[1]:
        region.panel(body, model, image, settings.bank, settings.mode)
        return
    if name is None:
        body.info("Pick a concept to compare the methods.")
        return
    on = body.toggle("Show every method side by side for this image and concept", key=S.P + "compare")
    if not on:
        body.caption("ConVis grid and stochastic and every baseline through the one renderer, with times, "
                     "metadata, AUCs and the sanity check; the fast methods first.")
        return
    gstyle, k, methods = grid.controls(body)
    reqs = [compute.request(model, image, name, m, settings.bank, settings.mode, settings.params[m])
            for m in methods if not cc.REGISTRY[m].uses_bank or concept.holds(name, settings.bank, settings.mode)]
    results = grid.side_by_side(body, reqs, gstyle, k)
    grid.metrics(body, reqs, results)
    grid.download(body, reqs, results, gstyle, k, stem(picked, name, "grid"))


main()

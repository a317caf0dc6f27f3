"""What CLIP sees here: the bank's best concepts for the whole image and for a region the user
drags on it, each one click away from its map.

The region is drawn with streamlit-cropper (0.3.1, locked in requirements): it is maintained and
works with current Streamlit, and `return_type="box"` hands back the box without cropping
anything; streamlit-drawable-canvas, the other candidate, breaks on Streamlit >= 1.40.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image
from streamlit_cropper import st_cropper

import convis_core as cc
from ui.explore import compute
from ui.explore import state as S

SHOWN_SIDE = 300  # the image is shown at this size to drag on (the box is read back as fractions)


def _hits(container, hits: list[cc.ConceptHit], kind: str) -> None:  # noqa: ANN001
    row = container.container(horizontal=True, gap="small")
    for h in hits:
        row.button(f"{h.label} · #{h.rank + 1}", key=S.P + f"see_{kind}_{h.synset}", on_click=_show,
                   args=(h.synset,), help=f"{h.synset}: {h.definition} (cosine {h.similarity:+.3f}; rank "
                                          f"{h.rank + 1} of the bank's rows)")


def _show(name: str) -> None:
    S.set_concept(name)
    st.toast(f"The map of {name} is drawn at the top of the page.", icon=":material/arrow_upward:")


def _fractions(box: dict, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    w, h = size
    x0, y0 = max(0.0, box["left"] / w), max(0.0, box["top"] / h)
    x1, y1 = min(1.0, (box["left"] + box["width"]) / w), min(1.0, (box["top"] + box["height"]) / h)
    if x1 - x0 < 0.02 or y1 - y0 < 0.02:
        return None
    return round(x0, 3), round(y0, 3), round(x1, 3), round(y1, 3)


def panel(container, model: cc.ClipModel, image: cc.LoadedImage, bank: str, mode: str) -> None:  # noqa: ANN001
    """Best concepts of the whole image, then of the dragged region; each a button to its map."""
    try:
        whole = compute.top_concepts(model, image, bank, mode)
    except cc.ConvisError as e:
        container.error(str(e))
        return
    container.markdown("**Whole image**: the bank's best concepts (click one for its map)")
    _hits(container, whole, "whole")
    left, right = container.columns([1, 1.4])
    shown = image.original.copy()
    shown.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
    if max(shown.size) < SHOWN_SIDE:  # small images (a 224 px scene) are shown larger to drag on
        scale = SHOWN_SIDE / max(shown.size)
        shown = shown.resize((round(shown.width * scale), round(shown.height * scale)), Image.Resampling.NEAREST)
    with left:
        box = st_cropper(shown, realtime_update=True, box_color="#ff4000", return_type="box",
                         key=S.P + "region", should_resize_image=False)
    region = _fractions(box, shown.size) if isinstance(box, dict) else None
    if region is None:
        right.info("Drag a box on the image (at least 2 % of each side).")
        return
    right.markdown(f"**Region** x {region[0]:.2f}–{region[2]:.2f}, y {region[1]:.2f}–{region[3]:.2f} "
                   "(fractions of the image): best concepts")
    try:
        hits = compute.top_concepts(model, image, bank, mode, region=region)
    except cc.ConvisError as e:
        right.error(str(e))
        return
    _hits(right, hits, "region")

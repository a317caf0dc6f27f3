"""Every method side by side for one image and concept: one renderer, one colour scale, each tile
with its time and metadata; the fast methods first, occlusion and RISE last (each with its own
progress, and left out unless asked for); deletion/insertion AUC and the model-randomisation
check on demand; the whole grid as one zip, made on request."""

from __future__ import annotations

import io
import json
import zipfile
from functools import lru_cache

import numpy as np
import streamlit as st

import convis_core as cc
from ui.explore import compute
from ui.explore import state as S
from ui.explore.mapview import npy, png

#: Methods that cost minutes per map with ViT-B/32 on a CPU (one forward pass per mask or box):
#: drawn last, each only when asked for.
SLOW = ("occlusion", "rise")
#: ConVis stochastic encodes its 600 boxes one at a time: drawn after the single-pass methods.
LATER = ("convis_stochastic",)
COLUMNS = 4
STYLE, K, SLOW_KEYS = S.P + "grid_style", S.P + "grid_k", {m: S.P + f"grid_with_{m}" for m in SLOW}


def order() -> list[str]:
    """The registry's methods, the fast ones first."""
    last = LATER + SLOW
    return [m for m in cc.REGISTRY if m not in last] + [m for m in last if m in cc.REGISTRY]


@lru_cache(maxsize=1)
def colourbar() -> bytes:
    """The heatmap's colour scale (0 to 1), shared by every tile."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    from convis_core.render import COLORMAP

    lut = (colormaps[COLORMAP](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    bar = Image.fromarray(np.repeat(lut[None], 14, axis=0)).resize((256, 14))
    sheet = Image.new("RGB", (300, 30), "white")
    sheet.paste(bar, (22, 0))
    d = ImageDraw.Draw(sheet)
    d.text((2, 2), "0", fill=(0, 0, 0))
    d.text((282, 2), "1", fill=(0, 0, 0))
    d.text((90, 16), "saliency (every map scaled to 0..1)", fill=(0, 0, 0))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def controls(container) -> tuple[str, float | None, list[str]]:  # noqa: ANN001
    """Style, shared white-fade exponent, and the methods to draw (in drawing order)."""
    row = container.container(horizontal=True, gap="medium", vertical_alignment="bottom")
    style = row.segmented_control("One style for every tile", ["heatmap", "whitefade"], key=STYLE,
                                  default="heatmap") or "heatmap"
    k = None
    if style == "whitefade":
        k = float(row.number_input("white-fade exponent k (the same for every method)", 1.0, 40.0, 4.0, 1.0, key=K))
    for m in SLOW:
        row.checkbox(f"with {cc.REGISTRY[m].label} (slow)", key=SLOW_KEYS[m],
                     help="One forward pass per box or mask: minutes per map with ViT-B/32 on a CPU.")
    chosen = [m for m in order() if m not in SLOW or st.session_state.get(SLOW_KEYS[m])]
    return style, k, chosen


def _tile(cell, req: compute.Request, style: str, k: float | None) -> cc.SaliencyResult | None:  # noqa: ANN001
    label = cc.REGISTRY[req.method].label
    reason = compute.unsupported(req.model, req.method)
    if reason:
        cell.caption(f"**{label}**: not for this model ({reason}).")
        return None
    res = compute.cached(req)
    if res is None:
        bar = cell.progress(0.0, text=f"{label}: computing…")

        def progress(done: int, total: int) -> None:
            bar.progress(min(done / max(total, 1), 1.0), text=f"{label}: {done} of {total}")

        try:
            res, _, _ = compute.explain(req, progress)
        except cc.ConvisError as e:
            bar.empty()
            cell.caption(f"**{label}**: {e}")
            return None
        bar.empty()
    t = res.meta.get("timings", {}).get("total_s", 0.0)
    cell.image(png(res, req, style, k), caption=f"{label} · {t:.2f} s" + (" · flat map" if res.meta.get("flat") else ""),
               width="stretch")
    with cell.popover("Metadata", icon=":material/data_object:"):
        st.json(json.loads(res.metadata_json()), expanded=1)
    return res


def side_by_side(container, reqs: list[compute.Request], style: str, k: float | None) -> dict[str, cc.SaliencyResult]:  # noqa: ANN001, E501
    """Draw every request's map in a grid (computing what is missing, in order)."""
    if style == "heatmap":
        container.image(colourbar(), width=300)
    done: dict[str, cc.SaliencyResult] = {}
    cols = []
    for i, req in enumerate(reqs):
        if i % COLUMNS == 0:
            cols = container.columns(COLUMNS)
        res = _tile(cols[i % COLUMNS], req, style, k)
        if res is not None:
            done[req.method] = res
    st.session_state[S.P + "grid_done"] = sorted(done)
    return done


def metrics(container, reqs: list[compute.Request], results: dict[str, cc.SaliencyResult]) -> None:  # noqa: ANN001
    """Deletion/insertion AUC per method and the model-randomisation check, each on request."""
    reqs = [r for r in reqs if r.method in results]
    if not reqs:
        return
    left, right = container.columns(2)
    key = S.P + "auc_for"
    ident = reqs[0].key[:6]
    if left.button("Deletion / insertion AUC per method", key=S.P + "auc_go", icon=":material/show_chart:"):
        st.session_state[key] = ident
    if st.session_state.get(key) == ident:
        bar = left.progress(0.0, text="Perturbation curves…")
        rows = []
        for i, r in enumerate(reqs):
            a = compute.auc(r, results[r.method])
            rows.append({"method": cc.REGISTRY[r.method].label, "deletion AUC (lower is better)": a["deletion_auc"],
                         "insertion AUC (higher is better)": a["insertion_auc"]})
            bar.progress((i + 1) / len(reqs), text=f"Perturbation curves: {i + 1} of {len(reqs)} methods")
        bar.empty()
        left.dataframe(rows, hide_index=True)
        left.caption("Petsiuk et al. 2018: the concept's similarity as the most salient pixels are removed "
                     "(deletion) or put back into a blurred image (insertion); 16 steps.")
    layers = right.number_input("Sanity check: layer groups to randomise (from the top)", 1, 12, 2, key=S.P + "sanity_k")
    skey = S.P + "sanity_for"
    if right.button("Model-randomisation sanity check", key=S.P + "sanity_go", icon=":material/shuffle:"):
        st.session_state[skey] = (ident, int(layers))
    if st.session_state.get(skey) == (ident, int(layers)):
        with right.status("Re-running every method on a model with randomised layers…", expanded=False) as status:
            try:
                res = compute.sanity(reqs, int(layers))
            except (cc.ConvisError, ValueError) as e:
                status.update(label=f"Sanity check not possible: {e}", state="error")
                return
            status.update(label="Sanity check done", state="complete")
        rows = [{"method": cc.REGISTRY[m].label,
                 **{f"Spearman after {s}": round(v, 3) for s, v in zip(res["steps"], res["spearman"][m], strict=True)},
                 "flagged": "⚠ map hardly changes" if res["flagged"][m] else "ok"} for m in res["flagged"]]
        right.dataframe(rows, hide_index=True)
        right.caption("Adebayo et al. 2018: a method whose map still correlates (Spearman ≥ 0.5) with the "
                      "original after the model's top layers are randomised does not depend on what the model learned.")


def build_zip(reqs: list[compute.Request], results: dict[str, cc.SaliencyResult], style: str,
              k: float | None) -> bytes:
    """The grid as one zip: grid.png, per method its PNG (as shown), .npy and .json, and summary.json."""
    from PIL import Image

    from convis_core.render import png_bytes
    from convis_core.render import side_by_side as sheet

    buf = io.BytesIO()
    tiles, summary = [], {}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for r in reqs:
            res = results.get(r.method)
            if res is None:
                continue
            image = png(res, r, style, k)
            zf.writestr(f"maps/{r.method}.png", image)
            zf.writestr(f"maps/{r.method}.npy", npy(res))
            zf.writestr(f"maps/{r.method}.json", res.metadata_json())
            t = res.meta.get("timings", {}).get("total_s", 0.0)
            tiles.append((f"{cc.REGISTRY[r.method].label} {t:.1f}s", Image.open(io.BytesIO(image))))
            summary[r.method] = {"label": cc.REGISTRY[r.method].label, "seconds": t, "params": res.meta.get("params")}
            a = compute.store().get(("auc", 16) + r.key)
            if a:
                summary[r.method].update(a)
        if tiles:
            zf.writestr("grid.png", png_bytes(sheet(tiles, columns=min(COLUMNS, len(tiles)))))
        first = reqs[0]
        zf.writestr("summary.json", json.dumps({
            "image_sha256": first.image.sha256, "concept": first.concept, "bank": first.bank, "text_mode": first.mode,
            **first.model.identity, "style": style, "whitefade_k": k, "methods": summary}, indent=2, default=str))
    return buf.getvalue()


def download(container, reqs: list[compute.Request], results: dict[str, cc.SaliencyResult], style: str,  # noqa: ANN001
             k: float | None, stem: str) -> None:
    """'Prepare the zip' first (made on request, kept for this grid), then the download."""
    if not results:
        return
    ident = ("zip", style, k, tuple(sorted(results))) + reqs[0].key[:6]
    if compute.store().get(ident) is None:
        if not container.button("Prepare the grid as a zip", key=S.P + "zip_go", icon=":material/folder_zip:"):
            container.caption("The zip holds grid.png, each method's PNG, .npy and metadata JSON, and summary.json.")
            return
        with container.spinner("Writing the zip…"):
            compute.store().put(ident, build_zip(reqs, results, style, k))
    container.download_button("Side-by-side grid (.zip)", compute.store().get(ident), file_name=f"{stem}-grid.zip",
                              mime="application/zip", on_click="ignore", key=S.P + "dl_zip", icon=":material/folder_zip:")

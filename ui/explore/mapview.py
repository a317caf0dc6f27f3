"""One map on screen: computed with a progress bar (progressively, coarse then final, where the
engine offers it), drawn by the one renderer, with its server time, metadata and downloads."""

from __future__ import annotations

import io
import time

import numpy as np
import streamlit as st

import convis_core as cc
from ui.explore import compute
from ui.explore import state as S


def png(res: cc.SaliencyResult, req: compute.Request, style: str, k: float | None = None) -> bytes:
    """The map drawn over the original image by the one renderer (cached per map and style)."""
    key = ("png", res.meta.get("stage", "final"), style, k) + req.key
    hit = compute.store().get(key)
    if hit is None:
        hit = compute.store().put(key, cc.render_png(res, req.image.original, style=style, k=k))
    return hit


def npy(res: cc.SaliencyResult) -> bytes:
    buf = io.BytesIO()
    np.save(buf, res.map)
    return buf.getvalue()


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def caption(res: cc.SaliencyResult) -> str:
    m = res.meta
    t = m.get("timings", {}).get("total_s")
    parts = [m.get("method_label", m["method"]), m["concept"]]
    if t is not None:
        parts.append(f"engine time of this map {duration(t)}")
    if m.get("stage_label"):
        parts.append(m["stage_label"])
    if res.random_weights:
        parts.append("RANDOM WEIGHTS")
    return " · ".join(parts)


def _bar(container):  # noqa: ANN001, ANN202
    bar = container.progress(0.0, text="Computing the map…")

    def progress(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"Computing the map: {done} of {total}")

    return bar, progress


def single(container, req: compute.Request, style: str) -> cc.SaliencyResult | None:  # noqa: ANN001
    """Compute (or fetch) and draw the map of `req`; return it, or None after showing why not."""
    reason = compute.unsupported(req.model, req.method)
    if reason:
        container.info(f"{cc.REGISTRY[req.method].label} cannot explain this model: {reason}.")
        return None
    slot = container.container(border=True).empty()
    t0 = time.perf_counter()
    try:
        res = compute.cached(req)
        was_cached = res is not None
        if res is None and compute.progressive_available() and req.method == "convis_grid":
            bar, progress = _bar(container)
            stages = []
            for res in compute.explain_stages(req, progress):
                slot.image(png(res, req, style), caption=caption(res), width="stretch")
                stages.append(res.meta.get("stage", "final"))
            st.session_state[S.P + "stages"] = stages
            bar.empty()
        elif res is None:
            bar, progress = _bar(container)
            res, _, _ = compute.explain(req, progress)
            bar.empty()
    except cc.ConvisError as e:
        slot.error(str(e))
        return None
    server_ms = (time.perf_counter() - t0) * 1000
    slot.image(png(res, req, style), caption=caption(res), width="stretch")
    st.session_state[S.P + "server_ms"] = server_ms
    st.session_state[S.P + "result"] = res
    how = "from the page cache" if was_cached else "computed now"
    extra = ""
    timings = res.meta.get("timings", {})
    if "crops_cached" in timings and not was_cached:
        extra = " (the image's crops were already encoded)" if timings["crops_cached"] else " (crops encoded now)"
    container.caption(f"Server time for this map: **{server_ms:.0f} ms** (every stage, drawing included), "
                      f"{how}{extra}.")
    return res


def downloads(container, res: cc.SaliencyResult, req: compute.Request, style: str, stem: str) -> None:  # noqa: ANN001
    """The map as PNG (as shown), as .npy, and its metadata JSON."""
    row = container.container(horizontal=True, gap="small")
    row.download_button("PNG", png(res, req, style), file_name=f"{stem}.png", mime="image/png",
                        on_click="ignore", key=S.P + "dl_png", icon=":material/image:")
    row.download_button(".npy", npy(res), file_name=f"{stem}.npy", mime="application/octet-stream",
                        on_click="ignore", key=S.P + "dl_npy", icon=":material/data_array:")
    row.download_button("JSON", res.metadata_json(), file_name=f"{stem}.json", mime="application/json",
                        on_click="ignore", key=S.P + "dl_json", icon=":material/data_object:")

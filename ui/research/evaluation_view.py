"""The Evaluation page: saved runs of ``python -m convis_core eval`` (table, plots, gallery, files)
and a form that starts a run on the Shapes-world sets as a detached background process. A run's
state lives in its folder (``convis_core.evaluation.runs``), so it survives reloads and restarts;
a run whose process is gone is shown as stopped, with a button to resume it."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from convis_core.evaluation import runs

SHAPES_METHODS = ("convis_grid", "gradcam", "rise", "occlusion", "patch_similarity", "random", "centre",
                  "convis_stochastic")
STATE_LABELS = {"running": "running", "done": "done", "failed": "failed", "dead": "stopped (process gone)",
                "unknown": "unknown"}


def _headline(info: runs.RunInfo) -> str:
    s = info.summary
    if not s:
        return ""
    if s.get("kind") == "wsol":
        parts = [f"{m} {100 * r['max_box_acc']:.1f} %" for m, r in s["methods"].items() if r.get("n")]
        return "MaxBoxAcc: " + ", ".join(parts)
    return "AUROC: " + ", ".join(f"{k} {d['auroc']:.3f}" for k, d in s["scores"].items())


def runs_table(all_runs: list[runs.RunInfo]) -> None:
    df = pd.DataFrame([{"run": r.name, "kind": r.kind, "state": STATE_LABELS.get(r.state, r.state),
                        "progress": f"{r.done}/{r.total}" if r.total else "", "figures": _headline(r)} for r in all_runs])
    st.dataframe(df, hide_index=True, width="stretch")


def start_form(root: Path) -> None:
    """Start a run on a Shapes-world set (the bundled toy model) in the background."""
    with st.form("eval_start"):
        kind = st.radio("Experiment", ["Localisation (shapes-cub, polygon.n.01)", "OOD detection (shapes-imagenet, polygons vs digits)"],
                        key="eval_kind")
        methods = st.multiselect("Methods (localisation)", SHAPES_METHODS, default=["convis_grid", "gradcam", "random"],
                                 key="eval_methods",
                                 help="convis_stochastic takes minutes per image on a CPU")
        sample = st.number_input("Images (a seeded random sample; 0 = all)", min_value=0, value=20, step=10,
                                 key="eval_sample")
        go = st.form_submit_button("Start in the background", type="primary")
    if not go:
        return
    wsol = kind.startswith("Localisation")
    if wsol and not methods:
        st.error("Pick at least one method.")
        return
    argv = (["wsol", "shapes-cub", "--methods", ",".join(methods)] if wsol else ["ood", "shapes-imagenet"])
    argv += ["--model", "shapes-world", "--no-progress"] + (["--sample", str(int(sample))] if sample else [])
    folder = root / f"{'wsol' if wsol else 'ood'}-shapes-{time.strftime('%Y%m%d-%H%M%S')}"
    runs.start_background(argv, folder)
    st.session_state["eval_selected"] = folder.name
    st.success(f"Started {folder.name}. It runs in its own process: you can leave this page.")


def _progress(folder: Path) -> None:
    info = runs.run_info(folder)
    watching = f"eval_watching_{folder.name}"
    if info.state == "running":
        st.session_state[watching] = True
    elif st.session_state.pop(watching, False):
        st.rerun()  # the run just ended: redraw the page with its results
    if info.state == "running":
        st.progress(min(1.0, info.fraction), text=f"{info.stage}: {info.done} of {info.total}" if info.total else info.stage)
    elif info.state == "dead":
        st.error("The run's process is gone but the run did not finish (stopped or killed). Resume it: "
                 "the items it finished are kept.")
        if (folder / "launch.json").is_file() and st.button("Resume", key=f"eval_resume_{folder.name}"):
            runs.resume(folder)
            st.rerun()
    elif info.state == "failed":
        st.error(f"The run failed: {info.error}")
    with st.expander("Log"):
        st.code(info.log_tail() or "(empty)", language=None)


def show_run(info: runs.RunInfo) -> None:
    """One run: its state, printed table, plots and files."""
    st.subheader(info.name)
    cfg = info.config
    what = (f"concept `{cfg.get('concept')}`, methods {', '.join(cfg.get('methods', []))}" if info.kind == "wsol"
            else f"in `{cfg.get('in_synset')}` vs out `{cfg.get('out_synset')}`")
    st.caption(f"{info.kind}: {what}; data `{cfg.get('data')}`; model `{cfg.get('model')}` "
               f"(`{cfg.get('pretrained')}`); sample {cfg.get('sample') or 'all'}, seed {cfg.get('seed')}")
    if info.state in ("running", "dead", "failed", "unknown"):
        live = st.fragment(_progress, run_every=2 if info.state == "running" else None)
        live(info.folder)
    s = info.summary
    if not s:
        return
    if s["model"].get("random_weights"):
        st.warning("This run used a model with RANDOM weights: its figures carry no meaning.")
    table = info.folder / "table.txt"
    if table.is_file():
        st.code(table.read_text(), language=None)
    plots = ["box_acc.png", *sorted(p.name for p in info.folder.glob("gallery_*.png"))] if info.kind == "wsol" else ["roc.png"]
    for name in plots:
        if (info.folder / name).is_file():
            st.image(str(info.folder / name), caption=name)
    csv_path = info.folder / "per_image.csv"
    if csv_path.is_file():
        st.download_button("Per-image results (CSV)", csv_path.read_bytes(), file_name=f"{info.name}.csv",
                           key=f"eval_csv_{info.name}")
        st.download_button("Summary (JSON)", (info.folder / "summary.json").read_bytes(),
                           file_name=f"{info.name}.json", key=f"eval_json_{info.name}")


def draw(root: Path | None = None) -> None:
    root = Path(root) if root is not None else runs.runs_root()
    with st.expander("Start a run on the Shapes-world sets", expanded=False):
        st.caption("Uses the bundled toy model on synthetic scenes (test range). For your own data and weights, "
                   "run `python -m convis_core eval wsol|ood ...` (see README): its runs appear here too.")
        start_form(root)
    all_runs = runs.list_runs(root)
    if not all_runs:
        st.info(f"No evaluation runs yet (they are saved under {root}).")
        return
    runs_table(all_runs)
    names = [r.name for r in all_runs]
    chosen = st.session_state.get("eval_selected")
    pick = st.selectbox("Run", names, index=names.index(chosen) if chosen in names else 0, key="eval_pick")
    show_run(next(r for r in all_runs if r.name == pick))

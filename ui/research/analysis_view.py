"""Sections of the Analysis page. Each draws what `ui.research.data.results` computed (tables of
`study.analysis`) and says how many participants it counts."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pandas as pd
import streamlit as st

from study import analysis
from study.db import Database
from study.errors import StimulusError
from study.map_scores import context, unavailable
from study.spec import FLAGS, StudySpec
from ui.research import charts, data

RULE_LABELS = {"failed_attention": "Failed attention checks", "failed_quiz": "Failed the quiz",
               "too_fast": "Too fast", "straightlining": "Straight-lining"}
P_COLUMNS = ("p", "p_holm", "pvalue")


def table(df: pd.DataFrame) -> None:
    """A results table: p values to 3 significant digits, other decimals to 3 places."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    fmt = {c: ("{:.3g}" if c in P_COLUMNS else "{:.3f}") for c in floats}
    st.dataframe(df.style.format(fmt, na_rep="–"), hide_index=True, width="stretch")


def counted(trials: pd.DataFrame, what: str = "trials") -> str:
    """'n = P participants · T trials' for a chart's caption."""
    return f"n = {trials.participant_id.nunique()} participants · {len(trials)} {what}"


def exclusion_rules(spec: StudySpec, version_id: int) -> list[str]:
    """Checkboxes for the exclusion rules (the spec's rules ticked at first); the ticked ones."""
    st.markdown("**Exclusion rules** (the spec's are ticked; untick or tick to see the results change)")
    cols = st.columns(len(FLAGS))
    return [f for f, col in zip(FLAGS, cols, strict=True)
            if col.checkbox(RULE_LABELS[f], value=f in spec.quality.exclude, key=f"analysis_rule_{version_id}_{f}")]


def summary(res: dict[str, Any], rules: list[str]) -> None:
    """Who is counted, and warnings about the stimuli."""
    info = res["info"]
    if info.synthetic:
        st.warning("These stimuli are synthetic demo pictures: their 'ground truth' is made up.")
    elif info.random_weights:
        st.warning("The maps of this study come from a model with RANDOM weights: they carry no meaning.")
    n = res["trials"].participant_id.nunique()
    st.markdown(f"Counting **{n} participants** ({res['completed']} completed, {res['excluded']} excluded by "
                f"{', '.join(RULE_LABELS[r].lower() for r in rules) or 'no rule'}) · {res['responses']} answers stored")


def no_results(res: dict[str, Any]) -> None:
    """Why there is nothing to analyse yet."""
    flow = res["consort"]
    if res["responses"] == 0:
        st.info("No responses yet: results appear here once participants complete the study.")
    elif res["completed"] == 0:
        st.info(f"No completed participants yet ({flow['in_progress']} in progress, {res['responses']} answers "
                "stored): results count completed sessions.")
    else:
        st.info(f"Every completed participant is excluded by the ticked rules ({res['excluded']} of "
                f"{res['completed']}): untick a rule to see their answers.")


def flow(res: dict[str, Any]) -> None:
    st.subheader("Participant flow")
    st.altair_chart(charts.consort_flow(res["consort"]))
    st.caption(f"n = {res['consort']['started']} participants who started (CONSORT-style; withdrawn participants' "
               "data are deleted and only counted)")


def accuracy(res: dict[str, Any]) -> None:
    trials = res["trials"]
    st.subheader("Accuracy per method")
    st.altair_chart(charts.accuracy(res["accuracy"], res["chance"]), width="stretch")
    chance = f" · dashed line: chance ({res['chance']:.2f})" if res["chance"] is not None else ""
    st.caption(f"{counted(trials)} · Wilson 95 % intervals{chance}")
    table(res["accuracy"])
    st.subheader("Accuracy per item × method")
    st.altair_chart(charts.item_heatmap(res["items"]), width="stretch")
    st.caption(counted(trials))


def mixed_model(fut: Future, trials: pd.DataFrame) -> None:
    """The mixed model's table, drawn when its background fit ends (the section polls until then)."""
    st.subheader("Mixed-effects logistic model")
    st.caption("correct ~ method + (1 | participant) + (1 | item), variational Bayes (statsmodels); "
               "z and p from the posterior mean and sd (normal approximation)")
    pending = not fut.done()

    @st.fragment(run_every=1 if pending else None)
    def fitted() -> None:
        if not fut.done():
            st.info("Fitting the model in the background; the table appears here when it is ready.")
            return
        if pending:
            st.rerun()  # the page redraws without this poll
        exc = fut.exception()
        if exc is not None:
            st.warning(f"The model could not be fitted on these data: {exc}")
            return
        table(fut.result())
        st.caption(counted(trials))

    fitted()


def pairwise(res: dict[str, Any]) -> None:
    pairs = res.get("pairwise")
    if pairs is None or pairs.empty:
        return
    st.subheader("Pairwise comparisons")
    st.altair_chart(charts.pairwise(pairs), width="stretch")
    st.caption(f"{counted(res['trials'])} · {pairs.test.iloc[0]} on participant-level accuracy, Holm-corrected; "
               "effect sizes: Cohen's h (pooled proportions) and d (participant accuracies)")
    table(pairs)


def preference(res: dict[str, Any]) -> None:
    bt = res.get("bt")
    if bt is None:
        return
    st.subheader("Preference scores (Bradley–Terry)")
    st.altair_chart(charts.bradley_terry(bt["scores"]), width="stretch")
    lr = bt["lr_test"]
    st.caption(f"{counted(res['trials'], 'comparisons')} · ±1.96 se around each log-strength; "
               f"{bt['scores'].method.iloc[0]} is the reference (0) · equal strengths: "
               f"χ²({lr['df']}) = {lr['chi2']:.2f}, p = {lr['p']:.3g}")
    table(bt["scores"])
    st.markdown("Pairs (binomial test, Holm-corrected)")
    table(bt["pairs"])


def ratings(res: dict[str, Any]) -> None:
    long, summ = res.get("likert_long"), res.get("likert")
    if long is None or long.empty or summ is None:
        return
    st.subheader("Ratings")
    st.altair_chart(charts.likert(long), width="stretch")
    st.caption(f"{counted(long, 'ratings')} · Kruskal–Wallis per question; Mann–Whitney U per pair, Holm-corrected, "
               "rank-biserial effect size")
    table(summ["tests"])
    if not summ["pairwise"].empty:
        table(summ["pairwise"])


def response_times(res: dict[str, Any]) -> None:
    trials = res["trials"]
    st.subheader("Response times")
    st.altair_chart(charts.response_times(trials), width="stretch")
    st.caption(f"{counted(trials)} · server-measured, log scale")
    table(res["rt"])


def questionnaire(res: dict[str, Any]) -> None:
    long = res["questionnaire"]
    if long.empty:
        return
    st.subheader("Questionnaire (Likert items)")
    st.altair_chart(charts.likert(long, group="condition"), width="stretch")
    st.caption(counted(long, "answers"))


def power_planner(res: dict[str, Any], spec: StudySpec) -> None:
    """Simulation-based power of the method effect for a planned study (runs on request)."""

    @st.fragment
    def planner() -> None:
        st.subheader("Power planner")
        st.caption("Simulates accuracy studies (logistic model with participant and item effects) and tests the "
                   "method effect on participant-level accuracy; the share of simulated studies with p < .05 "
                   "is the power.")
        observed = res.get("accuracy")
        arms = list(observed.method) if observed is not None else [*spec.methods, *(["none"] if spec.design.control
                                                                                    else [])]
        start = dict(zip(observed.method, observed.accuracy, strict=True)) if observed is not None else {}
        with st.form("analysis_power_form"):
            design = st.radio("Design", ["between", "within"], horizontal=True, key="analysis_power_design",
                              index=0 if spec.design.type == "between" else 1)
            n = st.slider("Participants per condition", 5, 200, 30, step=5, key="analysis_power_n")
            n_trials = st.slider("Trials per participant", 4, 80, min(80, spec.trials), key="analysis_power_trials")
            cols = st.columns(min(4, len(arms)))
            acc = {m: cols[i % len(cols)].slider(f"Accuracy: {m}", 0.05, 0.95,
                                                 round(float(start.get(m, 0.6 + 0.1 * (i % 3))), 2), step=0.01,
                                                 key=f"analysis_power_acc_{m}") for i, m in enumerate(arms)}
            sims = st.select_slider("Simulated studies", [50, 100, 200], value=100, key="analysis_power_sims")
            go = st.form_submit_button("Estimate power", key="analysis_power_go")
        if go:
            with st.spinner("Simulating…"):
                st.session_state["analysis_power_out"] = (data.power(tuple(acc.items()), n, n_trials, design, sims),
                                                          n * (len(arms) if design == "between" else 1))
        out = st.session_state.get("analysis_power_out")
        if out:
            result, people = out
            st.metric("Power", f"{result['power']:.0%}", help="share of simulated studies with p < .05")
            st.caption(f"95 % interval {result['ci_low']:.0%}–{result['ci_high']:.0%} over {result['n_sims']} "
                       f"simulated studies · n = {people} simulated participants per study")

    planner()


def map_link(db: Database, version_id: int, res: dict[str, Any]) -> None:
    """Per method: does people's accuracy on an item follow its maps' pointing game and deletion AUC?"""
    st.subheader("Do people follow the maps' automatic scores?")
    if not res["scored"]:
        st.caption("This needs a protocol with correct answers (forward simulation, distinction).")
        return
    try:
        why = unavailable(context(db, version_id).manifest)
    except StimulusError as exc:
        why = str(exc)
    if why:
        st.info(f"Not computable for this study: {why}.")
        return
    key = f"analysis_scores_{version_id}"
    if not st.session_state.get(key):
        st.caption("Each shown map is recomputed with the engine from its stored settings and checked against the "
                   "stored picture, then scored: pointing game on the concept's own boxes, deletion AUC.")
        if st.button("Compute the automatic scores", key="analysis_scores_go"):
            st.session_state[key] = True
            st.rerun()
        return
    with st.spinner("Recomputing and scoring the maps (once per study version)…"):
        maps = data.map_scores(db.url, version_id)
    bad = int((~maps.verified).sum())
    if bad:
        st.warning(f"{bad} of {len(maps)} maps could not be reproduced byte for byte; they are left out.")
    trials = res["trials"][res["trials"].method.isin(set(maps.method))]
    link = analysis.accuracy_vs_map_scores(trials, maps[maps.verified])
    table(link["tests"])
    st.caption(f"{counted(trials)} · Spearman correlation over items of people's accuracy with the item's mean "
               "score (pointing: share of in-scene candidates whose map peaks inside the concept's box; deletion "
               "AUC: lower means removing the map's top pixels lowers CLIP's score sooner).")
    for score, title in (("pointing", "pointing game (mean hit)"), ("deletion_auc", "deletion AUC (mean)")):
        if link["items"][score].notna().any():
            st.altair_chart(charts.scores_link(link["items"], score, title))
            st.caption(f"{counted(trials)} · one dot per item, size: trials")

"""Altair chart builders of the researcher pages. Each takes the tables `study` computes and returns
a chart; none computes statistics of its own."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

STATUS_ORDER = ["completed", "active", "started", "screened_out", "abandoned", "declined", "withdrawn"]
STATUS_COLOURS = ["#2e7d32", "#66bb6a", "#c5e1a5", "#ffb74d", "#e57373", "#bdbdbd", "#757575"]
MAIN_X, EXIT_X, STEP, BOX_H = 110, 405, 80, 38   # CONSORT diagram layout (px)


def tips(*fields: str | alt.Tooltip) -> list[alt.Tooltip]:
    """Tooltip channels as objects (altair turns a shorthand string into one through a slow lookup)."""
    return [alt.Tooltip(f) if isinstance(f, str) else f for f in fields]


def _height(rows: int, per_row: int, extra: int = 75) -> int:
    """Chart height for `rows` bands: Streamlit fits axes and titles inside the given height."""
    return extra + per_row * max(1, rows)


def status_by_condition(counts: dict[str, dict[str, int]], target: int) -> alt.Chart:
    """Participants per condition stacked by status, with the recruitment target as a rule
    (the target counts consented sessions: active + completed)."""
    rows = [{"condition": c or "(withdrawn)", "status": s, "n": n} for c, by in counts.items() for s, n in by.items()]
    df = pd.DataFrame(rows, columns=["condition", "status", "n"])
    conds = [c or "(withdrawn)" for c in counts]
    bars = alt.Chart(df).mark_bar().encode(
        y=alt.Y("condition:N", sort=conds, title=None),
        x=alt.X("sum(n):Q", title="participants"),
        color=alt.Color("status:N", scale=alt.Scale(domain=STATUS_ORDER, range=STATUS_COLOURS), title="status"),
        order=alt.Order("status_rank:Q"),
        tooltip=tips("condition:N", "status:N", "n:Q"),
    ).transform_calculate(status_rank=f"indexof({STATUS_ORDER}, datum.status)")
    rule = alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(color="black", strokeDash=[4, 3]).encode(
        x=alt.X("target:Q"), tooltip=tips(alt.Tooltip("target:Q", title="target per condition")))
    return (bars + rule).properties(height=_height(len(conds), 36))


def consort_flow(flow: dict[str, Any]) -> alt.LayerChart:
    """A CONSORT-style diagram from `study.analysis.consort`'s numbers: the main column (started,
    consented, completed, analysed) and, beside each step, who left it and why."""
    no_consent = flow["started"] - flow["consented"]
    other = no_consent - flow["declined"] - flow["withdrawn"]
    not_done = flow["consented"] - flow["completed"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(flow.get("excluded_by_reason", {}).items()))
    main = [f"Started: {flow['started']}", f"Consented: {flow['consented']}",
            f"Completed: {flow['completed']}", f"Analysed: {flow['analysed']}"]
    exits = [(f"No consent: {no_consent}", f"declined {flow['declined']} · withdrawn {flow['withdrawn']}"
              + (f" · timed out or waiting {other}" if other else "")),
             (f"Not completed: {not_done}", f"screened out {flow['screened_out']} · "
              f"timed out or in progress {not_done - flow['screened_out']}"),
             (f"Excluded: {flow['excluded']}", reasons or "no exclusion rule fired")]
    boxes = pd.DataFrame([{"cx": MAIN_X, "cy": i * STEP, "w": 190, "top": t, "sub": "", "kind": "main"}
                          for i, t in enumerate(main)]
                         + [{"cx": EXIT_X, "cy": i * STEP + STEP / 2, "w": 250, "top": a, "sub": b, "kind": "exit"}
                            for i, (a, b) in enumerate(exits)])
    boxes = boxes.assign(x0=boxes.cx - boxes.w / 2, x1=boxes.cx + boxes.w / 2, y0=boxes.cy - BOX_H / 2,
                         y1=boxes.cy + BOX_H / 2, ty=boxes.cy - (boxes.kind == "exit") * 7, sy=boxes.cy + 9)
    edges = pd.DataFrame([{"x": MAIN_X, "x2": MAIN_X, "y": i * STEP + BOX_H / 2, "y2": (i + 1) * STEP - BOX_H / 2}
                          for i in range(3)]
                         + [{"x": MAIN_X, "x2": EXIT_X - 125, "y": i * STEP + STEP / 2, "y2": i * STEP + STEP / 2}
                            for i in range(3)])
    xs = alt.Scale(domain=[0, 540])
    ys = alt.Scale(domain=[-BOX_H, 3 * STEP + BOX_H], reverse=True)
    lines = alt.Chart(edges).mark_rule(color="#888").encode(
        x=alt.X("x:Q", axis=None, scale=xs), x2=alt.X2("x2"), y=alt.Y("y:Q", axis=None, scale=ys), y2=alt.Y2("y2"))
    rects = alt.Chart(boxes).mark_rect(stroke="#607d8b", cornerRadius=4).encode(
        x=alt.X("x0:Q", axis=None, scale=xs), x2=alt.X2("x1"), y=alt.Y("y0:Q", axis=None, scale=ys), y2=alt.Y2("y1"),
        color=alt.Color("kind:N", scale=alt.Scale(domain=["main", "exit"], range=["#e3f2fd", "#fafafa"]),
                        legend=None))
    tops = alt.Chart(boxes).mark_text(fontWeight="bold", fontSize=12).encode(
        x=alt.X("cx:Q", axis=None, scale=xs), y=alt.Y("ty:Q", axis=None, scale=ys), text=alt.Text("top:N"))
    subs = alt.Chart(boxes).mark_text(fontSize=10, color="#455a64").encode(
        x=alt.X("cx:Q", axis=None, scale=xs), y=alt.Y("sy:Q", axis=None, scale=ys), text=alt.Text("sub:N"))
    return alt.layer(lines, rects, tops, subs).properties(width=540, height=3 * STEP + 2 * BOX_H)


def accuracy(table: pd.DataFrame, chance: float | None) -> alt.LayerChart:
    """Accuracy per method with its Wilson 95 % interval, against chance (dashed)."""
    base = alt.Chart(table).encode(y=alt.Y("method:N", title=None))
    bars = base.mark_errorbar(ticks=True).encode(x=alt.X("ci_low:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
                                                 x2=alt.X2("ci_high"))
    dots = base.mark_point(filled=True, size=80).encode(
        x=alt.X("accuracy:Q"), tooltip=tips("method:N", alt.Tooltip("accuracy:Q", format=".3f"),
                                 alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f"),
                                 "n:Q", "participants:Q"))
    layers: list[alt.Chart] = [bars, dots]
    if chance is not None:
        layers.append(alt.Chart(pd.DataFrame({"chance": [chance]})).mark_rule(strokeDash=[4, 3], color="#c62828")
                      .encode(x=alt.X("chance:Q"), tooltip=tips(alt.Tooltip("chance:Q", format=".3f"))))
    return alt.layer(*layers).properties(height=_height(len(table), 40))


def item_heatmap(table: pd.DataFrame) -> alt.Chart:
    """Accuracy per item x method (colour), with trials and interval in the tooltip."""
    return alt.Chart(table).mark_rect().encode(
        x=alt.X("item:N", title="item", axis=alt.Axis(labelAngle=-60)), y=alt.Y("method:N", title=None),
        color=alt.Color("accuracy:Q", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=tips("item:N", "method:N", alt.Tooltip("accuracy:Q", format=".2f"), "n:Q",
                 alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f")),
    ).properties(height=_height(table.method.nunique(), 30, extra=110))


def pairwise(pairs: pd.DataFrame) -> alt.Chart:
    """Accuracy differences of every method pair, coloured by Holm-corrected significance."""
    df = pairs.assign(pair=pairs.a + " − " + pairs.b, holm=pairs.p_holm.map(lambda p: f"p_holm = {p:.3g}"),
                      significant=pairs.significant.fillna(False).astype(bool))
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("pair:N", title=None), x=alt.X("diff:Q", title="accuracy difference (a − b)"),
        color=alt.Color("significant:N", scale=alt.Scale(domain=[True, False], range=["#1565c0", "#b0bec5"]),
                        title="Holm p < .05"),
        tooltip=tips("pair:N", alt.Tooltip("diff:Q", format=".3f"), alt.Tooltip("cohen_h:Q", format=".2f"),
                 alt.Tooltip("cohen_d:Q", format=".2f"), alt.Tooltip("p:Q", format=".3g"),
                 alt.Tooltip("p_holm:Q", format=".3g"), "test:N"),
    ).properties(height=_height(len(df), 32))


def response_times(trials: pd.DataFrame) -> alt.Chart:
    """Response times per method as box plots on a log scale."""
    df = trials[["method", "rt_ms"]].assign(rt_s=trials.rt_ms.clip(lower=1) / 1000)
    return alt.Chart(df).mark_boxplot(extent=1.5).encode(
        y=alt.Y("method:N", title=None), x=alt.X("rt_s:Q", title="response time (s)", scale=alt.Scale(type="log")),
    ).properties(height=_height(df.method.nunique(), 40))


def likert(long: pd.DataFrame, group: str = "method") -> alt.Chart:
    """Likert distributions from long rows (question, `group`, rating): the share of each rating
    per `group`, one row of bars per question."""
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y(f"{group}:N", title=None), x=alt.X("count():Q", stack="normalize", title="share of answers"),
        color=alt.Color("rating:O", scale=alt.Scale(scheme="redblue"), title="rating"),
        order=alt.Order("rating:O"),
        row=alt.Row("question:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        tooltip=tips("question:N", f"{group}:N", "rating:O", "count():Q"),
    ).properties(height=max(40, 24 * long[group].nunique()), width=420)


def bradley_terry(scores: pd.DataFrame) -> alt.LayerChart:
    """Bradley-Terry log-strengths with ±1.96 se (the first method is the reference at 0)."""
    df = scores.assign(lo=scores.log_strength - 1.96 * scores.se, hi=scores.log_strength + 1.96 * scores.se)
    base = alt.Chart(df).encode(y=alt.Y("method:N", title=None))
    return alt.layer(
        base.mark_errorbar(ticks=True).encode(x=alt.X("lo:Q", title="log-strength (Bradley–Terry)"), x2=alt.X2("hi")),
        base.mark_point(filled=True, size=80).encode(
            x=alt.X("log_strength:Q"), tooltip=tips("method:N", alt.Tooltip("log_strength:Q", format=".3f"),
                                         alt.Tooltip("se:Q", format=".3f"), alt.Tooltip("win_rate:Q", format=".2f"))),
    ).properties(height=_height(len(df), 40))


def flags(counts: dict[str, int], rules: list[str]) -> alt.Chart:
    """Completed participants per quality flag; the flags the spec excludes on are marked."""
    df = pd.DataFrame([{"flag": k, "n": v, "excludes": k in rules} for k, v in counts.items()])
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("flag:N", title=None), x=alt.X("n:Q", title="completed participants"),
        color=alt.Color("excludes:N", scale=alt.Scale(domain=[True, False], range=["#e57373", "#b0bec5"]),
                        title="excludes"),
        tooltip=tips("flag:N", "n:Q", "excludes:N"),
    ).properties(height=_height(len(df), 28))


def median_times(by_condition: dict[str, float]) -> alt.Chart:
    """Median time per trial by condition (seconds)."""
    df = pd.DataFrame([{"condition": c or "(none)", "median_s": v / 1000} for c, v in by_condition.items()])
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("condition:N", title=None), x=alt.X("median_s:Q", title="median time per trial (s)"),
        tooltip=tips("condition:N", alt.Tooltip("median_s:Q", format=".2f")),
    ).properties(height=_height(len(df), 30))


def scores_link(items: pd.DataFrame, score: str, title: str) -> alt.Chart:
    """Item accuracy against an automatic map score, one dot per item, faceted by method."""
    df = items.dropna(subset=[score])
    return alt.Chart(df).mark_circle(opacity=0.7).encode(
        x=alt.X(f"{score}:Q", title=title), y=alt.Y("accuracy:Q", title="people's accuracy",
                                                    scale=alt.Scale(domain=[0, 1])),
        size=alt.Size("trials:Q", legend=None), color=alt.Color("method:N", legend=None),
        column=alt.Column("method:N", title=None),
        tooltip=tips("item:N", "method:N", alt.Tooltip("accuracy:Q", format=".2f"), "trials:Q",
                 alt.Tooltip(f"{score}:Q", format=".3f")),
    ).properties(width=220, height=200)

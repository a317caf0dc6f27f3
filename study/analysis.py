"""Analysis functions the analysis page draws. Inputs are the frames of `study.export.load_frames`.

Mixed-effects logistic model: statsmodels' `BinomialBayesMixedGLM` (variational Bayes) with
crossed random intercepts for participant and item. statsmodels has no frequentist GLMM with
crossed effects; the VB fit is fast and its posterior mean/sd give Wald-type z and p values
(normal approximation), which we report as such. Participant-level tests (t tests on each
participant's accuracy) are the cheap, robust companions used for pairwise comparisons and power.
"""

from __future__ import annotations

import json
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from study import protocols


def main_trials(frames: dict[str, Any], exclude: bool = True) -> pd.DataFrame:
    """Main trials of completed participants (minus the spec's exclusions when `exclude`)."""
    resp, part = frames["responses"], frames["participants"]
    keep = part[(part.status == "completed") & (~part.excluded if exclude else True)].participant_id
    df = resp[(resp.kind == "trial") & resp.participant_id.isin(set(keep))].copy()
    df["correct"] = df["correct"].astype(float)
    return df


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials."""
    if n == 0:
        return (float("nan"), float("nan"))
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def accuracy_table(trials: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Per-`by` accuracy: n, correct, accuracy, Wilson 95 % interval (ci_low, ci_high), participants."""
    rows = []
    for key, g in trials.groupby(by):
        k, n = int(g.correct.sum()), int(g.correct.count())
        lo, hi = wilson(k, n)
        rows.append({by: key, "n": n, "correct": k, "accuracy": k / n if n else np.nan, "ci_low": lo,
                     "ci_high": hi, "participants": g.participant_id.nunique()})
    return pd.DataFrame(rows)


def mixed_logit(trials: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """correct ~ method + (1 | participant) + (1 | item), fitted by variational Bayes.

    Returns one row per fixed effect: term, estimate (log-odds), sd (posterior), z, p (two-sided,
    normal approximation), odds_ratio. `reference`: the baseline method (default: 'none' if present,
    else the first in sort order)."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    methods = sorted(trials.method.unique())
    ref = reference or ("none" if "none" in methods else methods[0])
    data = trials[["correct", "method", "participant_id", "item"]].copy()
    formula = f"correct ~ C(method, Treatment(reference='{ref}'))"
    vc = {"participant": "0 + C(participant_id)", "item": "0 + C(item)"}
    model = BinomialBayesMixedGLM.from_formula(formula, vc, data)
    fit = model.fit_vb()
    k = len(model.exog_names)
    est, sd = np.asarray(fit.fe_mean)[:k], np.asarray(fit.fe_sd)[:k]
    z = est / sd
    terms = [n.replace(f"C(method, Treatment(reference='{ref}'))[T.", "method=").rstrip("]") for n in model.exog_names]
    return pd.DataFrame({"term": terms, "estimate": est, "sd": sd, "z": z, "p": 2 * stats.norm.sf(np.abs(z)),
                         "odds_ratio": np.exp(est), "reference": ref})


def participant_accuracy(trials: pd.DataFrame) -> pd.DataFrame:
    """participant x method table of accuracy."""
    return trials.pivot_table(index="participant_id", columns="method", values="correct", aggfunc="mean")


def pairwise_methods(trials: pd.DataFrame, paired: bool | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """All method pairs on participant-level accuracy: Welch t (between) or paired t (within),
    Holm-corrected p, difference, Cohen's h (on pooled proportions) and Cohen's d."""
    table = participant_accuracy(trials)
    paired = bool((table.notna().sum(axis=1) > 1).all()) if paired is None else paired
    rows = []
    for a, b in combinations(sorted(table.columns), 2):
        if paired:
            d = (table[a] - table[b]).dropna()
            t, p = stats.ttest_rel(table.loc[d.index, a], table.loc[d.index, b]) if len(d) > 1 else (np.nan, np.nan)
            cohen_d = d.mean() / d.std(ddof=1) if len(d) > 1 and d.std(ddof=1) > 0 else np.nan
        else:
            xa, xb = table[a].dropna(), table[b].dropna()
            t, p = stats.ttest_ind(xa, xb, equal_var=False) if min(len(xa), len(xb)) > 1 else (np.nan, np.nan)
            pooled = np.sqrt((xa.var(ddof=1) + xb.var(ddof=1)) / 2)
            cohen_d = (xa.mean() - xb.mean()) / pooled if pooled > 0 else np.nan
        pa, pb = trials[trials.method == a].correct.mean(), trials[trials.method == b].correct.mean()
        rows.append({"a": a, "b": b, "acc_a": pa, "acc_b": pb, "diff": pa - pb,
                     "cohen_h": 2 * np.arcsin(np.sqrt(pa)) - 2 * np.arcsin(np.sqrt(pb)),
                     "cohen_d": cohen_d, "t": t, "p": p, "test": "paired t" if paired else "Welch t"})
    out = pd.DataFrame(rows)
    if len(out):
        ok = out.p.notna()
        out.loc[ok, "p_holm"] = multipletests(out.loc[ok, "p"], alpha=alpha, method="holm")[1]
        out["significant"] = out.p_holm < alpha
    return out


def rt_summary(trials: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Response times per `by`: n, median, quartiles, geometric mean (ms)."""
    g = trials.groupby(by).rt_ms
    return pd.DataFrame({"n": g.count(), "median_ms": g.median(), "q1_ms": g.quantile(0.25),
                         "q3_ms": g.quantile(0.75),
                         "geo_mean_ms": g.apply(lambda x: float(np.exp(np.log(x.clip(lower=1)).mean())))}).reset_index()


def likert_long(trials: pd.DataFrame) -> pd.DataFrame:
    """Rating trials as long rows: participant_id, item, method, question, rating."""
    rows = [{"participant_id": r.participant_id, "item": r.item, "method": r.method, "question": q, "rating": v}
            for r in trials.itertuples() if r.score for q, v in json.loads(r.score).items()]
    return pd.DataFrame(rows, columns=["participant_id", "item", "method", "question", "rating"])


def likert_summary(trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """'distribution': counts per question x method x rating; 'tests': Kruskal-Wallis per question
    across methods; 'pairwise': Mann-Whitney U per method pair with Holm-corrected p and the
    rank-biserial effect size."""
    long = likert_long(trials)
    dist = long.groupby(["question", "method", "rating"]).size().rename("count").reset_index()
    tests, pairs = [], []
    for q, g in long.groupby("question"):
        groups = [x.rating.to_numpy() for _, x in g.groupby("method")]
        h, p = stats.kruskal(*groups) if len(groups) > 1 else (np.nan, np.nan)
        tests.append({"question": q, "H": h, "p": p, "median": g.rating.median()})
        for a, b in combinations(sorted(g.method.unique()), 2):
            xa, xb = g[g.method == a].rating, g[g.method == b].rating
            u, pu = stats.mannwhitneyu(xa, xb)
            pairs.append({"question": q, "a": a, "b": b, "U": u, "p": pu,
                          "rank_biserial": 1 - 2 * u / (len(xa) * len(xb))})
    pair_df = pd.DataFrame(pairs)
    if len(pair_df):
        pair_df["p_holm"] = multipletests(pair_df.p, method="holm")[1]
    return {"distribution": dist, "tests": pd.DataFrame(tests), "pairwise": pair_df}


def bradley_terry(trials: pd.DataFrame) -> dict[str, Any]:
    """Bradley-Terry strengths from pairwise preferences (binomial GLM without intercept).

    Returns 'scores' (method, log_strength with the first method fixed at 0, se, win_rate),
    'lr_test' (chi2, df, p against equal strengths) and 'pairs' (binomial test per pair, Holm)."""
    import statsmodels.api as sm

    wl = pd.DataFrame([json.loads(s) for s in trials.score.dropna()])
    methods = sorted(set(wl.winner) | set(wl.loser))
    _ref, others = methods[0], methods[1:]
    # each comparison as 'first beats second', first = alphabetically smaller method
    a = np.where(wl.winner < wl.loser, wl.winner, wl.loser)
    b = np.where(wl.winner < wl.loser, wl.loser, wl.winner)
    y = (wl.winner.to_numpy() == a).astype(float)
    X = np.zeros((len(wl), len(others)))
    for j, m in enumerate(others):
        X[:, j] = (a == m).astype(float) - (b == m).astype(float)
    fit = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    null_dev = float(-2 * np.sum(np.log(0.5) * np.ones(len(y))))
    chi2 = null_dev - float(fit.deviance)
    wins = wl.winner.value_counts()
    games = pd.concat([wl.winner, wl.loser]).value_counts()
    scores = pd.DataFrame({"method": methods, "log_strength": [0.0, *fit.params],
                           "se": [0.0, *fit.bse], "win_rate": [wins.get(m, 0) / games[m] for m in methods]})
    pair_rows = []
    for m1, m2 in combinations(methods, 2):
        sel = ((wl.winner == m1) & (wl.loser == m2)) | ((wl.winner == m2) & (wl.loser == m1))
        k, n = int((wl[sel].winner == m1).sum()), int(sel.sum())
        pair_rows.append({"a": m1, "b": m2, "wins_a": k, "n": n,
                          "p": stats.binomtest(k, n).pvalue if n else np.nan})
    pairs = pd.DataFrame(pair_rows)
    pairs["p_holm"] = multipletests(pairs.p.fillna(1), method="holm")[1]
    return {"scores": scores, "lr_test": {"chi2": chi2, "df": len(others), "p": float(stats.chi2.sf(chi2, len(others)))},
            "pairs": pairs}


def consort(frames: dict[str, Any]) -> dict[str, Any]:
    """CONSORT-style flow: started, consented, declined, withdrawn, abandoned, screened_out,
    completed, excluded (by reason) and analysed; per condition in 'by_condition'."""
    part = frames["participants"]
    ev = frames["events"]

    def flow(p: pd.DataFrame) -> dict[str, Any]:
        done = p[p.status == "completed"]
        reasons: dict[str, int] = {}
        for r in done.exclusion_reasons:
            for x in filter(None, str(r).split(";")):
                reasons[x] = reasons.get(x, 0) + 1
        return {"started": len(p), "consented": int(p.consented_at.notna().sum()),
                "declined": int((p.status == "declined").sum()), "withdrawn": int((p.status == "withdrawn").sum()),
                "abandoned": int((p.status == "abandoned").sum()),
                "screened_out": int((p.status == "screened_out").sum()),
                "in_progress": int(p.status.isin(["started", "active"]).sum()),
                "completed": len(done), "excluded": int(done.excluded.sum()), "excluded_by_reason": reasons,
                "analysed": int((~done.excluded).sum())}

    out = flow(part)
    out["withdrawals_logged"] = int((ev.kind == "withdrawn").sum())
    out["by_condition"] = {c: flow(g) for c, g in part[part.condition != ""].groupby("condition")}  # withdrawn: redacted
    return out


def simulate_trials(accuracy: dict[str, float], n_per_condition: int, n_trials: int, design: str = "between",
                    participant_sd: float = 0.5, item_sd: float = 0.3, n_items: int = 40,
                    rng: np.random.Generator | None = None) -> pd.DataFrame:
    """Synthetic trial rows (participant_id, item, method, correct) from a logistic model with
    participant and item random intercepts around the given per-method accuracies."""
    rng = rng or np.random.default_rng()
    methods = list(accuracy)
    logit = {m: np.log(p / (1 - p)) for m, p in accuracy.items()}
    items = rng.normal(0, item_sd, n_items)
    rows = []
    n_people = n_per_condition * (len(methods) if design == "between" else 1)
    for i in range(n_people):
        u = rng.normal(0, participant_sd)
        for t in range(n_trials):
            m = methods[i % len(methods)] if design == "between" else methods[t % len(methods)]
            it = (t * 7 + i) % n_items
            p = 1 / (1 + np.exp(-(logit[m] + u + items[it])))
            rows.append((f"p{i}", f"i{it}", m, float(rng.random() < p)))
    return pd.DataFrame(rows, columns=["participant_id", "item", "method", "correct"])


def method_effect_test(trials: pd.DataFrame) -> float:
    """p value of the omnibus method effect on participant-level accuracy (t test for two methods,
    one-way ANOVA between / Friedman within for more)."""
    table = participant_accuracy(trials)
    cols = [table[c].dropna() for c in table.columns]
    paired = bool((table.notna().sum(axis=1) > 1).all())
    if len(cols) == 2:
        return float((stats.ttest_rel(*cols) if paired else stats.ttest_ind(*cols, equal_var=False)).pvalue)
    if paired:
        return float(stats.friedmanchisquare(*[table[c] for c in table.columns]).pvalue)
    return float(stats.f_oneway(*cols).pvalue)


def power(accuracy: dict[str, float], n_per_condition: int, n_trials: int, design: str = "between",
          n_sims: int = 200, alpha: float = 0.05, seed: int = 0, **kw: Any) -> dict[str, float]:
    """Simulation-based power of `method_effect_test`: share of `n_sims` simulated studies with
    p < alpha, and its Wilson interval. With equal accuracies this is the type I error rate."""
    rng = np.random.default_rng(seed)
    hits = sum(method_effect_test(simulate_trials(accuracy, n_per_condition, n_trials, design, rng=rng, **kw)) < alpha
               for _ in range(n_sims))
    lo, hi = wilson(hits, n_sims)
    return {"power": hits / n_sims, "ci_low": lo, "ci_high": hi, "n_sims": n_sims}


def with_exclusions(frames: dict[str, Any], rules: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`frames` with every completed participant's exclusion decided again from their stored flags
    under `rules` (names from `study.spec.FLAGS`) instead of the spec's `quality.exclude`."""
    part = frames["participants"].copy()
    flags = part["flags"].map(lambda f: json.loads(f) if f else {})
    reasons = [[r for r in rules if r in fl] if status == "completed" else []
               for fl, status in zip(flags, part.status, strict=True)]
    part["excluded"] = [bool(r) for r in reasons]
    part["exclusion_reasons"] = [";".join(r) for r in reasons]
    return {**frames, "participants": part}


def accuracy_by_item(trials: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per item x method: n, correct, accuracy, Wilson interval, participants."""
    rows = []
    for (item, method), g in trials.groupby(["item", "method"]):
        k, n = int(g.correct.sum()), int(g.correct.count())
        lo, hi = wilson(k, n)
        rows.append({"item": item, "method": method, "n": n, "correct": k, "accuracy": k / n if n else np.nan,
                     "ci_low": lo, "ci_high": hi, "participants": g.participant_id.nunique()})
    return pd.DataFrame(rows, columns=["item", "method", "n", "correct", "accuracy", "ci_low", "ci_high",
                                       "participants"])


def chance_level(spec: Any) -> float | None:
    """Accuracy of guessing on a trial of `spec`'s protocol: 1/2 for a yes/no task, 1/k for a
    choice among k candidates; None for unscored protocols or when the protocol says neither."""
    if not protocols.get(spec.protocol.name).scored:
        return None
    cfg = spec.protocol_config()
    if getattr(cfg, "task", None) == "match":
        return 0.5
    k = getattr(cfg, "n_candidates", None)
    return 1 / min(k, len(spec.concepts)) if k else None


def questionnaire_likert(frames: dict[str, Any], exclude: bool = True) -> pd.DataFrame:
    """Likert answers of the end questionnaire as long rows: participant_id, condition, question,
    rating (completed participants, minus exclusions when `exclude`)."""
    part, resp = frames["participants"], frames["responses"]
    keep = set(part[(part.status == "completed") & (~part.excluded if exclude else True)].participant_id)
    likert = {q.id for q in frames["spec"].questionnaire if q.type == "likert"}
    rows = [{"participant_id": r.participant_id, "condition": r.condition, "question": q, "rating": int(v)}
            for r in resp[(resp.kind == "questionnaire") & resp.participant_id.isin(keep)].itertuples()
            for q, v in json.loads(r.answer).get("answers", {}).items() if q in likert and v is not None]
    return pd.DataFrame(rows, columns=["participant_id", "condition", "question", "rating"])


def accuracy_vs_map_scores(trials: pd.DataFrame, maps: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Does people's accuracy on an item follow the automatic scores of the maps they saw for it?

    `maps`: one row per (item, concept, method) with 'pointing' (1/0, NaN when the concept is not
    in the scene) and 'deletion_auc' (`study.map_scores.score_maps`). Returns 'items' (per item x
    method: accuracy, trials, mean pointing over the in-scene candidates, mean deletion AUC) and
    'tests' (per method and score: items, Spearman rho and its p value)."""
    acc = trials.groupby(["item", "method"]).agg(accuracy=("correct", "mean"), trials=("correct", "count"),
                                                  participants=("participant_id", "nunique")).reset_index()
    scores = maps.groupby(["item", "method"]).agg(pointing=("pointing", "mean"),
                                                   deletion_auc=("deletion_auc", "mean")).reset_index()
    items = acc.merge(scores, on=["item", "method"], how="inner")
    tests = []
    for method, g in items.groupby("method"):
        for score in ("pointing", "deletion_auc"):
            x = g[["accuracy", score]].dropna()
            ok = len(x) > 2 and x[score].nunique() > 1 and x.accuracy.nunique() > 1
            rho, p = stats.spearmanr(x[score], x.accuracy) if ok else (np.nan, np.nan)
            tests.append({"method": method, "score": score, "items": len(x), "rho": float(rho), "p": float(p)})
    return {"items": items, "tests": pd.DataFrame(tests, columns=["method", "score", "items", "rho", "p"])}

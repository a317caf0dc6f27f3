"""Analysis recovers known effects; export writes what it promises."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from study import analysis
from study.bots import BotProfile, run_bots
from study.export import export_study, load_frames
from study.versions import launch


def test_known_effect_recovered_from_bots(sqlite_db, write_spec, tmp_path) -> None:
    launch(sqlite_db, write_spec(id="effect", trials=30, design={"type": "between", "control": False},
                                 attention_checks={"count": 1}, bonus={"per_correct": 0.05}))
    run_bots(sqlite_db, "effect", 30, BotProfile(accuracy={"convis": 0.8, "gradcam": 0.6}, attention_pass=0.9),
             workers=6, seed=2)
    frames = load_frames(sqlite_db, "effect")
    trials = analysis.main_trials(frames)
    acc = analysis.accuracy_table(trials).set_index("method")
    assert acc.loc["convis", "accuracy"] > acc.loc["gradcam", "accuracy"]
    assert (acc.ci_low < acc.accuracy).all() and (acc.accuracy < acc.ci_high).all()
    fx = analysis.mixed_logit(trials, reference="gradcam").set_index("term")
    assert fx.loc["method=convis", "estimate"] > 0 and fx.loc["method=convis", "p"] < 0.05
    pw = analysis.pairwise_methods(trials)
    assert pw.iloc[0].p_holm < 0.05 and pw.iloc[0]["diff"] > 0 and pw.iloc[0].cohen_h > 0
    flow = analysis.consort(frames)
    assert flow["started"] == 30 and flow["completed"] == 30
    assert flow["analysed"] + flow["excluded"] == 30 and flow["excluded"] == flow["excluded_by_reason"].get("failed_attention", 0)
    assert len(trials) == 30 * flow["analysed"]
    rts = analysis.rt_summary(trials)
    assert (rts.median_ms > 500).all() and (rts.median_ms < 10_000).all()
    paths = export_study(sqlite_db, "effect", tmp_path / "out")
    resp = pd.read_parquet(paths["responses_parquet"])
    assert len(resp) == len(frames["responses"]) and resp.config_sha256.nunique() == 1
    assert (tmp_path / "out" / "config.sha256").read_text().strip() == frames["sha256"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["spec"]["id"] == "effect"
    bonus = pd.read_csv(paths["bonus"], header=None, names=["pid", "amount"])
    # excluded participants are not paid a bonus; ids are Prolific's 24 hex digits
    assert len(bonus) == flow["analysed"] and bonus.pid.str.fullmatch("[0-9a-f]{24}").all()
    assert (bonus.amount > 0).all()
    assert set(pd.read_csv(paths["approvals"]).decision) <= {"approve", "review"}


def test_equal_accuracy_rejects_at_nominal_rate() -> None:
    res = analysis.power({"a": 0.7, "b": 0.7}, n_per_condition=15, n_trials=20, n_sims=200, seed=1)
    assert 0.01 <= res["power"] <= 0.10, res
    strong = analysis.power({"a": 0.8, "b": 0.6}, n_per_condition=15, n_trials=20, n_sims=40, seed=1)
    assert strong["power"] > 0.8, strong


def test_equal_accuracy_mixed_model_not_significant() -> None:
    df = analysis.simulate_trials({"a": 0.7, "b": 0.7}, 20, 20, rng=np.random.default_rng(4))
    fx = analysis.mixed_logit(df).set_index("term")
    assert fx.loc["method=b", "p"] > 0.05


def test_bradley_terry_and_likert() -> None:
    rng = np.random.default_rng(0)
    strength = {"convis": 2.0, "gradcam": 1.0, "grid": 1.0}
    rows = []
    for _i in range(300):
        a, b = rng.choice(list(strength), 2, replace=False)
        win = a if rng.random() < strength[a] / (strength[a] + strength[b]) else b
        rows.append({"score": json.dumps({"winner": win, "loser": b if win == a else a})})
    bt = analysis.bradley_terry(pd.DataFrame(rows))
    scores = bt["scores"].set_index("method")
    assert scores.loc["gradcam", "log_strength"] < 0 and scores.loc["grid", "log_strength"] < 0
    assert bt["lr_test"]["p"] < 0.05
    likert = pd.DataFrame([{"participant_id": f"p{i}", "item": "x", "method": m,
                            "score": json.dumps({"q": int(np.clip(rng.normal(5 if m == "a" else 3, 1), 1, 7))})}
                           for i in range(40) for m in ("a", "b")])
    out = analysis.likert_summary(likert)
    assert out["tests"].p.iloc[0] < 0.05 and out["pairwise"].rank_biserial.iloc[0] != 0
    assert out["distribution"]["count"].sum() == 80

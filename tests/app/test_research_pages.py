"""The researcher pages (Monitor, Analysis) through Streamlit's AppTest, on real SQLite databases
filled by bots through the participant runtime: no study, a study without responses, each
protocol family, exclusion toggles, downloads, and the maps-versus-people panel."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from study import analysis
from study.bots import BotOutcome, BotProfile, bot_pid, run_bots
from study.export import load_frames
from study.monitor import data_version, short_id, snapshot
from study.runtime import Runtime
from study.versions import get_version, launch
from tests.app.studies import launch_example
from ui.research.downloads import PROLIFIC, prolific_file, research_zip

PAGES = Path(__file__).resolve().parents[2] / "app_pages"
RESEARCH_FILES = {"responses.csv", "responses.parquet", "participants.csv", "participants.parquet", "events.csv",
                  "events.parquet", "codebook.csv", "config.json", "config.sha256"}




def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120).run()


def text_of(at: AppTest) -> str:
    """Everything drawn as text, including table cells and metric values."""
    parts: list[str] = []
    for kind in ("markdown", "subheader", "caption", "success", "info", "warning", "error", "title"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(parts)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def bots(db, slug: str, n: int, seed: int = 1, **profile) -> list[BotOutcome]:
    outs = run_bots(db, slug, n, BotProfile(**profile), workers=4, seed=seed)
    assert all(isinstance(o, BotOutcome) for o in outs), outs
    return outs


def wait_for_mixed_model(at: AppTest, timeout: float = 240) -> AppTest:
    """Rerun the page until the background fit has drawn its table."""
    deadline = time.time() + timeout
    while "Fitting the model in the background" in text_of(at):
        assert time.time() < deadline, "the mixed model did not finish"
        time.sleep(1)
        at.run()
    return at


def test_no_studies_yet(db) -> None:
    for name in ("monitor", "analysis"):
        at = page(name)
        assert not at.exception, at.exception
        assert "No study has been launched yet" in text_of(at)


def test_launched_study_without_responses(db, tmp_path) -> None:
    spec = launch_example(db, "forward_simulation", tmp_path)
    mon = page("monitor")
    assert not mon.exception, mon.exception
    assert metric(mon, "Started") == "0" and "No participants yet" in text_of(mon)
    ana = page("analysis")
    assert not ana.exception, ana.exception
    text = text_of(ana)
    assert "No responses yet" in text and "Counting **0 participants**" in text
    assert "Participant flow" in text and "Power planner" in text
    with zipfile.ZipFile(io.BytesIO(research_zip(db.url, spec["id"], 1))) as zf:
        assert set(zf.namelist()) == RESEARCH_FILES

    # three people leave midway: open sessions on Monitor, nothing to analyse yet
    outs = bots(db, spec["id"], 3, dropout=1.0)
    mon.run()
    assert metric(mon, "In progress") == "3" and "Open sessions" in {str(s.value) for s in mon.subheader}
    sessions = next(d.value for d in mon.dataframe if "progress" in d.value.columns)
    assert set(sessions.participant) == {short_id(o.participant_id) for o in outs}
    assert ((sessions.progress > 0) & (sessions.progress < 1)).all()
    ana.run()
    assert "No completed participants yet (3 in progress" in text_of(ana)


def test_forward_simulation_with_bots(db, tmp_path) -> None:
    spec = launch_example(db, "forward_simulation", tmp_path)
    slug = spec["id"]
    outs = bots(db, slug, 30, accuracy={"convis": 0.85, "gradcam": 0.65, "none": 0.45}, attention_pass=0.45)

    mon = page("monitor")
    assert not mon.exception, mon.exception
    assert metric(mon, "Started") == "30" and metric(mon, "Completed") == "30"
    assert metric(mon, "Consented / target") == f"30 / {3 * spec['recruitment']['target_per_condition']}"
    text = text_of(mon)
    assert {"By condition and status", "Flow", "Quality flags", "Time per trial", "Timed out",
            "Recent activity"} <= {str(s.value) for s in mon.subheader}
    recent = next(d.value for d in mon.dataframe if "event" in d.value.columns)
    assert len(recent) == 20 and set(recent.participant) <= {short_id(o.participant_id) for o in outs}
    assert not any(bot_pid("BOT000001", i) in text for i in range(30))    # never a Prolific id
    assert not any(o.participant_id in text for o in outs)               # opaque ids only shortened

    ana = page("analysis")
    assert not ana.exception, ana.exception
    subheads = {str(s.value) for s in ana.subheader}
    assert {"Accuracy per method", "Accuracy per item × method", "Mixed-effects logistic model",
            "Pairwise comparisons", "Response times", "Questionnaire (Likert items)",
            "Participant flow", "Power planner"} <= subheads
    frames = load_frames(db, slug)
    part = frames["participants"]
    analysed = int((~part.excluded).sum())
    assert 0 < analysed < 30, "the attention profile should exclude some bots"
    text = text_of(ana)
    assert f"Counting **{analysed} participants**" in text
    assert f"n = {analysed} participants" in text
    assert "Not computable for this study: the stimuli are synthetic" in text
    acc = ana.dataframe[0].value
    assert set(acc.method) == {"convis", "gradcam", "none"} and acc.participants.sum() == analysed

    # exclusion toggle: untick 'failed attention' and every completed participant counts
    ana.checkbox(key="analysis_rule_1_failed_attention").uncheck().run()
    assert not ana.exception, ana.exception
    assert "Counting **30 participants**" in text_of(ana) and "n = 30 participants" in text_of(ana)
    wait_for_mixed_model(ana)
    text = text_of(ana)
    assert "method=convis" in text or "method=gradcam" in text  # the mixed model's terms
    assert not any(bot_pid("BOT000001", i) in text for i in range(30))

    # the power planner answers on request
    ana.slider(key="analysis_power_n").set_value(10)
    ana.button(key="analysis_power_go").click().run()
    assert not ana.exception, ana.exception
    assert metric(ana, "Power").endswith("%")
    assert "n = 30 simulated participants per study" in text_of(ana)


def test_downloads_are_valid(db, tmp_path) -> None:
    spec = launch_example(db, "forward_simulation", tmp_path)
    outs = bots(db, spec["id"], 6)
    ana = page("analysis")
    assert not ana.get("download_button")                 # made on request only
    ana.button(key=f"analysis_dl_ready_{spec['id']}_1_go").click().run()
    assert not ana.exception
    labels = {e.proto.label for e in ana.get("download_button")}
    assert labels == {"Tidy export (.zip)", "Prolific approvals (.csv)", "Prolific bonuses (.csv)"}
    with zipfile.ZipFile(io.BytesIO(research_zip(db.url, spec["id"], 1))) as zf:
        assert set(zf.namelist()) == RESEARCH_FILES
        responses = pd.read_parquet(io.BytesIO(zf.read("responses.parquet")))
        assert set(responses.participant_id) == {o.participant_id for o in outs}
        assert zf.read("config.sha256").decode().strip() == get_version(db, spec["id"]).config_sha256
        assert json.loads(zf.read("config.json"))["spec"]["id"] == spec["id"]
        assert not any(bot_pid("BOT000001", i).encode() in zf.read(n) for n in zf.namelist() for i in range(6))
    approvals = pd.read_csv(io.BytesIO(prolific_file(db.url, spec["id"], 1, PROLIFIC[0])))
    assert list(approvals.columns) == ["prolific_pid", "decision", "exclusion_reasons"] and len(approvals) == 6
    bonus = prolific_file(db.url, spec["id"], 1, PROLIFIC[1]).decode().splitlines()
    assert all(len(line.split(",")) == 2 for line in bonus) and bonus


def test_preference_with_bots(db, tmp_path) -> None:
    spec = launch_example(db, "preference", tmp_path)
    bots(db, spec["id"], 12, accuracy={"convis": 0.8, "gradcam": 0.5, "grid": 0.3})
    mon = page("monitor")
    assert not mon.exception, mon.exception and metric(mon, "Completed") == "12"
    ana = page("analysis")
    assert not ana.exception, ana.exception
    subheads = {str(s.value) for s in ana.subheader}
    assert "Preference scores (Bradley–Terry)" in subheads and "Accuracy per method" not in subheads
    text = text_of(ana)
    assert "n = 12 participants" in text and "equal strengths: χ²(2)" in text
    assert "This needs a protocol with correct answers" in text


def test_rating_with_bots(db, tmp_path) -> None:
    spec = launch_example(db, "rating", tmp_path)
    bots(db, spec["id"], 10)
    ana = page("analysis")
    assert not ana.exception, ana.exception
    subheads = {str(s.value) for s in ana.subheader}
    assert "Ratings" in subheads and "Accuracy per method" not in subheads
    analysed = int((~load_frames(db, spec["id"])["participants"].excluded).sum())
    assert f"n = {analysed} participants" in text_of(ana) and f"Counting **{analysed} participants**" in text_of(ana)
    assert metric(page("monitor"), "Completed") == "10"


def test_snapshot_matches_the_analysis_flow(db, tmp_path) -> None:
    """Monitor counts its flow over the rows it fetched; it equals `study.analysis.consort`."""
    spec = launch_example(db, "forward_simulation", tmp_path, time_limits={"session_minutes": 1})
    slug = spec["id"]
    run_bots(db, slug, 16, BotProfile(dropout=0.3, decline=0.15, withdraw=0.15, attention_pass=0.5),
             workers=4, seed=5)
    vid = get_version(db, slug).id
    before = data_version(db, vid)
    snap = snapshot(db, vid)
    assert snap.consort == analysis.consort(load_frames(db, slug))
    assert sum(n for c in snap.counts.values() for n in c.values()) == 16
    assert all(len(a.participant) == 8 for a in snap.recent) and len(snap.recent) <= 20
    # a later start reclaims the dropped sessions (past their one-minute idle limit)
    from datetime import timedelta

    from study.versions import utcnow

    later = utcnow() + timedelta(minutes=30)
    Runtime(db, clock=lambda: later).start(slug, prolific_pid="a" * 24)
    after = snapshot(db, vid, now=later)
    assert after.data_version != before
    dropped = snap.consort["in_progress"]
    assert dropped and snap.consort["declined"] and snap.consort["withdrawn"], snap.consort
    assert after.timed_out["reclaimed"] == dropped and after.consort["abandoned"] == dropped
    assert after.consort == analysis.consort(load_frames(db, slug))


@pytest.mark.slow
def test_maps_versus_people_on_engine_stimuli(db, tmp_path) -> None:
    """Shapes-world scenes rendered by the engine (tiny random model): every map is recomputed,
    matches the stored picture, and is scored against the scene's boxes."""
    spec = {
        "id": "shapes-link", "title": "Shapes", "consent": "I agree.", "instructions": "Predict the model.",
        "stimuli": {"source": "engine", "dir": "stim", "model": "convis-tiny", "pretrained": "none",
                    "bank": "subtree=plane_figure.n.01", "params": {"convis": {"stride": 64}}},
        "images": {"shapes": 4, "n_objects": 2},
        "concepts": ["circle.n.01", "square.n.01", "triangle.n.01"], "methods": ["convis"],
        "protocol": {"name": "forward_simulation", "options": {"n_candidates": 3}},
        "design": {"type": "between", "control": True}, "trials": 4,
        "recruitment": {"completion_code": "SHP1", "max_starts_per_client": None},
    }
    path = tmp_path / "shapes.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    launch(db, path)
    bots(db, "shapes-link", 8, accuracy={"convis": 0.8, "none": 0.4})
    ana = page("analysis")
    assert not ana.exception, ana.exception
    assert "Compute the automatic scores" in [b.label for b in ana.button]
    ana.button(key="analysis_scores_go").click().run()
    assert not ana.exception, ana.exception
    text = text_of(ana)
    assert "could not be reproduced" not in text
    tests = next(d.value for d in ana.dataframe if "rho" in d.value.columns)
    assert set(tests.method) == {"convis"} and set(tests.score) == {"pointing", "deletion_auc"}
    assert (tests["items"] == 4).all()
    assert "n = 4 participants" in text  # the convis arm (the control saw no maps)

"""Engine-built stimuli: Shapes-world scenes explained by the real `convis_core` engine (a seeded
random tiny ViT), built through the CLI, launched, and taken by bots."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from sqlalchemy import func, select

from convis_core import concept_scores, load_model
from convis_core.shapes import TEST_ID_START, render_scene
from study import cli
from study.bots import BotOutcome, BotProfile, _answer_keys, run_bots
from study.errors import SpecError, StimulusError
from study.models import Response, Step
from study.spec import load_spec
from study.stimuli import build_engine_stimuli, load_manifest, resolve_model
from study.versions import launch

CONCEPTS = ["circle.n.01", "square.n.01", "triangle.n.01", "hexagon.n.01"]
BANK = "subtree=plane_figure.n.01"


def _engine_spec(tmp_path: Path) -> Path:
    spec = {
        "id": "engine-demo", "title": "Engine demo", "consent": "I agree.", "instructions": "Predict the model.",
        "stimuli": {"source": "engine", "dir": "stim", "model": "convis-tiny", "pretrained": "none", "bank": BANK,
                    # two arms from one engine method at two grid strides (stochastic ConVis is too slow here)
                    "params": {"convis": {"stride": 32}, "grid": {"stride": 64}}},
        "images": {"shapes": 5, "n_objects": 2},
        "concepts": CONCEPTS, "methods": ["convis", "grid"],
        "protocol": {"name": "forward_simulation", "options": {"n_candidates": 4}},
        "design": {"type": "between", "control": True}, "trials": 4, "practice": {"trials": 1},
        "recruitment": {"completion_code": "ENG1"},
    }
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_engine_stimuli_end_to_end(tmp_path, sqlite_db, capsys) -> None:
    spec_path = _engine_spec(tmp_path)
    assert cli.main(["--db", sqlite_db.url, "build-stimuli", str(spec_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["random_weights"] is True and out["images"] == 5 and out["stimuli"] == 5 * 4 * 2
    assert out["model"]["name"] == "convis-tiny" and out["model"]["weights_id"] == "random-seed0"

    folder = tmp_path / "stim"
    m = load_manifest(folder)  # verifies every file against its sha256
    assert m.random_weights and m.model.random_weights and not m.synthetic and m.model.bank == BANK
    assert m.methods == ["convis", "grid"] and m.sha256() == out["manifest_sha256"]
    first = f"scene{TEST_ID_START}"
    scene = render_scene(TEST_ID_START, n_objects=2, pool=CONCEPTS)  # held-out scenes, known content
    assert m.images[first].label == ", ".join(scene.synsets)
    assert m.images[first].boxes == [[float(v) for v in o.box] for o in scene.objects]
    # ground truth is the engine's own similarity, recomputed independently here
    model = load_model("convis-tiny", pretrained="none")
    truth = concept_scores(model, scene.image, CONCEPTS)
    assert m.images[first].concept_scores == pytest.approx(truth, abs=1e-5)
    for s in m.stimuli:
        meta = json.loads((folder / s.meta).read_text())
        assert s.random_weights and meta["random_weights"] is True and meta["concept"] == s.concept
        assert meta["method"] == "convis_grid"  # both names are aliases of the registry's grid method
        assert meta["bank"].startswith(BANK) and "timings" not in meta
        assert meta["params"]["stride"] == {"convis": 32, "grid": 64}[s.method]
        img = Image.open(io.BytesIO((folder / s.map).read_bytes()))
        assert img.size == (224, 224) and img.mode == "RGB"
    maps = {s.concept: np.asarray(Image.open(folder / s.map)) for s in m.stimuli
            if s.image == first and s.method == "convis"}
    assert len({a.tobytes() for a in maps.values()}) == len(CONCEPTS)  # one map per concept, all different

    version = launch(sqlite_db, spec_path)
    assert version.random_weights and not version.synthetic
    outcomes = run_bots(sqlite_db, "engine-demo", 9, BotProfile(double_submit=0.2), workers=3, seed=5)
    assert all(isinstance(o, BotOutcome) and o.status == "completed" for o in outcomes), outcomes
    assert Counter(o.condition for o in outcomes) == {"convis": 3, "grid": 3, "none": 3}
    with sqlite_db.session() as s:
        stored = s.scalar(select(func.count()).select_from(Response).where(Response.study_version_id == version.id))
    assert stored == sum(o.submitted for o in outcomes)
    # the answer key of a trial is the manifest's (model's) ranking of its candidates
    keys = _answer_keys(sqlite_db, outcomes[0].participant_id)
    with sqlite_db.session() as s:
        trials = s.scalars(select(Step).where(Step.participant_id == outcomes[0].participant_id,
                                              Step.kind == "trial")).all()
    assert trials
    for st in trials:
        content = st.payload["content"]
        assert keys[st.index]["truth"] == m.ranking(st.payload["item"], content["candidates"])[0]


def test_engine_build_errors_are_clear(tmp_path) -> None:
    scene = render_scene(TEST_ID_START, n_objects=1, pool=CONCEPTS)
    images = {"a": {"image": scene.image}}
    with pytest.raises(StimulusError, match="unknown engine method"):
        build_engine_stimuli(tmp_path, images, CONCEPTS[:1], ["gradcamm"], "convis-tiny", "none")
    with pytest.raises(StimulusError, match="cannot load model 'no-such-model'"):
        build_engine_stimuli(tmp_path, images, CONCEPTS[:1], ["convis"], "no-such-model", "none")
    with pytest.raises(StimulusError, match="concept 'dog.n.01'"):  # not in the plane-figure bank
        build_engine_stimuli(tmp_path, images, ["dog.n.01"], ["convis"], "convis-tiny", "none", bank=BANK,
                             params={"convis": {"stride": 64}})
    spec = _engine_spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["images"] = {"shapes": 2}
    data["stimuli"]["params"]["convs"] = {}
    spec.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"(?s)need at least 5 scenes.*'convs' is not one of the study's methods"):
        load_spec(spec)


def test_default_model_is_bundled_shapes_world(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CONVIS_MODEL", raising=False)
    monkeypatch.delenv("CONVIS_PRETRAINED", raising=False)
    assert resolve_model() == ("shapes-world", "bundled")
    assert resolve_model("convis-tiny", "none") == ("convis-tiny", "none")
    monkeypatch.setenv("CONVIS_MODEL", "ViT-B-32-quickgelu")
    assert resolve_model() == ("ViT-B-32-quickgelu", "openai")
    monkeypatch.setenv("CONVIS_PRETRAINED", "/models/clip.pt")
    assert resolve_model() == ("ViT-B-32-quickgelu", "/models/clip.pt")
    monkeypatch.delenv("CONVIS_MODEL")
    # no real weights configured: the bundled toy model, or a clear error naming it while it is untrained
    scene = render_scene(TEST_ID_START, n_objects=1, pool=CONCEPTS)
    try:
        m = build_engine_stimuli(tmp_path, {"a": {"image": scene.image}}, CONCEPTS[:1], ["convis"], bank=BANK,
                                 params={"convis": {"stride": 64}})
    except StimulusError as exc:
        assert "shapes-world" in str(exc) and "bundled" in str(exc)
    else:
        assert m.model.name == "shapes-world" and not m.random_weights

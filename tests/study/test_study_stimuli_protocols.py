"""Stimulus manifests (content hashes, tampering, random-weights flag) and protocol pure functions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from study import protocols
from study.design import build_items, build_schedule
from study.errors import InvalidAnswer, StimulusError
from study.spec import load_spec
from study.stimuli import ModelInfo, StimulusWriter, build_synthetic_stimuli, load_manifest


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, format="PNG")
    return buf.getvalue()


def test_manifest_hashes_and_tampering(tmp_path) -> None:
    w = StimulusWriter(tmp_path, ModelInfo(name="toy"))
    w.add_image("a", _png((200, 0, 0)), {"dog.n.01": 0.3, "cat.n.01": 0.1})
    w.add_stimulus("a", "dog.n.01", "grid", _png((0, 0, 0)), {"random_weights": True})
    m = w.finish()
    loaded = load_manifest(tmp_path)
    assert loaded.sha256() == m.sha256() and loaded.random_weights and loaded.ranking("a", ["cat.n.01", "dog.n.01"])[0] == "dog.n.01"
    (tmp_path / m.stimuli[0].map).write_bytes(_png((1, 2, 3)))
    with pytest.raises(StimulusError, match="does not match its sha256"):
        load_manifest(tmp_path)
    with pytest.raises(StimulusError, match="no stimulus manifest"):
        load_manifest(tmp_path / "missing")


def test_schedule_is_reproducible_and_hides_truth(write_spec, stimuli_dir) -> None:
    spec = load_spec(write_spec(attention_checks={"count": 2}, practice={"trials": 1}))
    items = build_items(spec, load_manifest(stimuli_dir))
    a, b = build_schedule(spec, items, "convis", 42), build_schedule(spec, items, "convis", 42)
    assert a == b and a != build_schedule(spec, items, "convis", 43)
    kinds = [s.kind for s in a]
    assert kinds.count("trial") == 6 and kinds.count("attention") == 2 and kinds[0] == "instructions"
    for s in a:
        assert "truth" not in s.payload["content"]


@pytest.mark.parametrize("name", list(protocols.REGISTRY))
def test_protocol_build_validate_score(name, stimuli_dir) -> None:
    proto = protocols.get(name)
    cfg = proto.Config()
    manifest = load_manifest(stimuli_dir)
    from study.protocols.base import Item

    cands = ["dog.n.01", "cat.n.01", "car.n.01", "tree.n.01"]
    img = sorted(manifest.images)[0]
    item = Item(img, manifest.images[img].file, tuple(cands), tuple(manifest.ranking(img, cands)),
                {(s.concept, s.method): s.map for s in manifest.stimuli if s.image == img})
    arm = proto.arms(cfg, ["convis", "gradcam"], False)[0]
    trial = proto.build(cfg, item, arm, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    good = proto.bot_answer(trial, 1.0, rng)
    parsed = proto.validate_answer(trial.content, good)
    correct, _ = proto.score(trial, parsed)
    assert correct is (True if proto.scored else None)
    with pytest.raises(InvalidAnswer):
        proto.validate_answer(trial.content, {**good, "extra": 1})
    if proto.scored:
        wrong = proto.bot_answer(trial, 0.0, rng)
        assert proto.score(trial, proto.validate_answer(trial.content, wrong))[0] is False


def test_synthetic_stimuli_are_flagged(tmp_path) -> None:
    m = build_synthetic_stimuli(tmp_path, ["x"], ["dog.n.01"], ["grid"], seed=0)
    assert m.synthetic and m.random_weights and len(m.stimuli) == 1

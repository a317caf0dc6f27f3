"""The bundled Shapes-world model: weights load, training lowers the loss, zero-shot >= 90 %."""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F

from convis_core.shapes import hierarchy as wnh
from convis_core.shapes import train as tr
from convis_core.shapes.scenes import ALL_CONCEPTS, BACKGROUND_SYNSET


def _load_shipped() -> torch.nn.Module:
    from safetensors.torch import load_file

    tr.register_config()
    model = open_clip.create_model("shapes-world", pretrained=None)
    sd = load_file(str(tr.WEIGHTS_PATH))
    assert all(v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)
    return model.eval()


def test_shipped_weights_are_small_and_load_strictly() -> None:
    assert tr.WEIGHTS_PATH.is_file()
    assert tr.WEIGHTS_PATH.stat().st_size <= 8_000_000
    model = _load_shipped()
    tok = open_clip.get_tokenizer("shapes-world")
    assert model.vocab_size == 49408 and tok.vocab_size == 49408
    x = model.encode_text(tok(["a three-sided polygon"]))
    assert torch.isfinite(x).all()


def test_shipped_model_classifies_held_out_scenes() -> None:
    """The issue's bar: >= 90 % zero-shot over the 15 concepts on held-out single-object scenes
    (the shipped weights reached 98.7 % on 300; here 100, with definitions and with lemmas)."""
    model = _load_shipped()
    tok = open_clip.get_tokenizer("shapes-world")
    ct = tr.class_tokens(_tiny_bank(), tok)
    assert tr.zero_shot_accuracy(model, ct, n=100) >= 0.90
    assert tr.zero_shot_accuracy(model, ct, n=100, mode="lemmas") >= 0.90


def _tiny_bank() -> tr.TextBank:
    """The class and background texts of the real bank, with a few hundred WordNet negatives."""
    wn = wnh.wordnet()
    words = ["dog", "cat", "car", "tree", "house", "river", "bird", "fish", "chair", "table", "book", "road", "cloud", "stone", "flower", "ship", "train", "bread", "apple", "horse", "window", "door", "glass", "paper", "metal", "water", "fire", "light", "music", "city", "field", "box", "line"]
    syns = [s for w in words for s in wn.synsets(w, pos="n")]
    negs = [s.definition() for s in syns]
    lemmas = sorted({lem.name().replace("_", " ") for s in syns for lem in s.lemmas()})
    return tr.TextBank(
        class_defs=[wnh.definition(c) for c in ALL_CONCEPTS],
        class_lemmas=[wnh.lemma_texts(c) for c in ALL_CONCEPTS],
        bg_def=wnh.definition(BACKGROUND_SYNSET),
        bg_lemmas=wnh.lemma_texts(BACKGROUND_SYNSET),
        neg_defs=negs[: len(negs) // 2],
        neg_lemmas=lemmas,
        hard_defs=negs[len(negs) // 2 :],
    )


def test_a_few_training_steps_lower_the_loss() -> None:
    torch.set_num_threads(2)
    cfg = tr.TrainConfig(scenes_per_step=4, crops_per_scene=2, random_negatives=24, random_lemma_negatives=8,
                         hard_negatives=8, steps=1)
    model = tr.create_model(0)
    tok = open_clip.get_tokenizer("shapes-world")
    bank = _tiny_bank()
    ct = tr.class_tokens(bank, tok)
    batch = tr.StepData(cfg, bank, tr.model_image_size(model), tok)[0]
    assert batch["pixels"].shape == (12, 3, 64, 64)
    assert batch["vis"].shape == (12, len(ALL_CONCEPTS))
    protos = tr.prototypes(len(ALL_CONCEPTS) + 1, 128, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def loss_now() -> torch.Tensor:
        img = F.normalize(model.encode_image(batch["pixels"]), dim=-1)
        emb = tr.embed_step_texts(model, ct, batch["neg_def_tokens"], batch["neg_lemma_tokens"])
        loss, stats = tr.contrastive_loss(img, emb, ct, batch["vis"], model.logit_scale.exp())
        assert stats["i2t"] > 0 and stats["t2i"] > 0
        return loss + tr.anchor_loss(img, emb, ct, batch["vis"], protos, 20.0)

    model.eval()
    with torch.no_grad():
        before = float(loss_now())
    for _ in range(6):
        model.train()
        loss = loss_now()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = float(loss_now())
    assert after < before - 0.5, (before, after)


def test_prototypes_are_orthonormal_and_seeded() -> None:
    p = tr.prototypes(16, 128, 0)
    assert torch.allclose(p @ p.T, torch.eye(16), atol=1e-5)
    assert torch.equal(p, tr.prototypes(16, 128, 0))


def test_training_command_end_to_end_writes_curve_report_and_loadable_weights(tmp_path) -> None:
    """Two tiny steps through the real command: curve, report, fp16 weights the engine loads."""
    import json

    from convis_core import load_model

    weights = tmp_path / "w.safetensors"
    tr.main(["--steps", "2", "--scenes-per-step", "2", "--crops-per-scene", "1", "--random-negatives", "8",
             "--random-lemma-negatives", "4", "--hard-negatives", "4", "--eval-every", "1", "--num-workers", "0",
             "--warmup", "1", "--out", str(tmp_path), "--weights", str(weights), "--no-progress"])
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert report["steps_done"] == 2 and not report["stopped_early"]
    assert 0.0 <= report["validation_zero_shot_definitions_300"] <= 1.0
    rows = (tmp_path / "train_curve.csv").read_text().splitlines()
    assert len(rows) == 3 and "def_cos" in rows[0]
    assert (tmp_path / "train_curve.png").stat().st_size > 0
    model = load_model("shapes-world", str(weights), device="cpu")
    assert not model.random_weights and model.name == "shapes-world"

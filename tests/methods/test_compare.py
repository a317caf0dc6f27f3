"""``python -m convis_core compare`` end to end on the tiny models (in-process CLI)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from convis_core.cli import main
from convis_core.result import SaliencyResult

from .conftest import BANK, half_image

TINY = ["--model", "convis-tiny", "--pretrained", "none", "--device", "cpu", "--bank", BANK]


def test_compare_writes_maps_grid_and_metrics(tmp_path, capsys) -> None:
    img = tmp_path / "half.png"
    Image.fromarray(half_image(1)).save(img)
    out = tmp_path / "cmp"
    rc = main(["compare", str(img), "dog.n.01", "--methods", "gradcam,occlusion,centre,random", "--out", str(out),
               "--param", "occlusion.stride=48", "--steps", "4", "--sanity", "1", *TINY])
    assert rc == 0
    report = json.loads((out / "compare.json").read_text())
    assert set(report["methods"]) == {"gradcam", "occlusion", "centre", "random"}
    assert report["model"] == "convis-tiny" and report["random_weights"] is True
    for name, entry in report["methods"].items():
        r = SaliencyResult.load(out / entry["map"])
        assert r.map.shape == (224, 224) and r.meta["method"] == name
        assert entry["seconds"] >= 0 and -1 <= entry["deletion_auc"] <= 1  # cosine similarities and len(entry["curves"]["insertion"]["scores"]) == 5
    assert report["methods"]["occlusion"]["params"]["stride"] == 48
    assert report["sanity"]["flagged"]["centre"] and report["sanity"]["flagged"]["random"]
    assert not report["sanity"]["flagged"]["gradcam"]
    grid = Image.open(out / "compare.png")
    assert grid.size == (4 * 256, 256 + 18)
    assert "FLAGGED" in capsys.readouterr().out


def test_compare_all_skips_unsupported_and_rejects_bad_input(tmp_path, capsys) -> None:
    img = tmp_path / "half.png"
    Image.fromarray(half_image(2)).save(img)
    rn = ["--model", "convis-tiny-rn", "--pretrained", "none", "--device", "cpu", "--bank", BANK]
    fast = ["--param", "rise.n_masks=16", "--param", "occlusion.stride=64", "--param", "convis_grid.stride=64",
            "--param", "convis_stochastic.iterations=8", "--param", "convis_stochastic.switch_at=4",
            "--param", "convis_stochastic.restart_every=4"]
    out = tmp_path / "all"
    assert main(["compare", str(img), "dog.n.01", "--out", str(out), "--steps", "0", *fast, *rn]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert "attention_relevance" in report["skipped"] and "Vision Transformer" in report["skipped"]["attention_relevance"]
    assert {"gradcam", "rise", "occlusion", "convis_grid", "centre"} <= set(report["methods"])
    assert np.load(out / "maps" / "gradcam.npy").shape == (224, 224)
    capsys.readouterr()
    # explicitly asking for an unsupported method, an unknown method, a bad parameter: one-line errors
    assert main(["compare", str(img), "dog.n.01", "--methods", "attention_relevance", "--out", str(out), *rn]) == 2
    assert main(["compare", str(img), "dog.n.01", "--methods", "gradcam,nope", "--out", str(out), *rn]) == 2
    assert main(["compare", str(img), "dog.n.01", "--methods", "rise", "--param", "rise.p=7", "--out", str(out), *rn]) == 2
    assert main(["compare", str(img), "dog.n.01", "--methods", "rise", "--param", "gradcam.x=1", "--out", str(out), *rn]) == 2
    err = capsys.readouterr().err
    assert "does not support convis-tiny-rn" in err and "unknown method 'nope'" in err and "invalid parameters for rise" in err

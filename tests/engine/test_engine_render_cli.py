"""The renderer (deterministic PNGs, the paper's white-fade) and the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from convis_core import ImageFrame, SaliencyResult, render, render_png


def result_with(map224: np.ndarray, width: int = 300, height: int = 200, method: str = "convis_grid"):
    return SaliencyResult(map224.astype(np.float32), ImageFrame.for_size(width, height), {"method": method})


def test_whitefade_formula_and_margins():
    img = Image.new("RGB", (300, 200), (100, 50, 0))
    m = np.zeros((224, 224))
    m[:, 112:] = 1.0
    out = np.asarray(render(result_with(m), img, style="whitefade", k=20))
    assert out[100, 290].tolist() == [255, 255, 255], "outside the centre square: nothing shown"
    assert out[100, 60].tolist() == [255, 255, 255], "s = 0 fades to white"
    assert out[100, 240].tolist() == [100, 50, 0], "s = 1 keeps the pixel"
    half = np.full((224, 224), 0.5 ** (1 / 4))  # s**4 = 0.5
    mid = np.asarray(render(result_with(half, method="other"), img))[100, 150]
    assert mid.tolist() == [178, 153, 128]  # 0.5 * 255 + 0.5 * pixel, rounded


def test_png_deterministic_and_styles():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    m = np.random.default_rng(1).random((224, 224))
    r = result_with(m, 160, 120)
    for style in ("whitefade", "heatmap", "raw"):
        a, b = render_png(r, img, style=style), render_png(r, img, style=style)
        assert a == b
        assert Image.open(io.BytesIO(a)).size == (160, 120)
    with_contour = np.asarray(render(r, img, style="heatmap", contour=0.5))
    assert (with_contour == [255, 64, 0]).all(axis=2).any()
    with pytest.raises(ValueError):
        render(r, img, style="jet")


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convis_core", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_cli_explain_and_errors(tmp_path, chelsea):
    src = tmp_path / "cat.jpg"
    chelsea.save(src)
    out = tmp_path / "m.npy"
    p = run_cli("explain", str(src), "cat.n.01", "--out", str(out), "--png", str(tmp_path / "m.png"),
                "--model", "convis-tiny", "--pretrained", "none", "--bank", "subtree=animal.n.01", "--seed", "4")
    assert p.returncode == 0, p.stderr
    assert "RANDOM" in p.stderr
    m = np.load(out)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert m.shape == (224, 224) and meta["seed"] == 4 and meta["random_weights"] is True
    assert Image.open(tmp_path / "m.png").size == chelsea.size
    bad = run_cli("explain", str(src), "cat.n.77", "--out", str(out), "--model", "convis-tiny", "--bank", "subtree=animal.n.01")
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown WordNet noun synset 'cat.n.77'")


def test_cli_in_process(tmp_path, chelsea, capsys):
    """The same entry point without a new interpreter: bad files, bad arguments, concepts."""
    from convis_core.cli import main

    src = tmp_path / "cat.png"
    chelsea.save(src)
    assert main(["explain", __file__, "cat.n.01", "--out", str(tmp_path / "x.npy"), "--model", "convis-tiny"]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["explain", str(src), "cat.n.01", "--out", str(tmp_path / "x.npy"), "--model", "convis-tiny",
                 "--bank", "subtree=animal.n.01", "--param", "stride"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["concepts", str(src), "--top", "3", "--json", "--model", "convis-tiny",
                 "--bank", "subtree=animal.n.01"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["concepts", str(src), "--region", "0,0,1", "--model", "convis-tiny", "--bank", "subtree=animal.n.01"]) == 2

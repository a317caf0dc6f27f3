"""The command line answers at once: ``--help``, listing methods and rejecting bad input import
neither torch nor open_clip nor Grad-CAM (checked with ``-X importtime``, not by timing)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "open_clip", "pytorch_grad_cam", "timm", "scipy")


def imported_modules(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    p = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=300)
    mods = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    return p, mods


def heavy(mods: set[str]) -> set[str]:
    return {m for m in mods if m.split(".")[0] in HEAVY}


def test_help_imports_nothing_heavy() -> None:
    p, mods = imported_modules("-m", "convis_core", "--help")
    assert p.returncode == 0 and "explain" in p.stdout and "compare" in p.stdout
    assert "convis_core.cli" in mods and not heavy(mods), sorted(heavy(mods))
    p, mods = imported_modules("-m", "convis_core", "explain", "--help")
    listed = "".join(p.stdout.split())  # every method is listed by name
    assert p.returncode == 0 and "convis_grid" in listed and "patch_similarity" in listed and not heavy(mods)


def test_listing_methods_imports_no_method() -> None:
    code = "from convis_core.methods import REGISTRY; print(','.join(REGISTRY))"
    p, mods = imported_modules("-c", code)
    assert p.returncode == 0 and p.stdout.strip().split(",")[:2] == ["convis_grid", "convis_stochastic"]
    assert not heavy(mods), sorted(heavy(mods))


def test_bad_input_fails_before_the_model_loads(tmp_path) -> None:
    from PIL import Image

    src = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(src)
    for args, message in ((["explain", str(src), "cat.n.77", "--out", str(tmp_path / "m.npy")], "unknown WordNet"),
                          (["explain", str(tmp_path / "missing.png"), "cat.n.01", "--out", "m.npy"], "error:"),
                          (["explain", str(src), "cat.n.01", "--out", "m.npy", "--param", "stride"], "KEY=VALUE")):
        p, mods = imported_modules("-m", "convis_core", *args)
        lines = p.stderr.splitlines()
        assert p.returncode == 2 and message in [ln for ln in lines if not ln.startswith("import time:")][-1]
        assert "torch" not in mods and "open_clip" not in mods
        first = next(ln for ln in lines if not ln.startswith("import time:"))
        assert first.startswith("convis_grid map of"), first  # the command says what it does first

"""GPU correctness check of the engine: the same seeded model on CUDA and on the CPU.

Compares crop embeddings, per-box ranks and maps of a grid map computed on both devices, and the
trimmed vs padded text embeddings on CUDA. Prints the figures; exits non-zero on a mismatch
beyond float tolerance. ``python bench/gpu_check.py [--model ViT-B-32-quickgelu]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convis_core import ConVisEngine, GridParams, get_bank, load_image, load_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ViT-B-32-quickgelu")
    ap.add_argument("--bank", default="subtree=animal.n.01")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    cpu = load_model(a.model, "none", device="cpu", seed=0)
    gpu = load_model(a.model, "none", device="cuda", seed=0)
    bank = get_bank(a.bank)
    img = load_image(Image.fromarray(data.chelsea()))
    texts = bank.texts[:512]
    t_trim = gpu.encode_texts(texts, trim=True)
    t_pad = gpu.encode_texts(texts, trim=False)
    d_text = float((t_trim - t_pad).abs().max())
    t_cpu = cpu.encode_texts(texts)
    d_dev_text = float((t_trim - t_cpu).abs().max())
    rc, rg = (ConVisEngine(m, bank, disk_cache=False).grid(img, "cat.n.01", GridParams()) for m in (cpu, gpu))
    ec = ConVisEngine(cpu, bank, disk_cache=False)
    eg = ConVisEngine(gpu, bank, disk_cache=False)
    cc, cg = ec.crops(img, GridParams()), eg.crops(img, GridParams())
    d_crop = float(np.abs(cc.embeddings - cg.embeddings).max())
    same_rank = float((rc.extras["ranks"] == rg.extras["ranks"]).mean())
    rank_gap = int(np.abs(rc.extras["ranks"] - rg.extras["ranks"]).max())
    d_map = float(np.abs(rc.map - rg.map).max())
    corr = float(np.corrcoef(rc.map.ravel(), rg.map.ravel())[0, 1])
    print(f"text trimmed vs padded on CUDA: max |diff| {d_text:.2e}")
    print(f"text CUDA vs CPU: max |diff| {d_dev_text:.2e}")
    print(f"crop embeddings CUDA vs CPU: max |diff| {d_crop:.2e}")
    print(f"box ranks equal on {100 * same_rank:.1f}% of {len(rc.extras['ranks'])} boxes (max gap {rank_gap})")
    print(f"map CUDA vs CPU: max |diff| {d_map:.2e}, correlation {corr:.6f}")
    ok = d_text <= 1e-5 and d_crop <= 1e-3 and same_rank >= 0.95 and corr >= 0.999
    print("GPU CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

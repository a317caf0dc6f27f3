"""Time per map for every registered saliency method: one run, one image, one model.

    .venv/bin/python bench/bench_methods.py [--model ViT-B-32-quickgelu] [--pretrained none]
        [--device cpu] [--bank subtree=animal.n.01] [--methods all] [--threads N] [--json out.json]

For the dashboard's expected waiting times. Every method runs once with its default parameters
on the same image (skimage's cat photo) and concept (cat.n.01). The ConVis entries use a small
bank (``subtree=animal.n.01``, 4,017 texts) whose one-off text embedding is timed separately
(``bank_embedding_s``) and not counted in their map times; their first map on an image encodes
the crops (``cold``), a second concept on the same image reuses them (``warm``). Random weights
unless --pretrained is given: times do not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convis_core import REGISTRY, get_bank, load_image, load_model  # noqa: E402
from convis_core.bank import bank_embeddings  # noqa: E402
from convis_core.methods import ExplainContext, get_method  # noqa: E402
from convis_core.wordnet import nouns  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32-quickgelu")
    ap.add_argument("--pretrained", default="none")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bank", default="subtree=animal.n.01")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--json", default=".data/bench/methods.json")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads for this process (0: torch's default); 1 avoids spin-waiting on a busy box")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    model = load_model(a.model, a.pretrained, device=a.device)
    image = load_image(Image.fromarray(data.chelsea()))
    names = list(REGISTRY) if a.methods == "all" else [get_method(n).name for n in a.methods.split(",")]
    t0 = time.perf_counter()
    bank_embeddings(model, get_bank(a.bank))
    bank_s = time.perf_counter() - t0

    def ctx(concept: str) -> ExplainContext:
        return ExplainContext(model, image, nouns().synset(concept), bank_spec=a.bank)

    rows = []
    for name in names:
        m = REGISTRY[name]
        reason = m.unsupported_reason(model)
        if reason:
            rows.append({"method": name, "label": m.label, "seconds": None, "note": f"unsupported: {reason}"})
            continue
        t = time.perf_counter()
        first = m.explain(ctx("cat.n.01"))
        cold = time.perf_counter() - t
        row = {"method": name, "label": m.label, "seconds": cold, "note": ""}
        if m.uses_bank:
            t = time.perf_counter()
            m.explain(ctx("dog.n.01"))
            row["warm_seconds"] = time.perf_counter() - t
            cached = bool(first.meta.get("timings", {}).get("crops_cached"))
            row["crops_cached"] = cached
            first_note = "crops from the disk cache (not cold)" if cached else "cold (crops encoded)"
            row["note"] = f"{first_note}; another concept on the same image: {row['warm_seconds']:.2f} s"
        rows.append(row)
        print(f"  {name:20s} {cold:8.2f} s  {row['note']}", file=sys.stderr)

    print(f"\nTime per map, {a.model} ({'random weights' if model.random_weights else a.pretrained}) on "
          f"{model.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, one run")
    print(f"bank {a.bank} text embedding (one-off, cached): {bank_s:.1f} s")
    print(f"load average (1/5/15 min) at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
          " - other processes on the machine inflate these times\n")
    print(f"{'method':22s} {'seconds':>9s}  note")
    for r in rows:
        s = "      n/a" if r["seconds"] is None else f"{r['seconds']:9.2f}"
        print(f"{r['method']:22s} {s}  {r['note']}")
    out = {
        "model": a.model, "pretrained": a.pretrained, "random_weights": model.random_weights,
        "device": str(model.device), "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "torch": torch.__version__, "bank": a.bank,
        "bank_embedding_s": bank_s, "methods": rows, "load_average_end": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()

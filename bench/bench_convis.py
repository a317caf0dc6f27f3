"""ConVis engine benchmark: one run, one image, one model; prints ratios measured in this run.

    .venv/bin/python bench/bench_convis.py [--model ViT-B-32-quickgelu] [--device cpu|cuda]
        [--loop-sample 40] [--text-sample 2048] [--bank all] [--text-mode definitions|lemmas] [--json out.json]

Measures, on the same image and model (random weights unless --pretrained is given):
1. the reference-style loop: one CLIP forward per crop plus a full sort of the bank per crop,
   timed on a sample of crops and extrapolated to the reference's 1,800 crops;
2. pure batched encoding of the crops the engine needs (730 of the 1,800);
3. the engine's cold grid map (crop encoding + similarity index + map), ratio to 1 and 2;
4. maps for 10 further concepts on the same image with the bank (default: all 82,115 nouns);
5. bank text encoding: length-sorted, trimmed batches vs padded 77-token batches on a sample of
   noun definitions, the full definitions bank's build time extrapolated from it, and the build
   time of the bank actually used;
6. peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convis_core import ConVisEngine, GridParams, get_bank, load_image, load_model  # noqa: E402
from convis_core.bank import bank_embeddings, bank_is_cached  # noqa: E402
from convis_core.boxes import Canvas, grid_boxes  # noqa: E402

CONCEPTS = ["cat.n.01", "dog.n.01", "animal.n.01", "car.n.01", "tree.n.01", "person.n.01", "chair.n.01",
            "food.n.01", "building.n.01", "water.n.06", "plant.n.02"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32-quickgelu")
    ap.add_argument("--pretrained", default="none")
    ap.add_argument("--device", default=None)
    ap.add_argument("--loop-sample", type=int, default=40)
    ap.add_argument("--text-sample", type=int, default=2048)
    ap.add_argument("--bank", default="all", help="bank for the maps (all = 82,115 noun synsets; embedded once, cached)")
    ap.add_argument("--text-mode", default="definitions", choices=["definitions", "lemmas"],
                    help="lemmas: 147k short rows, about 3x cheaper to embed than the definitions")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    model = load_model(a.model, a.pretrained, device=a.device)
    dev = model.device
    out: dict = {"model": a.model, "pretrained": a.pretrained, "device": str(dev),
                 "torch_threads": torch.get_num_threads(),
                 "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}
    image = load_image(Image.fromarray(data.chelsea()))
    params = GridParams()
    bank = get_bank(a.bank, a.text_mode)
    print(f"model {a.model} ({a.pretrained}) on {dev}; bank {bank.spec.name}: {len(bank)} texts", flush=True)

    # --- 5. bank text encoding: trimmed + length-sorted vs padded, on the same sample --------------
    rng = np.random.default_rng(0)
    defs = get_bank("all")  # throughput is always measured on noun definitions
    sample = [defs.texts[i] for i in rng.choice(len(defs), size=min(a.text_sample, len(defs)), replace=False)]
    model.encode_texts(sample[:64])  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    # small batches so that a sample sorts into near-uniform lengths, as the whole bank does in 256s
    model.encode_texts(sample, batch_size=max(8, len(sample) // 32), trim=True)
    sync(dev)
    t_trim = time.perf_counter() - t0
    tokens = model.tokenize(sample)
    t0 = time.perf_counter()
    for i in range(0, len(sample), 256):  # open_clip's own encode_text: always 77 tokens
        with torch.no_grad():
            model.model.encode_text(tokens[i : i + 256].to(dev))
    sync(dev)
    t_pad = time.perf_counter() - t0
    out["text"] = {"sample": len(sample), "trimmed_texts_per_s": len(sample) / t_trim,
                   "padded_texts_per_s": len(sample) / t_pad, "speedup": t_pad / t_trim,
                   "full_noun_bank_estimate_s": 82115 / (len(sample) / t_trim)}
    print(f"bank text encoding: trimmed {len(sample) / t_trim:.0f}/s vs padded {len(sample) / t_pad:.0f}/s "
          f"-> {t_pad / t_trim:.2f}x; full 82,115-noun bank est. {82115 / (len(sample) / t_trim) / 60:.1f} min",
          flush=True)

    cached = bank_is_cached(model, bank)
    t0 = time.perf_counter()
    text = torch.from_numpy(bank_embeddings(model, bank, batch_size=256))
    t_bank = time.perf_counter() - t0
    out["bank"] = {"spec": bank.spec.name, "rows": len(bank), "build_s": None if cached else t_bank,
                   "was_cached": cached}
    print(f"bank {bank.spec.name}: {'loaded from cache' if cached else f'built in {t_bank:.1f} s'}", flush=True)

    # --- 1. reference-style loop on a sample of the 1,800 crops -------------------------------------
    canvas = Canvas.make(image.pixels, params.pad, params.seed)
    all_boxes = grid_boxes(canvas.size, params.box_sizes, params.stride)
    pick = all_boxes[rng.choice(len(all_boxes), size=a.loop_sample, replace=False)]
    leaves = torch.from_numpy(bank.leaves("cat.n.01"))
    tdev = text.to(dev)
    with torch.no_grad():
        x = model.preprocess(canvas.crop(pick[0]))[None].to(dev)
        model.model.encode_image(x)  # warm-up
        sync(dev)
        t0 = time.perf_counter()
        for box in pick:
            x = model.preprocess(canvas.crop(box))[None].to(dev)
            e = model.model.encode_image(x)[0]
            e = e / e.norm()
            sims = tdev @ e
            order = torch.argsort(sims, descending=True)  # the reference sorts the whole bank
            pos = torch.empty_like(order)
            pos[order] = torch.arange(len(order), device=dev)
            int(pos[leaves.to(dev)].min())
        sync(dev)
    per_crop_loop = (time.perf_counter() - t0) / a.loop_sample
    t_loop = per_crop_loop * len(all_boxes)
    out["loop"] = {"sample": a.loop_sample, "ms_per_crop": 1000 * per_crop_loop, "extrapolated_s": t_loop,
                   "crops": len(all_boxes)}
    print(f"reference loop: {1000 * per_crop_loop:.1f} ms/crop -> {t_loop:.1f} s for {len(all_boxes)} crops",
          flush=True)

    # --- 3. the engine's cold grid map -----------------------------------------------------------------
    eng = ConVisEngine(model, bank, batch_size=a.batch_size, disk_cache=False)
    eng._text = text.numpy()  # cold crops, not a cold bank: the bank was embedded (and timed) above
    sync(dev)
    t0 = time.perf_counter()
    r = eng.grid(image, CONCEPTS[0], params)
    sync(dev)
    t_cold = time.perf_counter() - t0
    out["cold_grid"] = {"s": t_cold, "crops": r.meta["crops"], "vs_loop": t_loop / t_cold}
    print(f"engine cold grid map: {t_cold:.2f} s -> {t_loop / t_cold:.1f}x faster than the loop", flush=True)

    # --- 4. ten further concepts on the same image ----------------------------------------------------
    times = []
    for c in CONCEPTS[1:]:
        t0 = time.perf_counter()
        eng.grid(image, c, params)
        times.append(time.perf_counter() - t0)
    out["further_concepts"] = {"n": len(times), "mean_ms": 1000 * float(np.mean(times)),
                               "max_ms": 1000 * float(np.max(times)), "bank_rows": len(bank)}
    print(f"10 further concepts, {len(bank)}-row bank: mean {1000 * np.mean(times):.1f} ms, "
          f"max {1000 * np.max(times):.1f} ms per map", flush=True)

    # peak memory of everything so far (model, bank, loop sample, the engine's crops, index and
    # maps); the pure-encoding comparison below holds all 730 preprocessed crops at once (~440 MB
    # for ViT-B/32), which the engine never does, so it is measured after this figure
    out["peak_rss_engine_mb"] = peak_rss_mb()
    print(f"peak RSS through the engine's map and 10 further concepts: {out['peak_rss_engine_mb']:.0f} MB",
          flush=True)

    # --- last: pure batched encoding of the same crops -----------------------------------------------
    boxes = grid_boxes(canvas.size, params.box_sizes, params.stride, pad=params.pad)
    crops = [canvas.crop(b) for b in boxes]
    pixels = model.preprocess_pil(crops)
    sync(dev)
    t0 = time.perf_counter()
    model.encode_images(pixels, batch_size=a.batch_size)
    sync(dev)
    t_pure = time.perf_counter() - t0
    out["pure_batched_encoding"] = {"crops": len(boxes), "s": t_pure, "ms_per_crop": 1000 * t_pure / len(boxes)}
    print(f"pure batched encoding of {len(boxes)} crops: {t_pure:.2f} s ({1000 * t_pure / len(boxes):.1f} ms/crop)",
          flush=True)
    del pixels

    out["cold_grid"]["vs_pure_encoding"] = t_cold / t_pure
    print(f"engine cold grid map vs pure batched encoding: {t_cold / t_pure:.2f}x", flush=True)
    del crops

    out["peak_rss_mb"] = peak_rss_mb()
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(f"peak RSS, whole bench: {out['peak_rss_mb']:.0f} MB" + (f", peak GPU {out['peak_gpu_mb']:.0f} MB" if dev.type == "cuda" else ""))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

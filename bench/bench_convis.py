"""ConVis engine benchmark: one run, one image, one model; prints ratios measured in this run.

    .venv/bin/python bench/bench_convis.py [--model ViT-B-32-quickgelu] [--device cpu|cuda]
        [--loop-sample 40] [--text-sample 2048] [--bank all] [--text-mode definitions|lemmas]
        [--no-app] [--json out.json]

Measures, on the same image and model (random weights unless --pretrained is given):
1. the reference-style loop: one CLIP forward per crop plus a full sort of the bank per crop,
   timed on a sample of crops and extrapolated to the reference's 1,800 crops;
2. pure batched encoding of the crops the engine needs (730 of the 1,800);
3. the cold grid map three ways: "before" (a frozen copy of the engine's pipeline before the
   progressive map: crops encoded in order, one product, a torch sort of every crop's
   similarities, a binary search per box), the engine's ``grid`` now (crops streamed, the next
   batch prepared on a worker thread, ranks counted as batches arrive), and its progressive map
   (the time to the coarse preview and to the final map); ratios to each other and to 1 and 2;
   the three final maps compared bit for bit;
4. the ranks of the compact index against the "before" index (float similarities and a binary
   search) for hundreds of concepts on the full bank: the number that differ (must be 0);
5. maps for 10 further concepts on the same image with the bank (default: all 82,115 nouns);
6. bank text encoding: length-sorted, trimmed batches vs padded 77-token batches on a sample of
   noun definitions, the full definitions bank's build time extrapolated from it, and the build
   time of the bank actually used;
7. an Explore session in a fresh process (the page's public API, ``explain``): four new images
   (no crops on disk), then 10 further concepts on the last, then back to each earlier image
   with another concept: server times and the process's peak RSS;
8. the command line: ``python -m convis_core --help`` and the time to the first line of
   ``explain``, ``concepts``, ``compare`` and ``models`` (median of 5 fresh processes each);
9. peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convis_core import ConVisEngine, GridParams, get_bank, load_image, load_model  # noqa: E402
from convis_core.bank import bank_embeddings, bank_is_cached  # noqa: E402
from convis_core.boxes import Canvas, accumulate, grid_boxes  # noqa: E402
from convis_core.convis import INDEX_BUDGET  # noqa: E402
from convis_core.result import normalise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CONCEPTS = ["cat.n.01", "dog.n.01", "animal.n.01", "car.n.01", "tree.n.01", "person.n.01", "chair.n.01",
            "food.n.01", "building.n.01", "water.n.06", "plant.n.02"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_peak_rss_mb() -> float:
    """This process's own peak RSS (``VmHWM``): unlike ``ru_maxrss``, not inherited from the
    parent a subprocess was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


class BeforeIndex:
    """The rank index as it was before the progressive map (for "before" in one run): every
    crop's float32 similarity with every bank row, by row and sorted per crop (8 bytes per row
    and crop), built from one product and a torch sort in slices of 32 crops."""

    def __init__(self, emb: torch.Tensor, text: torch.Tensor) -> None:
        self.by_row = text @ emb.to(text.dtype).T
        n_crops = self.by_row.shape[1]
        self.sorted = torch.empty((n_crops, self.by_row.shape[0]), dtype=self.by_row.dtype)
        for i in range(0, n_crops, 32):
            self.sorted[i : i + 32] = torch.sort(self.by_row[:, i : i + 32].T, dim=1).values

    @property
    def nbytes(self) -> int:
        return self.by_row.nbytes + self.sorted.nbytes

    def ranks(self, leaves: np.ndarray) -> np.ndarray:
        idx = torch.from_numpy(np.asarray(leaves, dtype=np.int64))
        best = None
        for i in range(0, len(idx), 8192):
            part = self.by_row.index_select(0, idx[i : i + 8192]).amax(dim=0)
            best = part if best is None else torch.maximum(best, part)
        pos = torch.searchsorted(self.sorted, best[:, None].contiguous(), right=True)
        return (self.sorted.shape[1] - pos[:, 0]).numpy().astype(np.int64)


def before_cold_grid(model, image, text: torch.Tensor, leaves: np.ndarray, params: GridParams,
                     batch_size: int) -> tuple[np.ndarray, BeforeIndex]:
    """The engine's cold grid map before the progressive map, step for step: crops cut,
    preprocessed and encoded batch after batch in box order, then :class:`BeforeIndex`, ranks,
    the box sum, the frame cut out, normalised and inverted."""
    canvas = Canvas.make(image.pixels, params.pad, params.seed)
    n = image.pixels.shape[0]
    boxes = grid_boxes(canvas.size, params.box_sizes, params.stride, pad=params.pad, frame=n)
    out = []
    for i in range(0, len(boxes), batch_size):
        pixels = model.preprocess_pil([canvas.crop(b) for b in boxes[i : i + batch_size]])
        out.append(model.encode_images(pixels, batch_size=batch_size).numpy())
    index = BeforeIndex(torch.from_numpy(np.concatenate(out)), text)
    ranks = index.ranks(leaves)
    acc = accumulate(boxes, ranks, canvas.size)
    m = normalise(acc[params.pad : params.pad + n, params.pad : params.pad + n])
    return (1.0 - m).astype(np.float32), index


def app_session(a: argparse.Namespace) -> dict:
    """An Explore session in this (fresh) process through the public API, as the page calls it;
    crop embeddings go to an empty folder, so each image is new."""
    import convis_core.convis as engine_module
    from convis_core import explain, load_model_cached

    scratch = Path(tempfile.mkdtemp(prefix="bench-crops-"))

    def crops_dir(*parts: str) -> Path:
        p = scratch.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    engine_module.cache_dir = crops_dir
    model = load_model_cached(a.model, a.pretrained, a.device)
    kw = {"bank": a.bank, "text_mode": a.text_mode}
    images = [load_image(Image.fromarray(getattr(data, n)())) for n in ("chelsea", "astronaut", "coffee", "rocket")]
    bank = get_bank(a.bank, a.text_mode)
    if a.synthetic_bank:  # what the engine's bank_embeddings returns for this model and bank
        from convis_core import bank as bank_module

        bank_module._MEMO[(model.key, bank.key)] = synthetic_bank(model, bank).numpy()
    bank_embeddings(model, bank)  # loaded once per process, before the first image
    out: dict = {"images": []}
    for img in images:
        t0 = time.perf_counter()
        r = explain(model, img, "dog.n.01", **kw)
        out["images"].append({"cold_s": time.perf_counter() - t0, "server_s": r.meta["timings"]["total_s"]})
    further = []
    for c in CONCEPTS[1:]:
        t0 = time.perf_counter()
        r = explain(model, images[-1], c, **kw)
        further.append({"wall_ms": 1000 * (time.perf_counter() - t0), "server_ms": 1000 * r.meta["timings"]["total_s"]})
    out["further_concepts"] = further
    back = []
    for img in images[:-1]:
        t0 = time.perf_counter()
        r = explain(model, img, "car.n.01", **kw)
        back.append({"wall_ms": 1000 * (time.perf_counter() - t0), "server_ms": 1000 * r.meta["timings"]["total_s"],
                     "crops_cached": r.meta["timings"]["crops_cached"]})
    out["back_to_earlier_image"] = back
    out["peak_rss_mb"] = process_peak_rss_mb()
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def synthetic_bank(model, bank) -> torch.Tensor:
    """Seeded random unit vectors, one per bank row, of the model's embedding width."""
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.normalize(torch.randn(len(bank), model.embed_dim, generator=g), dim=1)


def first_line_s(args: list[str]) -> float:
    """Seconds from starting ``python -m convis_core ARGS`` to its first line on stderr or stdout
    (the process is then stopped)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "convis_core", *args], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    p.stdout.readline()
    dt = time.perf_counter() - t0
    p.kill()
    p.wait()
    return dt


def cli_times(tmp: Path) -> dict:
    img = tmp / "cat.png"
    Image.fromarray(data.chelsea()).save(img)
    tiny = ["--model", "convis-tiny", "--bank", "subtree=animal.n.01"]
    cases = {
        "--help": ["--help"],
        "explain": ["explain", str(img), "cat.n.01", "--out", str(tmp / "m.npy"), *tiny],
        "concepts": ["concepts", str(img), *tiny],
        "compare": ["compare", str(img), "cat.n.01", "--out", str(tmp / "cmp"), *tiny],
        "models": ["models"],
    }
    return {k: statistics.median(first_line_s(v) for _ in range(5)) for k, v in cases.items()}


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
    ap.add_argument("--rank-concepts", type=int, default=300, help="random concepts whose ranks are compared")
    ap.add_argument("--no-app", action="store_true", help="skip the Explore session in a fresh process")
    ap.add_argument("--synthetic-bank", action="store_true",
                    help="the bank's rows as seeded random unit vectors of the model's width instead of its "
                         "text embeddings (same shape: index, rank and memory figures; for a machine where the "
                         "bank is not embedded yet)")
    ap.add_argument("--app-session", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.app_session:
        print(json.dumps(app_session(a)))
        return

    model = load_model(a.model, a.pretrained, device=a.device)
    dev = model.device
    out: dict = {"model": a.model, "pretrained": a.pretrained, "device": str(dev),
                 "torch_threads": torch.get_num_threads(),
                 "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}
    image = load_image(Image.fromarray(data.chelsea()))
    params = GridParams()
    bank = get_bank(a.bank, a.text_mode)
    print(f"model {a.model} ({a.pretrained}) on {dev}; bank {bank.spec.name}: {len(bank)} texts", flush=True)

    # --- 6. bank text encoding: trimmed + length-sorted vs padded, on the same sample --------------
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

    if a.synthetic_bank:
        text = synthetic_bank(model, bank)
        out["bank"] = {"spec": bank.spec.name, "rows": len(bank), "synthetic": True}
        print(f"bank {bank.spec.name}: SYNTHETIC rows (seeded random unit vectors, {tuple(text.shape)})", flush=True)
    else:
        cached = bank_is_cached(model, bank)
        t0 = time.perf_counter()
        text = torch.from_numpy(bank_embeddings(model, bank, batch_size=256))
        t_bank = time.perf_counter() - t0
        out["bank"] = {"spec": bank.spec.name, "rows": len(bank), "build_s": None if cached else t_bank,
                       "was_cached": cached, "synthetic": False}
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

    # --- 3. the cold grid map: before, now, progressive --------------------------------------------
    leaves = bank.leaves(CONCEPTS[0])
    sync(dev)
    t0 = time.perf_counter()
    before_map, before_index = before_cold_grid(model, image, text, leaves, params, a.batch_size)
    t_before = time.perf_counter() - t0
    print(f"cold grid map before this change: {t_before:.2f} s", flush=True)

    eng = ConVisEngine(model, bank, batch_size=a.batch_size, disk_cache=False)
    eng._text = text.numpy()  # cold crops, not a cold bank: the bank was embedded (and timed) above
    sync(dev)
    t0 = time.perf_counter()
    r = eng.grid(image, CONCEPTS[0], params)
    sync(dev)
    t_cold = time.perf_counter() - t0
    print(f"engine cold grid map now: {t_cold:.2f} s ({t_cold / t_before:.3f}x before); "
          f"{t_loop / t_cold:.1f}x faster than the loop", flush=True)

    prog = ConVisEngine(model, bank, batch_size=a.batch_size, disk_cache=False, _text=text.numpy())
    stages = []
    t0 = time.perf_counter()
    for res in prog.grid_progressive(image, CONCEPTS[0], params):
        sync(dev)
        stages.append((res, time.perf_counter() - t0))
    (coarse, t_first), (final, t_final) = stages[0], stages[-1]
    assert [x.meta["stage"] for x, _ in stages] == ["coarse", "final"]
    identical = bool(np.array_equal(final.map, r.map) and np.array_equal(r.map, before_map))
    out["cold_grid"] = {"s": t_cold, "crops": r.meta["crops"], "vs_loop": t_loop / t_cold,
                        "before_s": t_before, "vs_before": t_cold / t_before,
                        "final_maps_identical_before_now_progressive": identical}
    out["progressive"] = {"first_map_s": t_first, "first_map_crops": coarse.meta["crops"],
                          "first_vs_cold_before": t_first / t_before, "first_vs_cold_now": t_first / t_cold,
                          "final_s": t_final, "final_vs_cold_before": t_final / t_before,
                          "coarse_label": coarse.meta["stage_label"]}
    print(f"progressive: first map ({coarse.meta['crops']} crops) at {t_first:.2f} s = "
          f"{100 * t_first / t_before:.1f} % of the cold time before ({100 * t_first / t_cold:.1f} % of now); "
          f"final at {t_final:.2f} s = {t_final / t_before:.3f}x before; final maps before/now/progressive "
          f"identical: {identical}", flush=True)

    # --- 4. ranks of the compact index vs the float index, full bank --------------------------------
    index = eng.rank_index(image, params)
    pick = np.random.default_rng(1).choice(len(bank.graph), size=a.rank_concepts, replace=False)
    names = list(dict.fromkeys(CONCEPTS + ["entity.n.01"] + [bank.graph.names[i] for i in pick]))
    checked, differ = 0, 0
    for c in names:
        try:
            lv = bank.leaves(c)
        except Exception:  # a concept without leaves in this bank
            continue
        checked += 1
        differ += int(not np.array_equal(index.ranks(lv), before_index.ranks(lv)))
    out["rank_index"] = {"concepts_checked": checked, "concepts_with_any_rank_different": differ,
                         "bytes": index.nbytes, "bytes_before": before_index.nbytes,
                         "images_in_budget": int(INDEX_BUDGET // index.nbytes),
                         "images_in_budget_before": int(INDEX_BUDGET // before_index.nbytes)}
    print(f"rank index: {index.nbytes / 2**20:.0f} MB per image (before {before_index.nbytes / 2**20:.0f} MB): "
          f"{INDEX_BUDGET // index.nbytes} images in the {INDEX_BUDGET // 2**20} MB budget "
          f"(before {INDEX_BUDGET // before_index.nbytes}); {checked} concepts' ranks compared on all "
          f"{r.meta['crops']} crops, {differ} differ", flush=True)
    del before_index

    # --- 5. ten further concepts on the same image ----------------------------------------------------
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

    # --- 2 (last): pure batched encoding of the same crops -----------------------------------------------
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
    out["cold_grid"]["before_vs_pure_encoding"] = t_before / t_pure
    out["progressive"]["final_vs_pure_encoding"] = t_final / t_pure
    print(f"cold grid map vs pure batched encoding: now {t_cold / t_pure:.2f}x, progressive final "
          f"{t_final / t_pure:.2f}x, before {t_before / t_pure:.2f}x", flush=True)
    del crops

    out["peak_rss_mb"] = peak_rss_mb()
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(f"peak RSS, whole bench: {out['peak_rss_mb']:.0f} MB" + (f", peak GPU {out['peak_gpu_mb']:.0f} MB" if dev.type == "cuda" else ""))

    # --- 7. an Explore session in a fresh process ------------------------------------------------------
    if not a.no_app:
        cmd = [sys.executable, __file__, "--app-session", "--model", a.model, "--pretrained", a.pretrained,
               "--bank", a.bank, "--text-mode", a.text_mode] + (["--device", a.device] if a.device else []) \
            + (["--synthetic-bank"] if a.synthetic_bank else [])
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "CONVIS_DEMO": "0"})
        if p.returncode != 0:
            raise SystemExit(f"the Explore session failed: {p.stderr[-2000:]}")
        app = json.loads(p.stdout.strip().splitlines()[-1])
        out["app_session"] = app
        f_ms = [x["server_ms"] for x in app["further_concepts"]]
        b_ms = [x["wall_ms"] for x in app["back_to_earlier_image"]]
        colds = ", ".join(f"{x['cold_s']:.1f}" for x in app["images"])
        print(f"Explore session (fresh process, 4 new images): cold maps {colds} s; another concept on the 4th image: "
              f"server mean {np.mean(f_ms):.1f} ms, max {np.max(f_ms):.1f} ms; back to each earlier image: "
              f"max {np.max(b_ms):.0f} ms; peak RSS {app['peak_rss_mb']:.0f} MB", flush=True)

    # --- 8. the command line ----------------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        out["cli_first_line_s"] = cli_times(Path(tmp))
    print("command line, median of 5 fresh processes, seconds to the first line: "
          + ", ".join(f"{k} {v:.2f}" for k, v in out["cli_first_line_s"].items()), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

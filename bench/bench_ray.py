"""Precompute throughput, local executor vs Ray, measured in one run on this machine.

    .venv/bin/python bench/bench_ray.py [--images 12] [--workers N] [--device cpu|cuda]
        [--model shapes-world --pretrained bundled] [--json bench/results/bench_ray_cpu.json]

The same engine build (Shapes-world held-out scenes, the example study's settings: bank
``subtree=plane_figure.n.01``, white-fade PNGs, ConVis grid at stride 32, Grad-CAM, patch
similarity, centre bias, 4 concepts) runs twice from empty stimulus folders and empty crop
caches (a data folder of its own for each): first with the local executor in this process, then on
a local Ray started here (``--workers`` actors, default one per CPU core, or one per GPU with
``--device cuda``). Every process computes with ``--threads`` torch threads (default 1, as each
1-CPU Ray actor does: the same kernels, so the manifests must be equal byte for byte; with more
threads the float sums differ in the last bits). The bank is embedded once before each run and
not counted. Printed: wall time
and images/s of each, their ratio, the Ray pool's start-up (worker processes importing torch and
loading the model) measured separately, and the time per image by method (sum over its concepts,
first concept included) as the workers measured it. The two manifests are compared (they must be
equal byte for byte). Timings on a shared machine vary: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["convis", "gradcam", "patch_similarity", "centre"]
CONCEPTS = ["circle.n.01", "square.n.01", "triangle.n.01", "hexagon.n.01"]
BANK = "subtree=plane_figure.n.01"


def fresh_data_dir(path: Path) -> Path:
    (path / "cache").mkdir(parents=True)
    (path / "nltk_data").symlink_to(ROOT / ".data" / "nltk_data")
    (path / "cache" / "wordnet").symlink_to(ROOT / ".data" / "cache" / "wordnet")
    return path


def run_build(build: Any, executor: Any) -> tuple[float, dict[str, list[float]]]:
    """Wall seconds of the build and, per method, the seconds per image (maps summed per image)."""
    from study.stimuli import BuildObserver

    per: dict[tuple[str, str], float] = {}

    class Watch(BuildObserver):
        def map_done(self, done: int, total: int, event: Any) -> None:
            per[(event.image, event.method)] = per.get((event.image, event.method), 0.0) + event.seconds

    t0 = time.perf_counter()
    build.run(Watch(), executor=executor)
    wall = time.perf_counter() - t0
    by_method: dict[str, list[float]] = {}
    for (_, method), s in per.items():
        by_method.setdefault(method, []).append(s)
    return wall, by_method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--workers", type=int, default=0, help="Ray actors (0: one per CPU core, or per GPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="shapes-world")
    ap.add_argument("--pretrained", default="bundled")
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the local run (Ray CPU actors: 1 each)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "bench_ray_cpu.json"))
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ["CONVIS_DATA_DIR"] = str(fresh_data_dir(tmp / "data-local"))
    if a.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""   # the workers too: the same kernels as the local run
    import ray
    import torch

    from convis_core import bank_embeddings, get_bank, load_model
    from convis_core.executors import LocalExecutor, ModelSetup, RayExecutor
    from convis_core.shapes import TEST_ID_START, render_scene
    from study.stimuli import MANIFEST, EngineBuild

    images = {f"scene{TEST_ID_START + i}": {"image": render_scene(TEST_ID_START + i, n_objects=2).image}
              for i in range(a.images)}
    torch.set_num_threads(a.threads)
    model = load_model(a.model, a.pretrained, device=a.device)
    t0 = time.perf_counter()
    bank_embeddings(model, get_bank(BANK))
    bank_s = time.perf_counter() - t0

    def build(folder: Path) -> EngineBuild:
        return EngineBuild(folder, images, CONCEPTS, METHODS, a.model, a.pretrained, bank=BANK,
                           params={"convis": {"stride": a.stride}}, model=model)

    local_wall, local_by = run_build(build(tmp / "local"), LocalExecutor())

    os.environ["CONVIS_DATA_DIR"] = str(fresh_data_dir(tmp / "data-ray"))   # empty caches for the workers too
    from convis_core import bank as bankmod

    bankmod._MEMO.clear()
    bank_embeddings(model, get_bank(BANK))
    cpus = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if a.device == "cuda" else 0
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=512 * 1024 * 1024)
    ray_init_s = time.perf_counter() - t0
    ex = RayExecutor(workers=a.workers or None)
    t0 = time.perf_counter()    # the pool's start-up: worker processes, imports, model load
    ex.start_workers(ModelSetup.of(model).with_bank(model, get_bank(BANK), bank_embeddings(model, get_bank(BANK))))
    pool_s = time.perf_counter() - t0
    ray_wall, ray_by = run_build(build(tmp / "ray"), ex)
    ray.shutdown()
    same = (tmp / "ray" / MANIFEST).read_bytes() == (tmp / "local" / MANIFEST).read_bytes()

    n = a.images
    res: dict[str, Any] = {
        "what": "engine stimulus build, local executor vs Ray on one machine, one run",
        "machine": {"cpu_count": cpus, "gpus": gpus, "platform": platform.platform(),
                    "loadavg_at_end": os.getloadavg()},
        "setup": {"model": a.model, "pretrained": a.pretrained, "device": a.device, "images": n,
                  "concepts": CONCEPTS, "methods": METHODS, "bank": BANK, "convis_stride": a.stride,
                  "ray_workers": ex.workers, "local_torch_threads": a.threads},
        "bank_embedding_s": bank_s, "ray_init_s": ray_init_s, "ray_pool_start_s": pool_s,
        "local": {"wall_s": local_wall, "images_per_s": n / local_wall},
        "ray": {"wall_s": ray_wall, "images_per_s": n / ray_wall,
                "wall_with_pool_start_s": ray_wall + pool_s},
        "ray_vs_local_throughput": local_wall / ray_wall,
        "ray_vs_local_with_pool_start": local_wall / (ray_wall + pool_s),
        "manifests_equal": same,
        "seconds_per_image_by_method": {
            m: {"local_mean": statistics.mean(local_by[m]), "ray_mean": statistics.mean(ray_by[m]),
                "ray_vs_local": statistics.mean(ray_by[m]) / statistics.mean(local_by[m])}
            for m in METHODS},
    }
    print(f"{n} images x {len(CONCEPTS)} concepts x {len(METHODS)} methods ({a.model}, {a.device}); "
          f"bank embedded once before: {bank_s:.1f} s")
    print(f"local executor : {local_wall:7.1f} s  {n / local_wall:.3f} images/s "
          f"(torch threads {a.threads})")
    print(f"Ray, {ex.workers} workers: {ray_wall:7.1f} s  {n / ray_wall:.3f} images/s; pool start-up {pool_s:.1f} s "
          f"(+ ray.init {ray_init_s:.1f} s)")
    print(f"Ray / local throughput: {local_wall / ray_wall:.2f}x "
          f"({local_wall / (ray_wall + pool_s):.2f}x counting the pool start-up); manifests equal: {same}")
    print("seconds per image by method (all concepts of an image), local vs on a Ray worker:")
    for m, v in res["seconds_per_image_by_method"].items():
        print(f"  {m:<18} local {v['local_mean']:7.3f}  ray {v['ray_mean']:7.3f}  ({v['ray_vs_local']:.2f}x)")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2))
    print(f"wrote {a.json}")
    if not same:
        sys.exit("the Ray build's manifest differs from the local one")


if __name__ == "__main__":
    main()

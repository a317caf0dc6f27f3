"""Evaluate a model on held-out Shapes-world scenes and write a report (markdown + JSON).

Everything goes through the engine's public API (``load_model``, ``explain``, ``concept_scores``,
the full 82,115-noun bank, ``convis_core.metrics``), so the report checks the product, not a copy:

- zero-shot accuracy over the 15 concepts on single-object scenes (definitions; lemmas too);
- ConVis ``grid`` pointing game on two-object scenes with the full noun bank (a hit: every pixel
  of the map's maximum lies in the box of an object whose synset is in the concept's subtree);
- hypernyms: the ``polygon.n.01`` map on scenes with a circle and polygons (mean map inside each
  object's mask), likewise ``conic_section.n.01`` and ``digit.n.01``;
- absent concepts: the strength of the map's peak (mean rank of the boxes over its best pixel)
  for a concept absent from the scene vs the present one;
- MaxBoxAcc (thresholds 0.00..0.99, IoU > 0.5, largest 4-connected component) on a CUB-style set;
- OOD AUROC of the paper's three scores (naive definition, subtree definitions, subtree lemmas),
  in = scenes under ``polygon.n.01``, out = scenes under ``digit.n.01``;
- every registered saliency method (and the random / centre baselines) on the pointing scenes.

``python -m convis_core.shapes.evaluate --out convis_core/shapes/report`` regenerates it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import hierarchy as wnh
from .datasets import CUB_ID_START, IMAGENET_ID_START, concepts_under
from .scenes import ALL_CONCEPTS, SHAPE_CONCEPTS, TEST_ID_START, render_scene

#: Nouns no Shapes-world scene shows, for the "unrelated concept" check.
UNRELATED = ("dog.n.01", "car.n.01", "tree.n.01", "house.n.01", "bird.n.01")
ZS_START = TEST_ID_START
POINT_START = TEST_ID_START + 100_000
HYPER_START = TEST_ID_START + 150_000
TARGETS = {"zero_shot": 0.90, "pointing_game": 0.85}


def _truth_boxes(scene: Any, concept: str) -> list[tuple[int, int, int, int]]:
    """Boxes of the scene's objects that are ``concept`` or below it in WordNet."""
    return [o.box for o in scene.objects if wnh.is_under(o.synset, concept)]


def zero_shot(model: Any, n: int) -> dict[str, Any]:
    """Accuracy over the 15 concepts on ``n`` held-out single-object scenes (whole image)."""
    from convis_core import concept_scores

    correct, per_class = 0, {c: [0, 0] for c in ALL_CONCEPTS}
    for i in range(n):
        scene = render_scene(ZS_START + i, n_objects=1)
        scores = concept_scores(model, scene.image, list(ALL_CONCEPTS))
        pred = max(scores, key=scores.get)
        truth = scene.synsets[0]
        correct += pred == truth
        per_class[truth][0] += pred == truth
        per_class[truth][1] += 1
    return {"n": n, "accuracy": correct / n, "chance": 1 / len(ALL_CONCEPTS),
            "per_class": {c: (a / b if b else None) for c, (a, b) in per_class.items()}}


def pointing_cases(n: int) -> list[tuple[Any, str]]:
    """The ``n`` held-out two-object scenes of the pointing game and the concept named in each."""
    rng = np.random.default_rng(0)
    cases = []
    for i in range(n):
        scene = render_scene(POINT_START + i, n_objects=2)
        cases.append((scene, scene.synsets[int(rng.integers(2))]))
    return cases


def peak_mean_rank(res: Any) -> float:
    """The map's strongest pixel in raw terms: the mean rank (0 = best of the whole bank) of the
    boxes covering the frame pixel whose boxes rank the concept best. A normalised map always
    spans [0, 1]; this says whether its peak means anything."""
    from convis_core.boxes import accumulate

    boxes, ranks = res.extras["boxes"], res.extras["ranks"]
    pad, n = int(res.meta["params"]["pad"]), res.map.shape[0]
    size = n + 2 * pad
    total = accumulate(boxes, ranks, size)[pad : pad + n, pad : pad + n]
    count = accumulate(boxes, np.ones(len(boxes)), size)[pad : pad + n, pad : pad + n]
    return float(np.min(total / np.maximum(count, 1)))


def pointing(model: Any, n: int, methods: Sequence[str], method_n: int) -> dict[str, Any]:
    """Pointing game of ConVis grid (full bank) and of every other method on two-object scenes."""
    from convis_core import explain
    from convis_core.metrics import pointing_game

    out: dict[str, Any] = {"n": n, "methods": {}}
    hits, present_best, absent_best, absent_names, unrelated_best = [], [], [], [], []
    rng = np.random.default_rng(2)
    cases = pointing_cases(max(n, method_n))
    for scene, target in cases[:n]:
        res = explain(model, scene.image, target, method="convis_grid", bank="all")
        hits.append(pointing_game(res.map, _truth_boxes(scene, target)))
        present_best.append(peak_mean_rank(res))
        absent = [c for c in ALL_CONCEPTS if not any(wnh.is_under(s, c) or wnh.is_under(c, s) for s in scene.synsets)]
        a = absent[int(rng.integers(len(absent)))]
        res_a = explain(model, scene.image, a, method="convis_grid", bank="all")
        absent_best.append(peak_mean_rank(res_a))
        absent_names.append(a)
        u = UNRELATED[len(unrelated_best) % len(UNRELATED)]
        unrelated_best.append(peak_mean_rank(explain(model, scene.image, u, method="convis_grid", bank="all")))
    out["convis_grid_accuracy"] = float(np.mean(hits))
    out["absent_concept"] = {
        "median_peak_mean_rank_present": float(np.median(present_best)),
        "median_peak_mean_rank_absent": float(np.median(absent_best)),
        "fraction_absent_peak_weaker_than_present": float(np.mean(np.array(absent_best) > np.array(present_best))),
        "absent_concepts": absent_names,
        "median_peak_mean_rank_unrelated": float(np.median(unrelated_best)),
        "unrelated_concepts": list(UNRELATED),
        "bank_size": 82115,
    }
    out["methods"]["convis_grid"] = (
        {"supported": True, "n": min(n, method_n), "accuracy": float(np.mean(hits[:method_n]))} if method_n
        else {"supported": False, "reason": "not run (--method-n 0)"})
    for name in methods:
        out["methods"][name] = _method_pointing(model, name, cases[:method_n])
    return out


def _method_pointing(model: Any, name: str, cases: Sequence[tuple[Any, str]]) -> dict[str, Any]:
    from convis_core import explain, get_method
    from convis_core.errors import ConvisError
    from convis_core.metrics import pointing_game

    if not cases:
        return {"supported": False, "reason": "not run (--method-n 0)"}
    reason = get_method(name).unsupported_reason(model)
    if reason:
        return {"supported": False, "reason": reason}
    hits, t0 = [], time.time()
    try:
        for scene, target in cases:
            res = explain(model, scene.image, target, method=name, bank="all")
            hits.append(pointing_game(res.map, _truth_boxes(scene, target)))
    except (ConvisError, RuntimeError, ValueError) as e:
        return {"supported": False, "reason": f"{type(e).__name__}: {e}"}
    return {"supported": True, "n": len(cases), "accuracy": float(np.mean(hits)),
            "seconds": round(time.time() - t0, 1)}


def hypernyms(model: Any, n: int) -> dict[str, Any]:
    """Mean map value inside each object's mask for hypernym concepts (polygon, conic, digit)."""
    from convis_core import explain

    polys = [c for c in SHAPE_CONCEPTS if wnh.is_under(c, "polygon.n.01")]
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        two = [polys[j] for j in rng.choice(len(polys), 2, replace=False)]
        digit = ALL_CONCEPTS[len(SHAPE_CONCEPTS) + int(rng.integers(9))]
        scene = render_scene(HYPER_START + i, concepts=["circle.n.01", *two, digit])
        row: dict[str, Any] = {"scene_id": scene.scene_id, "objects": scene.synsets}
        for concept in ("polygon.n.01", "conic_section.n.01", "digit.n.01"):
            m = explain(model, scene.image, concept, method="convis_grid", bank="all").map
            inside = [float(m[mask >= 0.5].mean()) for mask in scene.masks]
            covered = [wnh.is_under(s, concept) for s in scene.synsets]
            lo_in = min(v for v, c in zip(inside, covered, strict=True) if c)
            hi_out = max(v for v, c in zip(inside, covered, strict=True) if not c)
            row[concept] = {"mean_inside": inside, "separates": lo_in > hi_out}
        rows.append(row)
    return {"n": n, "scenes": rows, **{
        f"{c}_separates": float(np.mean([r[c]["separates"] for r in rows]))
        for c in ("polygon.n.01", "conic_section.n.01", "digit.n.01")}}


def maxboxacc(model: Any, n: int) -> dict[str, Any]:
    """MaxBoxAcc of ConVis grid maps on single-object CUB-style scenes (the concept named)."""
    from convis_core import explain
    from convis_core.metrics import max_box_acc

    maps, boxes = [], []
    for i in range(n):
        concept = ALL_CONCEPTS[i % len(ALL_CONCEPTS)]
        scene = render_scene(CUB_ID_START + i, concepts=[concept])
        maps.append(explain(model, scene.image, concept, method="convis_grid", bank="all").map)
        boxes.append(tuple(float(v) for v in scene.objects[0].box))
    r = max_box_acc(maps, boxes)
    return {"n": n, "max_box_acc": r.value, "best_threshold": r.best_threshold, "iou_threshold": 0.5}


def ood(model: Any, per_class: int) -> dict[str, Any]:
    """AUROC of the naive, hierarchy and lemma scores (in: polygon.n.01, out: digit.n.01)."""
    from sklearn.metrics import roc_auc_score

    from convis_core import image_embedding

    root = "polygon.n.01"
    subtree = sorted(wnh.subtree(root))
    texts = {
        "naive": [wnh.definition(root)],
        "hierarchy": [wnh.definition(s) for s in subtree],
        "lemmas": sorted({t for s in subtree for t in wnh.lemma_texts(s)}),
    }
    emb = {k: model.encode_texts(v).numpy() for k, v in texts.items()}
    labels, scores = [], {k: [] for k in texts}
    sid = IMAGENET_ID_START
    for label, concepts in ((1, concepts_under(root)), (0, concepts_under("digit.n.01"))):
        for c in concepts:
            for _ in range(per_class):
                e = image_embedding(model, render_scene(sid, concepts=[c]).image).numpy()
                sid += 1
                labels.append(label)
                for k in texts:
                    scores[k].append(float((emb[k] @ e).max()))
    return {"in": root, "out": "digit.n.01", "n_in": labels.count(1), "n_out": labels.count(0),
            "auroc": {k: float(roc_auc_score(labels, v)) for k, v in scores.items()},
            "n_texts": {k: len(v) for k, v in texts.items()}}


def evaluate(model_name: str = "shapes-world", pretrained: str = "bundled", n_zero_shot: int = 300,
             n_pointing: int = 100, n_hypernym: int = 10, n_cub: int = 60, ood_per_class: int = 20,
             method_n: int = 20) -> dict[str, Any]:
    """Run every check; returns the JSON-able report."""
    from convis_core import REGISTRY, load_model

    t0 = time.time()
    model = load_model(model_name, pretrained, device="cpu")
    methods = [m for m in REGISTRY if m != "convis_grid"]
    report: dict[str, Any] = {"model": model.identity, "targets": TARGETS}
    steps = [("zero_shot", lambda: zero_shot(model, n_zero_shot)),
             ("pointing_game", lambda: pointing(model, n_pointing, methods, method_n)),
             ("hypernyms", lambda: hypernyms(model, n_hypernym)),
             ("cub_style", lambda: maxboxacc(model, n_cub)),
             ("ood", lambda: ood(model, ood_per_class))]
    for key, run in steps:
        t = time.time()
        report[key] = run()
        print(f"[shapes-eval] {key} done in {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    report["seconds"] = round(time.time() - t0, 1)
    return report


def to_markdown(r: dict[str, Any]) -> str:
    """The report as markdown."""
    zs, pg = r["zero_shot"], r["pointing_game"]
    ab = pg["absent_concept"]
    lines = [
        "# Shapes world: evaluation of the bundled toy model",
        "",
        f"Model: `{r['model']['model']}` (`{r['model']['pretrained']}`, weights `{r['model']['weights_id']}`). "
        "A toy CLIP trained on synthetic scenes; every figure below is on held-out scenes "
        f"(ids >= {TEST_ID_START}, held-out digit samples). Regenerate: "
        "`python -m convis_core.shapes.evaluate --out convis_core/shapes/report`.",
        "",
        "| check | figure | target |",
        "|---|---|---|",
        f"| zero-shot, 15 concepts, {zs['n']} single-object scenes | {zs['accuracy']:.1%} (chance {zs['chance']:.1%}) | >= 90 % |",
        f"| ConVis grid pointing game, full 82,115-noun bank, {pg['n']} two-object scenes | {pg['convis_grid_accuracy']:.1%} | >= 85 % |",
        f"| hypernym polygon.n.01 covers polygons, not circle ({r['hypernyms']['n']} scenes) | {r['hypernyms']['polygon.n.01_separates']:.0%} | |",
        f"| hypernym conic_section.n.01 covers circle (and ellipses), not others | {r['hypernyms']['conic_section.n.01_separates']:.0%} | |",
        f"| hypernym digit.n.01 covers the digit, not the figures | {r['hypernyms']['digit.n.01_separates']:.0%} | |",
        f"| absent concept (one per scene): the map's peak, as the mean rank of the boxes over its best pixel, median over scenes (absent vs present; bank 82,115) | {ab['median_peak_mean_rank_absent']:.0f} vs {ab['median_peak_mean_rank_present']:.1f}; absent weaker in {ab['fraction_absent_peak_weaker_than_present']:.0%} of scenes | absent >> present |",
        f"| unrelated noun ({', '.join(u.split('.')[0] for u in ab['unrelated_concepts'])}, one per scene): the same peak figure | {ab['median_peak_mean_rank_unrelated']:.0f} | low |",
        f"| MaxBoxAcc, CUB-style, {r['cub_style']['n']} images | {r['cub_style']['max_box_acc']:.1%} (t = {r['cub_style']['best_threshold']:.2f}) | |",
    ]
    for k, v in r["ood"]["auroc"].items():
        lines.append(f"| OOD AUROC ({k}), polygons vs digits | {v:.3f} | |")
    ms = pg["methods"]
    lines += ["", "## Every registered method, pointing game on the same scenes", ""]
    if all(ms.get(k, {}).get("supported") for k in ("convis_grid", "random", "centre")):
        c, rnd, ctr = (ms[k]["accuracy"] for k in ("convis_grid", "random", "centre"))
        lines += [f"On the same {ms['convis_grid']['n']} scenes ConVis grid points into the named object "
                  f"{c:.0%} of the time, the random map {rnd:.0%} and the centre prior {ctr:.0%}: a margin "
                  f"of {100 * (c - rnd):+.0f} and {100 * (c - ctr):+.0f} points.", ""]
    lines += ["| method | pointing game |", "|---|---|"]
    for name, m in ms.items():
        fig = (f"{m['accuracy']:.1%} ({m['n']} scenes)" if m.get("supported")
               else f"not applicable: {m['reason']}")
        lines.append(f"| {name} | {fig} |")
    lines += ["", "Per-class zero-shot accuracy: " + ", ".join(
        f"{c.split('.')[0]} {v:.0%}" for c, v in zs["per_class"].items() if v is not None), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate a model on held-out Shapes-world scenes.")
    p.add_argument("--out", type=Path, default=Path("convis_core/shapes/report"))
    p.add_argument("--model", default="shapes-world")
    p.add_argument("--pretrained", default="bundled")
    p.add_argument("--n-zero-shot", type=int, default=300)
    p.add_argument("--n-pointing", type=int, default=100)
    p.add_argument("--n-hypernym", type=int, default=10)
    p.add_argument("--n-cub", type=int, default=60)
    p.add_argument("--ood-per-class", type=int, default=20)
    p.add_argument("--method-n", type=int, default=20)
    a = p.parse_args(argv)
    r = evaluate(a.model, a.pretrained, a.n_zero_shot, a.n_pointing, a.n_hypernym, a.n_cub, a.ood_per_class, a.method_n)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "report.json").write_text(json.dumps(r, indent=1, default=str))
    (a.out / "report.md").write_text(to_markdown(r))
    print(to_markdown(r))


if __name__ == "__main__":
    main()

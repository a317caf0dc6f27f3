"""``python -m convis_core compare IMAGE SYNSET --methods all --out DIR``.

Runs every requested method on one image and concept with the same model and target, and writes:

- ``DIR/maps/<method>.npy`` + ``.json`` (:meth:`SaliencyResult.save`);
- ``DIR/compare.png``: one side-by-side grid through the one renderer;
- ``DIR/compare.json``: per method its seconds, deletion/insertion AUCs (Petsiuk et al. 2018) and,
  with ``--sanity K``, the model-randomisation check (Adebayo et al. 2018) over the top ``K``
  layer groups, with the methods whose maps do not change flagged.

With ``--methods all``, methods that do not support the model are listed under ``skipped`` with
the reason; naming such a method explicitly is an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .cli_common import add_model_args, model_from_args, parse_params, say
from .errors import ConvisError


def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to the CLI's subparsers."""
    from .render import STYLES

    c = subparsers.add_parser("compare", help="every method's map of one concept on one image, side by side, with metrics")
    c.add_argument("image")
    c.add_argument("synset", help="WordNet noun synset, e.g. dog.n.01")
    c.add_argument("--methods", default="all", help="'all' or comma-separated registry names")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--style", default="whitefade", choices=list(STYLES))
    c.add_argument("--prompt", help='target text instead of the definition, e.g. "a photo of a {lemma}"')
    c.add_argument("--steps", type=int, default=32, help="deletion/insertion curve steps (0: skip the curves)")
    c.add_argument("--sanity", type=int, default=0, metavar="K",
                   help="model-randomisation check over the top K layer groups (0: skip, -1: all)")
    c.add_argument("--param", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a method parameter (JSON value), repeatable, e.g. rise.n_masks=500")
    add_model_args(c)
    c.set_defaults(func=run_compare)
    return c


def run_compare(args: argparse.Namespace) -> int:
    """Run the comparison; returns the exit status (0)."""
    from .images import load_image
    from .methods import REGISTRY, get_method
    from .wordnet import nouns

    say(f"comparing methods on {args.synset} in {args.image}")
    explicit = args.methods.strip() != "all"
    names = [get_method(n.strip()).name for n in args.methods.split(",") if n.strip()] if explicit else list(REGISTRY)
    if not names:
        raise ConvisError("--methods is empty")
    params = parse_params(args.param, names)
    image = load_image(args.image)
    concept = nouns().synset(args.synset)
    model = model_from_args(args)
    from .methods import ExplainContext
    from .metrics import deletion_insertion, model_randomisation
    from .render import png_bytes, render, side_by_side

    ctx = ExplainContext(model, image, concept, args.bank, args.text_mode, args.prompt)
    out = Path(args.out)
    (out / "maps").mkdir(parents=True, exist_ok=True)

    report: dict[str, Any] = {
        "image": str(args.image), "image_sha256": image.sha256, "concept": concept.name,
        "target_text": ctx.concept_text, **model.identity, "bank": args.bank, "methods": {}, "skipped": {},
    }
    tiles = []
    done: list[str] = []
    for name in names:
        method = REGISTRY[name]
        reason = method.unsupported_reason(model)
        if reason and not explicit:  # named explicitly, the method's own check below says why it cannot
            report["skipped"][name] = reason
            print(f"{name:22s} skipped: {reason}", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        result = method.explain(ctx, **params.get(name, {}))
        seconds = time.perf_counter() - t0
        result.save(out / "maps" / f"{name}.npy")
        entry: dict[str, Any] = {"label": method.label, "is_baseline": method.is_baseline, "seconds": seconds,
                                 "map": f"maps/{name}.npy", "params": result.meta["params"], "flat": result.meta["flat"]}
        if args.steps > 0:
            curves = deletion_insertion(ctx, result.map, steps=args.steps)
            entry.update({f"{k}_auc": c.auc for k, c in curves.items()})
            entry["curves"] = {k: c.as_dict() for k, c in curves.items()}
        report["methods"][name] = entry
        done.append(name)
        tiles.append((f"{method.label} {seconds:.1f}s", render(result, image.original, style=args.style)))
        aucs = "".join(f"  {k[:3]} {entry[k]:.3f}" for k in ("deletion_auc", "insertion_auc") if k in entry)
        print(f"{name:22s} {seconds:8.2f} s{aucs}")
    if args.sanity and done:
        steps = None if args.sanity < 0 else args.sanity
        report["sanity"] = model_randomisation(ctx, done, params, max_steps=steps).as_dict()
        for name, flag in report["sanity"]["flagged"].items():
            if flag:
                print(f"{name:22s} FLAGGED: its map hardly changes when the model is randomised")
    if tiles:
        (out / "compare.png").write_bytes(png_bytes(side_by_side(tiles, columns=min(4, len(tiles)))))
    (out / "compare.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f"wrote {out / 'compare.json'}")
    return 0

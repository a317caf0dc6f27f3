"""Command line: ``python -m convis_core explain | bank build | concepts | models``.

Failures exit with status 2 (bad input) or 1 (anything else) and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_common import Bar, add_model_args, model_from_args, parse_params, say
from .compare import add_compare_parser
from .errors import ConvisError


def cmd_explain(args: argparse.Namespace) -> int:
    from .images import load_image
    from .methods import get_method
    from .wordnet import nouns

    say(f"{args.method} map of {args.synset} on {args.image}")
    params = parse_params(args.param)
    if args.seed is not None:
        params["seed"] = args.seed
    image = load_image(args.image)  # bad files, words and parameters fail before any model loads
    concept = nouns().synset(args.synset)
    method = get_method(args.method)
    from .methods import explain
    from .render import render_png

    method.params(**params)
    model = model_from_args(args)
    bar = Bar(f"{method.name} {concept.name}")
    try:
        res = explain(model, image, concept.name, method=method.name, bank=args.bank,
                      text_mode=args.text_mode, progress=bar, **params)
    finally:
        bar.close()
    out = Path(args.out)
    res.save(out)
    if args.png:
        Path(args.png).write_bytes(render_png(res, args.image, style=args.style))
    t = res.meta.get("timings", {})
    print(f"{res.meta['method']} map for {res.meta['concept']} -> {out} "
          f"({t.get('total_s', 0):.2f} s{', RANDOM WEIGHTS' if res.random_weights else ''})")
    return 0


def cmd_bank_build(args: argparse.Namespace) -> int:
    import time

    from .bank import bank_embeddings, bank_is_cached, get_bank

    bank = get_bank(args.bank, args.text_mode)
    say(f"bank {bank.spec.name}: {len(bank)} texts")
    model = model_from_args(args)
    if bank_is_cached(model, bank):
        print(f"bank {bank.spec.name} ({len(bank)} texts) is already built for {model.name}")
        return 0
    from .executors import get_executor

    executor = get_executor(args.ray)   # this process unless Ray is asked for
    bar = Bar(f"embedding {bank.spec.name}")
    t0 = time.perf_counter()
    try:
        emb = bank_embeddings(model, bank, progress=bar, batch_size=args.batch_size,
                              executor=executor if executor.remote else None)
    finally:
        bar.close()
        executor.close()
    dt = time.perf_counter() - t0
    print(f"bank {bank.spec.name}: {emb.shape[0]} texts embedded in {dt:.1f} s ({emb.shape[0] / dt:.0f} texts/s)")
    return 0


def cmd_concepts(args: argparse.Namespace) -> int:
    from .images import load_image

    try:
        region = tuple(float(v) for v in args.region.split(",")) if args.region else None
    except ValueError:
        region = ()
    if region is not None and len(region) != 4:
        raise ConvisError("--region expects x0,y0,x1,y1 as fractions of the image")
    say(f"the concepts CLIP sees in {args.image}")
    image = load_image(args.image)
    model = model_from_args(args)
    from .concepts import top_concepts

    hits = top_concepts(model, image, k=args.top, bank=args.bank, text_mode=args.text_mode, region=region)
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], indent=2))
    else:
        for h in hits:
            print(f"{h.rank:>6}  {h.similarity:+.4f}  {h.synset:<28} {h.definition[:70]}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import BUNDLED_WEIGHTS, default_model_choice, list_architectures

    print("default:", " + ".join(default_model_choice()))
    for name, path in BUNDLED_WEIGHTS.items():
        print(f"bundled: {name} ({'present' if path.exists() else 'missing'}: {path})")
    archs = list_architectures()
    print("project architectures:", ", ".join(a for a in archs if a.startswith(("convis", "shapes"))))
    print(f"open_clip architectures: {len(archs)} (e.g. ViT-B-32-quickgelu with --pretrained openai)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (cheap: nothing heavy is imported to build it)."""
    from .methods.registry import METHODS
    from .render import STYLES

    p = argparse.ArgumentParser(prog="python -m convis_core", description="ConVis: explain CLIP with WordNet concepts")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("explain", help="saliency map of a WordNet noun concept on an image")
    e.add_argument("image")
    e.add_argument("synset", help="WordNet noun synset, e.g. dog.n.01")
    e.add_argument("--out", required=True, help="output .npy (metadata goes to the .json beside it)")
    e.add_argument("--png", help="also write an overlay PNG")
    e.add_argument("--style", default="whitefade", choices=list(STYLES))
    e.add_argument("--method", default="convis_grid", help=f"one of: {', '.join(METHODS)} (grid, stochastic)")
    e.add_argument("--seed", type=int, default=None, help="seed of the noise padding / sampler")
    e.add_argument("--param", action="append", help="method parameter KEY=VALUE (JSON values), repeatable")
    add_model_args(e)
    e.set_defaults(func=cmd_explain)

    b = sub.add_parser("bank", help="concept banks")
    bsub = b.add_subparsers(dest="bank_command", required=True)
    bb = bsub.add_parser("build", help="embed a bank's texts and cache them (resumable)")
    bb.add_argument("--batch-size", type=int, default=256)
    bb.add_argument("--ray", metavar="auto|ADDRESS|local",
                    help="shard the text encoding over a Ray cluster's workers: 'auto' (the one on this machine, "
                         "else a new local one) or its address; default $CONVIS_RAY, else $RAY_ADDRESS, else this "
                         "process (identical embeddings either way)")
    add_model_args(bb)
    bb.set_defaults(func=cmd_bank_build)

    c = sub.add_parser("concepts", help="the concepts CLIP matches best in an image (or a region)")
    c.add_argument("image")
    c.add_argument("--top", type=int, default=10)
    c.add_argument("--region", help="x0,y0,x1,y1 as fractions of the image")
    c.add_argument("--json", action="store_true")
    add_model_args(c)
    c.set_defaults(func=cmd_concepts)

    m = sub.add_parser("models", help="list the models this installation can use")
    m.set_defaults(func=cmd_models)
    from .evaluation.cli import add_eval_parser  # stdlib-only module: keeps --help fast
    add_eval_parser(sub)
    add_compare_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConvisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line, not a traceback, for anything unexpected
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1



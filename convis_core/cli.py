"""Command line: ``python -m convis_core explain | bank build | concepts | models``.

Failures exit with status 2 (bad input) or 1 (anything else) and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .errors import ConvisError


class _Bar:
    """A tqdm progress bar usable as an engine ``progress(done, total)`` callback."""

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit="it", file=sys.stderr, leave=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def model_from_args(args: argparse.Namespace):
    from .models import default_model_choice, load_model

    name, pretrained = default_model_choice()
    if args.model:
        name = args.model
        pretrained = args.pretrained or ("bundled" if name == "shapes-world" else "none")
    elif args.pretrained:
        pretrained = args.pretrained
    m = load_model(name, pretrained, device=args.device, seed=args.model_seed)
    if m.random_weights:
        print(f"WARNING: {name} has RANDOM weights: these results carry no meaning.", file=sys.stderr)
    elif name == "shapes-world":
        print("note: shapes-world is a toy CLIP trained on synthetic shapes and digits.", file=sys.stderr)
    return m


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="open_clip architecture, e.g. ViT-B-32-quickgelu, shapes-world, convis-tiny")
    p.add_argument("--pretrained", help="none | bundled | an open_clip tag (openai) | a checkpoint path")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--model-seed", type=int, default=0, help="seed for random weights")
    p.add_argument("--bank", default="all", help="all | subtree=ROOT.n.01 | words=coco80|FILE")
    p.add_argument("--text-mode", default="definitions", choices=["definitions", "lemmas"])


def _parse_value(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def cmd_explain(args: argparse.Namespace) -> int:
    from .methods import explain
    from .render import render_png

    model = model_from_args(args)
    params = {}
    for kv in args.param or []:
        k, sep, v = kv.partition("=")
        if not sep:
            raise ConvisError(f"--param expects KEY=VALUE, got '{kv}'")
        params[k.strip()] = _parse_value(v)
    if args.seed is not None:
        params["seed"] = args.seed
    bar = _Bar(f"{args.method} {args.synset}")
    try:
        res = explain(model, args.image, args.synset, method=args.method, bank=args.bank,
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

    model = model_from_args(args)
    bank = get_bank(args.bank, args.text_mode)
    if bank_is_cached(model, bank):
        print(f"bank {bank.spec.name} ({len(bank)} texts) is already built for {model.name}")
        return 0
    bar = _Bar(f"embedding {bank.spec.name}")
    t0 = time.perf_counter()
    try:
        emb = bank_embeddings(model, bank, progress=bar, batch_size=args.batch_size)
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    print(f"bank {bank.spec.name}: {emb.shape[0]} texts embedded in {dt:.1f} s ({emb.shape[0] / dt:.0f} texts/s)")
    return 0


def cmd_concepts(args: argparse.Namespace) -> int:
    from .concepts import top_concepts

    model = model_from_args(args)
    region = tuple(float(v) for v in args.region.split(",")) if args.region else None
    if region is not None and len(region) != 4:
        raise ConvisError("--region expects x0,y0,x1,y1 as fractions of the image")
    hits = top_concepts(model, args.image, k=args.top, bank=args.bank, text_mode=args.text_mode, region=region)
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
    ours = [a for a in list_architectures() if a.startswith(("convis", "shapes"))]
    print("project architectures:", ", ".join(ours))
    print(f"open_clip architectures: {len(list_architectures())} (e.g. ViT-B-32-quickgelu with --pretrained openai)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .methods import REGISTRY
    from .render import STYLES

    p = argparse.ArgumentParser(prog="python -m convis_core", description="ConVis: explain CLIP with WordNet concepts")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("explain", help="saliency map of a WordNet noun concept on an image")
    e.add_argument("image")
    e.add_argument("synset", help="WordNet noun synset, e.g. dog.n.01")
    e.add_argument("--out", required=True, help="output .npy (metadata goes to the .json beside it)")
    e.add_argument("--png", help="also write an overlay PNG")
    e.add_argument("--style", default="whitefade", choices=list(STYLES))
    e.add_argument("--method", default="convis_grid", help=f"one of: {', '.join(REGISTRY)} (grid, stochastic)")
    e.add_argument("--seed", type=int, default=None, help="seed of the noise padding / sampler")
    e.add_argument("--param", action="append", help="method parameter KEY=VALUE (JSON values), repeatable")
    add_model_args(e)
    e.set_defaults(func=cmd_explain)

    b = sub.add_parser("bank", help="concept banks")
    bsub = b.add_subparsers(dest="bank_command", required=True)
    bb = bsub.add_parser("build", help="embed a bank's texts and cache them (resumable)")
    bb.add_argument("--batch-size", type=int, default=256)
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
    try:
        from .compare import add_compare_parser
    except ImportError:
        pass
    else:
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



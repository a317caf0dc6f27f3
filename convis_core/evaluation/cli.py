"""``python -m convis_core eval wsol|ood``: the parser (stdlib only at import) and its handlers."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..cli_common import add_model_args, model_choice, parse_params


def _model_args(p: argparse.ArgumentParser, bank: bool) -> None:
    add_model_args(p, bank=bank)
    p.add_argument("--sample", type=int, default=None, help="evaluate N images drawn at random (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample and of the bootstrap intervals")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="the run's folder (default: <data dir>/evaluations/<kind>-<data>-<config hash>); "
                        "the same folder resumes a stopped run")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ray", metavar="auto|ADDRESS|local",
                   help="run the images on a Ray cluster: 'auto' (the one on this machine, else a new local one) or "
                        "its address; default $CONVIS_RAY, else $RAY_ADDRESS, else this process. The run folder "
                        "must be on a filesystem every Ray worker sees (deploy/README.md)")


def add_eval_parser(sub: Any) -> None:
    """Register ``eval`` (with ``wsol`` and ``ood``) on the top-level subparsers."""
    e = sub.add_parser("eval", help="the paper's experiments: localisation (wsol) and OOD detection (ood)")
    esub = e.add_subparsers(dest="eval_command", required=True)
    w = esub.add_parser("wsol", help="weakly supervised localisation: MaxBoxAcc, MaxBoxAccV2, pointing game",
                        description="Maps of one concept on every image; boxes from the maps against the "
                                    "ground-truth boxes (moved into the maps' 224x224 centre-crop frame).")
    w.add_argument("data", type=Path, help="a CUB-200-2011 folder (images.txt, bounding_boxes.txt, "
                                           "train_test_split.txt, images/), a CSV: path,x0,y0,x1,y1 (a row per box), "
                                           "or shapes-cub (the Shapes world's CUB-style set of polygons)")
    w.add_argument("--concept", default=None,
                   help="WordNet noun synset to explain (default bird.n.01, the paper's; polygon.n.01 for shapes-cub)")
    w.add_argument("--methods", default="convis_grid", help="comma-separated methods, or 'all' (default convis_grid)")
    w.add_argument("--param", action="append", default=[], help="METHOD.KEY=VALUE (JSON value), repeatable")
    w.add_argument("--format", default="auto", choices=["auto", "cub", "csv"])
    w.add_argument("--split", default="test", choices=["test", "train", "all"], help="CUB split (default test)")
    w.add_argument("--gallery", type=int, default=4, help="best and worst images per method in the gallery")
    _model_args(w, bank=True)
    w.set_defaults(func=cmd_wsol)
    o = esub.add_parser("ood", help="OOD detection with WordNet texts: AUROC, FPR at 95 % TPR, AUPR, ROC",
                        description="Images in folders named by WordNet id (n01530575/...); folders under --in "
                                    "are in-distribution, under --out out-of-distribution.")
    o.add_argument("data", type=Path, help="a folder of ImageNet-style wnid folders (any depth), or shapes-imagenet "
                                           "(the Shapes world's polygons vs digits; preset shapes-polygon-digit)")
    o.add_argument("--in", dest="in_synset", help="in-distribution synset, e.g. spider.n.01")
    o.add_argument("--out", dest="out_synset", help="out-of-distribution synset, e.g. butterfly.n.01")
    o.add_argument("--preset", help="one of the paper's pairs (see --list-presets)")
    o.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    o.add_argument("--resnet50", help="a torchvision ResNet-50 state dict (.pth): adds its maximum-logit baseline")
    _model_args(o, bank=False)
    o.set_defaults(func=cmd_ood)


def _run_dir(args: argparse.Namespace, kind: str, cfg: dict[str, Any]) -> Path:
    from .runs import runs_root

    if args.run_dir is not None:
        return args.run_dir
    ident = {k: v for k, v in cfg.items() if k not in ("out", "plots")}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(args.data)).resolve().name)[:40]
    return runs_root() / f"{kind}-{stem}-{digest}"


def _shapes_data(args: argparse.Namespace) -> str | None:
    """Resolve a named Shapes-world set (written on first use); returns its default concept/preset."""
    from .shapes_sets import SHAPES_SETS, ensure_shapes_set

    name = str(args.data)
    if name not in SHAPES_SETS:
        return None
    args.data = ensure_shapes_set(name, progress=not args.no_progress)
    return SHAPES_SETS[name]


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Iterator[Any]:
    """Where the per-item work runs (`convis_core.executors`): this process unless Ray is asked for."""
    from ..executors import get_executor

    ex = get_executor(args.ray)
    try:
        yield ex
    finally:
        ex.close()


def _finish(cfg: Any, summary: dict[str, Any], table: str) -> int:
    print(table)
    if summary["model"].get("random_weights"):
        print("WARNING: the model has RANDOM weights: these figures carry no meaning.", file=sys.stderr)
    print(f"run folder: {cfg.out}")
    return 0


def cmd_wsol(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..methods import REGISTRY, get_method
    from .report import wsol_table
    from .runner import RunConfig, run_wsol

    shapes_concept = _shapes_data(args)
    args.concept = args.concept or shapes_concept or "bird.n.01"
    methods = list(REGISTRY) if args.methods.strip() == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    methods = [get_method(m).name for m in methods]
    name, pretrained = model_choice(args)
    cfg = RunConfig(kind="wsol", data=str(Path(args.data).resolve()), out="", model=name, pretrained=pretrained,
                    model_seed=args.model_seed, device=args.device, sample=args.sample, seed=args.seed,
                    concept=args.concept, methods=methods, params=parse_params(args.param, methods), bank=args.bank,
                    text_mode=args.text_mode, format=args.format, split=args.split, gallery=args.gallery,
                    plots=not args.no_plots)
    cfg.out = str(_run_dir(args, "wsol", asdict(cfg)))
    with _executor(args) as ex:
        summary = run_wsol(cfg, mapper=ex.mapper(), show_progress=not args.no_progress)
    return _finish(cfg, summary, wsol_table(summary))


def cmd_ood(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..errors import ConvisError
    from .presets import OOD_PRESETS
    from .report import ood_table
    from .runner import RunConfig, run_ood

    if args.list_presets:
        for k, (i, o) in OOD_PRESETS.items():
            print(f"{k:34} in {i:26} out {o}")
        return 0
    in_s, out_s = args.in_synset, args.out_synset
    shapes_preset = _shapes_data(args)
    args.preset = args.preset or shapes_preset
    if args.preset:
        if args.preset not in OOD_PRESETS:
            raise ConvisError(f"unknown preset {args.preset!r} (known: {', '.join(OOD_PRESETS)})")
        in_s, out_s = in_s or OOD_PRESETS[args.preset][0], out_s or OOD_PRESETS[args.preset][1]
    if not in_s or not out_s:
        raise ConvisError("name the in- and out-of-distribution synsets (--in and --out) or a --preset")
    name, pretrained = model_choice(args)
    cfg = RunConfig(kind="ood", data=str(Path(args.data).resolve()), out="", model=name, pretrained=pretrained,
                    model_seed=args.model_seed, device=args.device, sample=args.sample, seed=args.seed,
                    in_synset=in_s, out_synset=out_s, preset=args.preset or "",
                    resnet50=str(Path(args.resnet50).resolve()) if args.resnet50 else None, plots=not args.no_plots)
    cfg.out = str(_run_dir(args, "ood", asdict(cfg)))
    with _executor(args) as ex:
        summary = run_ood(cfg, mapper=ex.mapper(), show_progress=not args.no_progress)
    return _finish(cfg, summary, ood_table(summary))

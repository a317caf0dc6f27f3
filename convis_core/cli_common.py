"""What the command line's subcommands share: model arguments, ``--param`` parsing, status lines
and progress bars. Imports nothing heavy: a command loads torch when it loads its model."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .errors import ConvisError


def say(line: str) -> None:
    """A status line on stderr, at once (the first thing a command prints)."""
    print(line, file=sys.stderr, flush=True)


class Bar:
    """A tqdm progress bar usable as an engine ``progress(done, total)`` callback."""

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="it", file=sys.stderr, leave=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def add_model_args(p: argparse.ArgumentParser, bank: bool = True) -> None:
    """--model, --pretrained, --device, --model-seed and, with `bank`, --bank and --text-mode."""
    p.add_argument("--model", help="open_clip architecture, e.g. ViT-B-32-quickgelu, shapes-world, convis-tiny")
    p.add_argument("--pretrained", help="none | bundled | an open_clip tag (openai) | a checkpoint path "
                                        "(default: bundled for shapes-world, none for convis-tiny, else openai)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--model-seed", type=int, default=0, help="seed for random weights")
    if not bank:
        return
    p.add_argument("--bank", default="all", help="all | subtree=ROOT.n.01 | words=coco80|FILE")
    p.add_argument("--text-mode", default="definitions", choices=["definitions", "lemmas"])


def model_choice(args: argparse.Namespace) -> tuple[str, str]:
    """The (architecture, weights) the arguments ask for; bare names get
    :func:`~convis_core.models.default_pretrained`'s weights."""
    from .models import default_model_choice, default_pretrained

    if args.model:
        return args.model, args.pretrained or default_pretrained(args.model)
    name, pretrained = default_model_choice()
    return name, args.pretrained or pretrained


def model_from_args(args: argparse.Namespace):
    """Load the model the arguments name, saying so first, and warn about random weights."""
    name, pretrained = model_choice(args)
    say(f"loading {name} ({pretrained} weights)...")
    from .models import load_model

    m = load_model(name, pretrained, device=args.device, seed=args.model_seed)
    if m.random_weights:
        say(f"WARNING: {name} has RANDOM weights: these results carry no meaning.")
    elif name == "shapes-world":
        say("note: shapes-world is a toy CLIP trained on synthetic shapes and digits.")
    return m


def _value(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def parse_params(items: list[str] | None, methods: list[str] | None = None) -> dict[str, Any]:
    """``--param`` items: ``KEY=VALUE`` (JSON values, else strings) into ``{key: value}``; with
    ``methods``, ``METHOD.KEY=VALUE`` into ``{method: {key: value}}`` for the methods named."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        key = key.strip()
        if methods is None:
            if not eq or not key:
                raise ConvisError(f"--param expects KEY=VALUE, got '{item}'")
            out[key] = _value(value)
            continue
        method, dot, name = key.partition(".")
        if not eq or not dot or not name:
            raise ConvisError(f"--param '{item}' must look like METHOD.KEY=VALUE")
        if method not in methods:
            raise ConvisError(f"--param '{item}' names method '{method}', which is not being compared")
        out.setdefault(method, {})[name] = _value(value)
    return out

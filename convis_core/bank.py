"""Concept banks: the WordNet texts that ranks are counted over, and their cached embeddings.

A bank is named by a spec string:

- ``all``: all 82,115 noun synsets;
- ``subtree=ROOT``: ``ROOT`` and every synset below it (e.g. ``subtree=animal.n.01``);
- ``words=LIST``: the authors' construction: every noun synset of each word plus all their
  hypernyms up to ``entity.n.01``. ``LIST`` is a shipped list (``coco80``) or a text file with
  one word per line.

and a text mode: ``definitions`` (one row per synset, its definition) or ``lemmas`` (one row per
lemma, underscores as spaces). The bank changes the ranks, so its key travels in every map's
metadata.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import ConvisError, EmptyConceptError
from .models import ClipModel
from .paths import PACKAGE_DIR, atomic_write_bytes, cache_dir
from .wordnet import NounGraph, nouns

if TYPE_CHECKING:
    from .executors import Executor

MODES = ("definitions", "lemmas")
WORDLIST_DIR = PACKAGE_DIR / "wordlists"
CHUNK = 4096

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BankSpec:
    """What a bank contains. ``kind`` is ``all``, ``subtree`` or ``words``."""

    kind: str = "all"
    arg: str = ""
    mode: str = "definitions"

    @classmethod
    def parse(cls, spec: str, mode: str = "definitions") -> BankSpec:
        spec = (spec or "all").strip()
        if mode not in MODES:
            raise ConvisError(f"unknown text mode '{mode}' (use one of: {', '.join(MODES)})")
        kind, _, arg = spec.partition("=")
        if kind == "all" and not arg:
            return cls("all", "", mode)
        if kind in ("subtree", "words") and arg:
            return cls(kind, arg.strip(), mode)
        raise ConvisError(
            f"unknown bank '{spec}' (use 'all', 'subtree=ROOT.n.01' or 'words=coco80|FILE')"
        )

    @property
    def name(self) -> str:
        base = self.kind if self.kind == "all" else f"{self.kind}={self.arg}"
        return f"{base}:{self.mode}"


@dataclass
class ConceptBank:
    """A built bank: one row per text, each row tied to a noun synset."""

    spec: BankSpec
    graph: NounGraph
    synsets: np.ndarray  # sorted graph indices of the synsets in the bank
    row_synset: np.ndarray  # (rows,) graph index of each row's synset
    texts: list[str]
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @cached_property
    def key(self) -> str:
        """Content key: the spec name plus a hash of the rows (so a changed word file is a new bank)."""
        h = hashlib.sha256()
        h.update(self.spec.name.encode())
        h.update(self.row_synset.tobytes())
        h.update("\x00".join(self.texts).encode())
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.spec.name)[:60]
        return f"{safe}-{h.hexdigest()[:12]}"

    @property
    def identity(self) -> dict:
        """JSON-able description for result metadata."""
        return {"bank": self.spec.name, "bank_key": self.key, "bank_rows": len(self), "bank_synsets": len(self.synsets)}

    def leaves(self, concept: str | int) -> np.ndarray:
        """Row indices of the concept and every synset below it that are in the bank.

        Raises :class:`EmptyConceptError` when none is.
        """
        g = self.graph
        i = g.lookup(concept) if isinstance(concept, str) else int(concept)
        mask = np.zeros(len(g), dtype=bool)
        mask[g.subtree(i)] = True
        rows = np.flatnonzero(mask[self.row_synset])
        if len(rows) == 0:
            raise EmptyConceptError(
                f"'{g.names[i]}' has no leaves in the bank '{self.spec.name}' "
                f"({len(self.synsets)} synsets): choose a larger bank such as 'all'"
            )
        return rows


def _read_words(arg: str) -> list[str]:
    path = WORDLIST_DIR / f"{arg}.txt"
    if not path.exists():
        path = Path(arg).expanduser()
    if not path.is_file():
        shipped = ", ".join(p.stem for p in WORDLIST_DIR.glob("*.txt"))
        raise ConvisError(f"word list '{arg}' not found (shipped lists: {shipped}; or give a file path)")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#")]


def build_bank(spec: BankSpec | str, mode: str = "definitions") -> ConceptBank:
    """Collect the rows of a bank from WordNet (no model needed)."""
    if isinstance(spec, str):
        spec = BankSpec.parse(spec, mode)
    g = nouns()
    info: dict = {}
    if spec.kind == "all":
        syn = np.arange(len(g))
    elif spec.kind == "subtree":
        syn = g.subtree(g.lookup(spec.arg))
    else:
        chosen: set[int] = set()
        missing = []
        for word in _read_words(spec.arg):
            key = word.strip().lower().replace(" ", "_")
            found = [i for base in g.base_forms(key) for i in g.senses[base]]
            if not found:
                missing.append(word)
            for i in found:
                chosen.update(g.ancestors(i).tolist())
        if not chosen:
            raise ConvisError(f"no word of the list '{spec.arg}' is a WordNet noun")
        syn = np.array(sorted(chosen), dtype=np.int64)
        info["words_without_synsets"] = missing
    if spec.mode == "definitions":
        rows, texts = syn, [g.definitions[i] for i in syn]
    else:
        pairs = [(i, lemma.replace("_", " ")) for i in syn for lemma in g.lemmas[i]]
        rows = np.array([p[0] for p in pairs], dtype=np.int64)
        texts = [p[1] for p in pairs]
    return ConceptBank(spec, g, np.asarray(syn, dtype=np.int64), np.asarray(rows, dtype=np.int64), texts, info)


# ------------------------------------------------------------------------------------ embeddings
def _bank_dir(model: ClipModel, bank: ConceptBank) -> Path:
    return cache_dir("banks", model.key, bank.key)


def _save_npy(path: Path, a: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, a)
    atomic_write_bytes(path, buf.getvalue())


_MEMO: dict[tuple[str, str], np.ndarray] = {}


def bank_embeddings(
    model: ClipModel,
    bank: ConceptBank,
    progress: Progress | None = None,
    batch_size: int = 256,
    use_cache: bool = True,
    executor: Executor | None = None,
) -> np.ndarray:
    """L2-normalised embeddings of every bank row, ``(rows, d)``, cached on disk.

    Texts are encoded in order of token length, in batches cut to their longest real sequence
    (no padding cost). The build is resumable: each chunk of ``CHUNK`` texts is written
    atomically as it finishes, so a killed build restarts where it stopped.

    With a remote `executor` (``convis_core.executors.RayExecutor``) the chunks are sharded over
    its workers when two or more chunks are missing: each worker encodes whole chunks with the
    same batches (identical embeddings) and sends them back; this process writes every chunk
    file, so only it needs the cache.
    """
    memo_key = (model.key, bank.key)
    if use_cache and memo_key in _MEMO:
        return _MEMO[memo_key]
    folder = _bank_dir(model, bank)
    final = folder / "embeddings.npy"
    if use_cache and final.exists():
        emb = np.load(final)
        if emb.shape[0] == len(bank):
            _MEMO[memo_key] = emb
            return emb
    t0 = time.perf_counter()
    tokens = model.tokenize(bank.texts)
    lengths = (tokens != 0).sum(dim=1).numpy()
    order = np.argsort(lengths, kind="stable")
    n = len(order)
    chunks = [order[start : start + CHUNK] for start in range(0, n, CHUNK)]
    out: np.ndarray | None = None
    done = 0

    def place(c: int, part: np.ndarray) -> None:
        nonlocal out, done
        if out is None:
            out = np.empty((n, part.shape[1]), dtype=part.dtype)
        out[chunks[c]] = part
        done += len(chunks[c])
        if progress is not None:
            progress(done, n)

    def chunk_path(c: int) -> Path:
        return folder / f"chunk-{c:05d}.npy"

    missing = []
    for c in range(len(chunks)):
        if use_cache and chunk_path(c).exists():
            place(c, np.load(chunk_path(c)))
        else:
            missing.append(c)
    if executor is not None and executor.remote and len(missing) > 1:  # one chunk: not worth the workers' start
        from .executors import ModelSetup

        def store(i: int, part: np.ndarray) -> None:
            c = missing[i]
            if use_cache:
                _save_npy(chunk_path(c), part)
            place(c, part)

        units = [(tokens[torch.from_numpy(chunks[c])], batch_size) for c in missing]
        executor.map(ModelSetup.of(model), _encode_chunk, units, on_result=store)
    else:
        for c in missing:
            idx = chunks[c]
            parts = []
            for b in range(0, len(idx), batch_size):
                sel = torch.from_numpy(idx[b : b + batch_size])
                parts.append(model.encode_tokens(tokens[sel]).numpy())
                if progress is not None:
                    progress(done + min(b + batch_size, len(idx)), n)
            part = np.concatenate(parts)
            if use_cache:
                _save_npy(chunk_path(c), part)
            place(c, part)
    assert out is not None
    if use_cache:
        _save_npy(final, out)
        meta = {**bank.identity, **model.identity, "seconds": time.perf_counter() - t0, "texts": n}
        atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=2).encode())
        for p in folder.glob("chunk-*.npy"):
            p.unlink(missing_ok=True)
        _MEMO[memo_key] = out
    return out


def _encode_chunk(model: ClipModel, unit: tuple[torch.Tensor, int], ctx: object) -> np.ndarray:
    """One chunk of a sharded bank build (a worker's unit): the same batches as a local build."""
    tokens, batch_size = unit
    return np.concatenate([model.encode_tokens(tokens[b : b + batch_size]).numpy()
                           for b in range(0, len(tokens), batch_size)])


def remember_embeddings(model_key: str, bank_key: str, embeddings: np.ndarray) -> None:
    """Keep embeddings computed elsewhere (a worker gets the driver's) as if built here."""
    _MEMO[(model_key, bank_key)] = embeddings


def bank_is_cached(model: ClipModel, bank: ConceptBank) -> bool:
    """Whether the bank's embeddings for this model are already on disk."""
    return (model.key, bank.key) in _MEMO or (_bank_dir(model, bank) / "embeddings.npy").exists()


def get_bank(spec: str = "all", mode: str = "definitions") -> ConceptBank:
    """Memoised :func:`build_bank`."""
    key = (spec, mode)
    if key not in _BANKS:
        _BANKS[key] = build_bank(spec, mode)
    return _BANKS[key]


_BANKS: dict[tuple[str, str], ConceptBank] = {}

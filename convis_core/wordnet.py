"""WordNet 3.0 nouns: synsets by name, search by word, subtrees, hypernym paths.

NLTK reads WordNet from ``<data>/nltk_data`` (laid out by ``scripts/setup.sh``). Walking all
82,115 noun synsets through NLTK takes seconds, so the noun graph (names, definitions, lemmas,
hyponym edges) is built once and kept as a compact file in the cache.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ConvisError, UnknownConceptError
from .paths import atomic_write_bytes, cache_dir, nltk_data_dir

NAME_RE = re.compile(r"^[^\s.]+(?:\.[^\s.]+)*\.([nvasr])\.(\d{2,3})$")
GRAPH_VERSION = 2
#: WordNet's detachment rules for nouns (morphy), applied after the exception list.
NOUN_RULES = (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
              ("men", "man"), ("ies", "y"))


def _wordnet():
    """NLTK's WordNet reader on the project's data folder, with a clear error if it is missing."""
    import nltk

    root = str(nltk_data_dir())
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    from nltk.corpus import wordnet as wn

    try:
        wn.ensure_loaded()
    except LookupError as e:
        raise ConvisError(
            f"WordNet 3.0 is not installed under {root}: run scripts/setup.sh (or ./run / ./test)"
        ) from e
    return wn


@dataclass(frozen=True)
class Synset:
    """A noun synset as the engine sees it."""

    index: int
    name: str
    definition: str
    lemmas: tuple[str, ...]

    @property
    def label(self) -> str:
        """Readable label: first lemma with spaces."""
        return self.lemmas[0].replace("_", " ")


class NounGraph:
    """All WordNet noun synsets as arrays, with hyponym edges (instance hyponyms included)."""

    def __init__(self, names: list[str], definitions: list[str], lemmas: list[list[str]],
                 child_ptr: np.ndarray, child_idx: np.ndarray, parent_ptr: np.ndarray,
                 parent_idx: np.ndarray, senses: dict[str, list[int]] | None = None,
                 exceptions: dict[str, list[str]] | None = None) -> None:
        self.names = names
        self.definitions = definitions
        self.lemmas = lemmas
        self.child_ptr, self.child_idx = child_ptr, child_idx
        self.parent_ptr, self.parent_idx = parent_ptr, parent_idx
        self.index = {n: i for i, n in enumerate(names)}
        self._lemma_index: dict[str, list[int]] | None = None
        #: lemma (lower case) -> synset indices in WordNet's sense order (most frequent first)
        self.senses = senses or {}
        #: irregular plurals (noun.exc): inflected form -> base forms
        self.exceptions = exceptions or {}

    def __len__(self) -> int:
        return len(self.names)

    # ------------------------------------------------------------------ building and caching
    @classmethod
    def build(cls) -> NounGraph:
        wn = _wordnet()
        syns = list(wn.all_synsets("n"))
        names = [s.name() for s in syns]
        index = {n: i for i, n in enumerate(names)}
        children: list[list[int]] = []
        parents: list[list[int]] = [[] for _ in syns]
        for i, s in enumerate(syns):
            kids = sorted({index[h.name()] for h in s.hyponyms() + s.instance_hyponyms()})
            children.append(kids)
            for k in kids:
                parents[k].append(i)
        cp, ci = _csr(children)
        pp, pi = _csr(parents)
        root = Path(wn.root.path if hasattr(wn.root, "path") else wn.root)
        by_offset = {s.offset(): i for i, s in enumerate(syns)}
        senses: dict[str, list[int]] = {}
        for line in (root / "index.noun").read_text(encoding="utf-8").splitlines():
            if line.startswith(" "):
                continue  # the licence header
            parts = line.split()
            n_syn, n_ptr = int(parts[2]), int(parts[3])
            offsets = parts[4 + n_ptr + 2 : 4 + n_ptr + 2 + n_syn]
            senses[parts[0].lower()] = [by_offset[int(o)] for o in offsets]
        exceptions: dict[str, list[str]] = {}
        for line in (root / "noun.exc").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                exceptions[parts[0]] = parts[1:]
        return cls(names, [s.definition() for s in syns], [s.lemma_names() for s in syns], cp, ci, pp, pi,
                   senses, exceptions)

    @classmethod
    def load(cls) -> NounGraph:
        path = cache_dir("wordnet") / f"nouns-v{GRAPH_VERSION}.npz"
        if path.exists():
            z = np.load(path, allow_pickle=False)
            meta = json.loads(bytes(z["meta"]).decode())
            return cls(meta["names"], meta["definitions"], meta["lemmas"], z["cp"], z["ci"], z["pp"], z["pi"],
                       meta["senses"], meta["exceptions"])
        g = cls.build()
        import io

        buf = io.BytesIO()
        meta = json.dumps({"names": g.names, "definitions": g.definitions, "lemmas": g.lemmas,
                           "senses": g.senses, "exceptions": g.exceptions}).encode()
        np.savez(buf, meta=np.frombuffer(meta, dtype=np.uint8), cp=g.child_ptr, ci=g.child_idx,
                 pp=g.parent_ptr, pi=g.parent_idx)
        atomic_write_bytes(path, buf.getvalue())
        return g

    # ------------------------------------------------------------------------------- lookups
    def synset(self, name: str) -> Synset:
        """The noun synset called ``name`` (e.g. ``dog.n.01``); clear errors otherwise."""
        i = self.lookup(name)
        return Synset(i, self.names[i], self.definitions[i], tuple(self.lemmas[i]))

    def lookup(self, name: str) -> int:
        """Index of a noun synset by name, raising :class:`UnknownConceptError` with suggestions."""
        raw = name
        name = (name or "").strip()
        if name in self.index:
            return self.index[name]
        if len(name) > 200:
            raise UnknownConceptError("synset name is too long (over 200 characters)")
        m = NAME_RE.match(name)
        if m and m.group(1) != "n":
            pos = {"v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}[m.group(1)]
            raise UnknownConceptError(
                f"'{raw}' is a {pos} synset; ConVis explains noun concepts only"
                + _suggest(self.suggest(name.split(".")[0]))
            )
        if m is None and not re.match(r"^[\w' -]+$", name):
            raise UnknownConceptError(f"'{raw}' is not a synset name (expected e.g. 'dog.n.01')")
        word = name.split(".")[0] if m else name
        raise UnknownConceptError(f"unknown WordNet noun synset '{raw}'" + _suggest(self.suggest(word)))

    def suggest(self, word: str, k: int = 5) -> list[str]:
        """Synset names close to ``word``: exact lemma matches first, then spelling neighbours."""
        li = self.lemma_index()
        key = word.strip().lower().replace(" ", "_")
        if key in li:
            return [self.names[i] for i in self.search(word, k)]
        hits: list[str] = []
        pool = [w for w in li if w[:1] == key[:1] and abs(len(w) - len(key)) <= 2] if key else []

        def score(w: str) -> float:  # spelling similarity, with typos that swap letters forgiven
            return difflib.SequenceMatcher(None, key, w).ratio() + (0.3 if sorted(w) == sorted(key) else 0.0)

        for w in sorted((w for w in pool if score(w) >= 0.6), key=lambda w: (-score(w), w))[:k]:
            hits += [self.names[i] for i in self.search(w, 2) if self.names[i] not in hits]
        hits += [self.names[i] for i in self.search(word, k) if self.names[i] not in hits]
        return hits[:k]

    def lemma_index(self) -> dict[str, list[int]]:
        if self._lemma_index is None:
            li: dict[str, list[int]] = {}
            for i, ls in enumerate(self.lemmas):
                for lemma in ls:
                    li.setdefault(lemma.lower(), []).append(i)
            self._lemma_index = li
        return self._lemma_index

    def search(self, word: str, k: int = 10) -> list[int]:
        """Noun synsets for a word, best first (WordNet's sense order, i.e. by frequency).

        Exact lemma matches come first (through NLTK's morphy, so "dogs" finds dog.n.01), then
        synsets whose lemmas start with the word.
        """
        word = (word or "").strip().lower().replace(" ", "_")
        if not word or len(word) > 100:
            return []
        out: list[int] = []
        for base in self.base_forms(word):
            out += [i for i in self.senses.get(base, []) if i not in out]
        if len(out) < k:
            for lemma, idx in self.lemma_index().items():
                if lemma.startswith(word) and lemma != word:
                    out += [i for i in idx if i not in out]
                if len(out) >= 4 * k:
                    break
        return out[:k]

    def base_forms(self, word: str) -> list[str]:
        """The word and its uninflected noun forms that are WordNet lemmas (WordNet's morphy)."""
        forms = [word] + self.exceptions.get(word, [])
        forms += [word[: -len(suf)] + rep for suf, rep in NOUN_RULES if word.endswith(suf) and len(word) > len(suf)]
        return [f for f in dict.fromkeys(forms) if f in self.senses]

    def subtree(self, root: int) -> np.ndarray:
        """Sorted indices of ``root`` and every synset below it (transitive hyponyms)."""
        seen = np.zeros(len(self.names), dtype=bool)
        stack = [root]
        seen[root] = True
        while stack:
            i = stack.pop()
            for c in self.child_idx[self.child_ptr[i] : self.child_ptr[i + 1]]:
                if not seen[c]:
                    seen[c] = True
                    stack.append(int(c))
        return np.flatnonzero(seen)

    def hypernym_paths(self, i: int) -> list[list[str]]:
        """Every path from ``entity.n.01`` down to the synset, as names."""
        parents = self.parent_idx[self.parent_ptr[i] : self.parent_ptr[i + 1]]
        if len(parents) == 0:
            return [[self.names[i]]]
        return [p + [self.names[i]] for j in parents for p in self.hypernym_paths(int(j))]

    def ancestors(self, i: int) -> np.ndarray:
        """Sorted indices of the synset and all its hypernyms up to ``entity.n.01``."""
        seen = {i}
        stack = [i]
        while stack:
            j = stack.pop()
            for p in self.parent_idx[self.parent_ptr[j] : self.parent_ptr[j + 1]]:
                if int(p) not in seen:
                    seen.add(int(p))
                    stack.append(int(p))
        return np.array(sorted(seen), dtype=np.int64)


def _csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    idx = np.fromiter((v for x in lists for v in x), dtype=np.int64, count=int(ptr[-1]))
    return ptr, idx


def _suggest(names: list[str]) -> str:
    return f"; did you mean {', '.join(names)}?" if names else ""


@lru_cache(maxsize=1)
def nouns() -> NounGraph:
    """The process-wide noun graph (built once, then loaded from the cache)."""
    return NounGraph.load()

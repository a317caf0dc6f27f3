"""Readable labels for WordNet synset names, for people: a name and the WordNet definition.

Participants never see a bare synset id. Labels are read straight from WordNet 3.0's
`index.noun`/`data.noun` (the files `scripts/setup.sh` lays out), so this costs no model or NLTK
import: the index is parsed once per process, each definition is one seek.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from study.config import data_dir

_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


@dataclass(frozen=True)
class ConceptLabel:
    """What a person reads for a concept: `name` ("hot dog") and `definition` (WordNet's gloss)."""

    synset: str
    name: str
    definition: str


def _wordnet_dir() -> Path:
    return data_dir() / "nltk_data" / "corpora" / "wordnet"


@functools.lru_cache(maxsize=8)
def _offsets(pos_file: str) -> dict[str, list[int]]:
    """lemma -> byte offsets of its synsets in `data.<pos>`, in WordNet's sense order."""
    path = _wordnet_dir() / f"index.{pos_file}"
    out: dict[str, list[int]] = {}
    if not path.is_file():
        return out
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(" "):
                continue  # licence header
            parts = line.split()
            n_syn, n_ptr = int(parts[2]), int(parts[3])
            out[parts[0]] = [int(o) for o in parts[4 + n_ptr + 2: 4 + n_ptr + 2 + n_syn]]
    return out


@functools.lru_cache(maxsize=4096)
def describe(synset: str) -> ConceptLabel:
    """The label of `synset` ('dog.n.01'); an unknown name falls back to its lemma, never raises."""
    lemma, _, rest = synset.rpartition(".")
    word, _, pos = lemma.rpartition(".")
    fallback = ConceptLabel(synset, (word or synset).replace("_", " "), "")
    pos_file = _POS_FILES.get(pos)
    if not word or pos_file is None or not rest.isdigit():
        return fallback
    offsets = _offsets(pos_file).get(word.lower(), [])
    sense = int(rest)
    if not 1 <= sense <= len(offsets):
        return fallback
    with (_wordnet_dir() / f"data.{pos_file}").open("rb") as fh:
        fh.seek(offsets[sense - 1])
        line = fh.readline().decode("utf-8", "replace")
    gloss = line.partition(" | ")[2]
    definition = gloss.split('; "')[0].strip().rstrip(";").strip()
    return ConceptLabel(synset, fallback.name, definition)


def describe_all(synsets: list[str]) -> dict[str, ConceptLabel]:
    """Labels of several synsets, keyed by synset name."""
    return {s: describe(s) for s in synsets}

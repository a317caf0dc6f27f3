"""WordNet access for the Shapes world: names-in, names-out helpers over the engine's cached noun
graph (:func:`convis_core.wordnet.nouns`); ``wordnet()``/``synset()`` give NLTK objects where
NLTK-specific data (synset offsets) is needed."""

from __future__ import annotations

from functools import lru_cache

import nltk

from ..paths import nltk_data_dir
from ..wordnet import nouns


@lru_cache(maxsize=1)
def wordnet():  # noqa: ANN201 - nltk's lazy corpus reader has no public type
    """The NLTK WordNet reader, with the project's WordNet on ``nltk.data.path``."""
    path = str(nltk_data_dir())
    if path not in nltk.data.path:
        nltk.data.path.insert(0, path)
    from nltk.corpus import wordnet as wn

    wn.ensure_loaded()
    return wn


def synset(name: str):  # noqa: ANN201
    """The synset called ``name`` (e.g. ``"circle.n.01"``)."""
    return wordnet().synset(name)


@lru_cache(maxsize=4096)
def subtree(name: str) -> frozenset[str]:
    """``name`` and every synset below it (hyponyms and instance hyponyms, transitively)."""
    g = nouns()
    return frozenset(g.names[i] for i in g.subtree(g.lookup(name)))


@lru_cache(maxsize=4096)
def ancestors(name: str) -> frozenset[str]:
    """Every synset above ``name`` (hypernyms and instance hypernyms, transitively), not itself."""
    g = nouns()
    return frozenset(g.names[i] for i in g.ancestors(g.lookup(name))) - {name}


def is_under(name: str, root: str) -> bool:
    """Whether ``name`` is ``root`` or lies below it in WordNet."""
    return name == root or root in ancestors(name)


def definition(name: str) -> str:
    """WordNet's gloss of ``name``."""
    return nouns().synset(name).definition


def lemma_texts(name: str) -> list[str]:
    """The lemma names of ``name`` with ``_`` replaced by a space (the bank's ``lemmas`` mode)."""
    return [lemma.replace("_", " ") for lemma in nouns().synset(name).lemmas]


def all_noun_synsets() -> tuple[str, ...]:
    """Names of all 82,115 WordNet 3.0 noun synsets, in NLTK's order."""
    return tuple(nouns().names)

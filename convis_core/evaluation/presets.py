"""The paper's OOD pairs (in-distribution synset, out-of-distribution synset) and the Shapes world's."""

from __future__ import annotations

OOD_PRESETS: dict[str, tuple[str, str]] = {
    "spider-butterfly": ("spider.n.01", "butterfly.n.01"),
    "bird-hunting_dog": ("bird.n.01", "hunting_dog.n.01"),
    "garment-furniture": ("garment.n.01", "furniture.n.01"),
    "ungulate-bear": ("ungulate.n.01", "bear.n.01"),
    "edible_fruit-musical_instrument": ("edible_fruit.n.01", "musical_instrument.n.01"),
    "aircraft-vessel": ("aircraft.n.01", "vessel.n.02"),
    # the Shapes world (convis_core.shapes.datasets.write_imagenet_style's default)
    "shapes-polygon-digit": ("polygon.n.01", "digit.n.01"),
}

#: The paper's localisation setting: CUB-200-2011 test images, the concept bird.n.01.
WSOL_DEFAULT_CONCEPT = "bird.n.01"


def ood_texts(in_synset: str) -> dict[str, list[str]]:
    """The texts of the paper's three scores for ``in_synset``: its definition (``naive``), the
    definitions of its WordNet subtree (``hierarchy``), the lemmas of its subtree (``lemmas``,
    ``_`` as spaces, each once)."""
    from ..wordnet import nouns

    g = nouns()
    root = g.synset(in_synset)
    sub = [g.synset(g.names[i]) for i in sorted(g.subtree(g.lookup(in_synset)))]
    return {"naive": [root.definition], "hierarchy": [s.definition for s in sub],
            "lemmas": sorted({lem.replace("_", " ") for s in sub for lem in s.lemmas})}

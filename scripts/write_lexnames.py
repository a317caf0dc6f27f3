"""Write WordNet 3.0's ``lexnames`` file (NLTK needs it; Debian's wordnet-base lacks it).

The 45 lexicographer files are listed in lexnames(5WN); rows are ``NN<TAB>name<TAB>category``
(1 noun, 2 verb, 3 adjective, 4 adverb). Usage: ``python write_lexnames.py OUT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

NAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The file's text: 45 rows in WordNet's numbering."""
    assert len(NAMES) == 45
    rows = [f"{i:02d}\t{n}\t{CATEGORY[n.split('.')[0]]}" for i, n in enumerate(NAMES)]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(lexnames_text())
    tmp.replace(out)

"""One trial screen per protocol, keyed by the protocol's registered name. A new protocol adds its
module here and one line to `SCREENS`; `tests/app/test_participant_page.py` checks that every
protocol in `study.protocols.REGISTRY` has a screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from study.labels import ConceptLabel
from ui.participant.trials import distinction, forward_simulation, preference, rating
from ui.participant.widgets import Answering

Screen = Callable[[dict[str, Any], dict[str, bytes], dict[str, ConceptLabel], Answering], None]

SCREENS: dict[str, Screen] = {
    "forward_simulation": forward_simulation.draw,
    "distinction": distinction.draw,
    "pairwise_preference": preference.draw,
    "rating": rating.draw,
}

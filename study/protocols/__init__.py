"""Protocol registry: one module per protocol, one entry here."""

from __future__ import annotations

from study.protocols import distinction, forward_simulation, preference, rating
from study.protocols.base import Item, Protocol, Trial

REGISTRY: dict[str, Protocol] = {
    p.PROTOCOL.name: p.PROTOCOL for p in (forward_simulation, distinction, preference, rating)
}


def get(name: str) -> Protocol:
    """The protocol registered as `name` (KeyError if unknown)."""
    return REGISTRY[name]


__all__ = ["REGISTRY", "Item", "Protocol", "Trial", "get"]

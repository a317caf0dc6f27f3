"""Saliency methods: one registry (:data:`REGISTRY`), one contract (:class:`SaliencyMethod`).

The registry lists every method by name without importing it (:mod:`.registry`); a method's
module is imported when the method is first looked up. Add a module, call ``register`` in it,
and list its name in ``registry.METHODS``. The contract's names are imported from :mod:`.base`
on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .registry import ALIASES, METHODS, REGISTRY, get_method, load_all, register

_BASE = ("ExplainContext", "MethodOutput", "MethodParams", "SaliencyMethod", "explain", "explain_progressive",
         "to_frame")

__all__ = [
    "ALIASES", "METHODS", "REGISTRY", "ExplainContext", "MethodOutput", "MethodParams", "SaliencyMethod",
    "explain", "explain_progressive", "get_method", "load_all", "register", "to_frame",
]


def __getattr__(name: str) -> Any:
    if name not in _BASE:
        raise AttributeError(f"module 'convis_core.methods' has no attribute '{name}'")
    value = getattr(importlib.import_module(".base", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .base import (
        ExplainContext,
        MethodOutput,
        MethodParams,
        SaliencyMethod,
        explain,
        explain_progressive,
        to_frame,
    )

"""The one registry of saliency methods, readable without importing any method.

:data:`METHODS` lists every method's registry name in registry order (what pages and the command
line list) with the module that defines it. :data:`REGISTRY` maps names to method objects and
imports a method's module (and so torch, open_clip or Grad-CAM) the first time that method is
looked up, so listing names costs nothing. A method module calls :func:`register` for its class;
its aliases are declared there.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..errors import ConvisError

if TYPE_CHECKING:
    from .base import SaliencyMethod

#: registry name -> module of ``convis_core.methods`` that registers it (registry order)
METHODS: dict[str, str] = {
    "convis_grid": "convis_methods",
    "convis_stochastic": "convis_methods",
    "gradcam": "gradcam",
    "attention_relevance": "attention_relevance",
    "rise": "rise",
    "occlusion": "occlusion",
    "patch_similarity": "patch_similarity",
    "random": "baselines",
    "centre": "baselines",
}

_loaded: dict[str, SaliencyMethod] = {}
_aliases: dict[str, str] = {}


def _load(module: str) -> None:
    try:
        importlib.import_module(f"{__package__}.{module}")
    except ImportError as e:
        names = ", ".join(n for n, m in METHODS.items() if m == module)
        raise ConvisError(f"method {names} is unavailable here: {e}") from e


def load_all() -> None:
    """Import every method's module (what listing labels, parameters or aliases needs)."""
    for module in dict.fromkeys(METHODS.values()):
        _load(module)


class _Registry(Mapping):
    """name -> method object, importing the method's module on first lookup."""

    def __getitem__(self, name: str) -> SaliencyMethod:
        if name not in METHODS:
            raise KeyError(name)
        if name not in _loaded:
            _load(METHODS[name])
        if name not in _loaded:
            raise RuntimeError(f"module {METHODS[name]} did not register method {name}")
        return _loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(METHODS)

    def __len__(self) -> int:
        return len(METHODS)

    def __contains__(self, name: object) -> bool:
        return name in METHODS

    def __repr__(self) -> str:
        return f"REGISTRY({', '.join(METHODS)})"


class _Aliases(Mapping):
    """alias -> registry name (every method module is imported on first use)."""

    def __getitem__(self, alias: str) -> str:
        load_all()
        return _aliases[alias]

    def __iter__(self) -> Iterator[str]:
        load_all()
        return iter(dict(_aliases))

    def __len__(self) -> int:
        load_all()
        return len(_aliases)


REGISTRY: Mapping[str, SaliencyMethod] = _Registry()
ALIASES: Mapping[str, str] = _Aliases()


def register(cls: type[SaliencyMethod], aliases: tuple[str, ...] = ()) -> type[SaliencyMethod]:
    """Add a method class to the registry (its name must be listed in :data:`METHODS`)."""
    if cls.name not in METHODS:
        raise ValueError(f"method {cls.name} is not listed in convis_core.methods.registry.METHODS")
    if cls.name in _loaded:
        raise ValueError(f"method {cls.name} registered twice")
    _loaded[cls.name] = cls()
    for a in aliases:
        _aliases[a] = cls.name
    return cls


def get_method(name: str) -> SaliencyMethod:
    """The method called ``name`` (a registry name or an alias)."""
    if name not in METHODS:
        name = ALIASES.get(name, name)
    if name not in METHODS:
        raise ConvisError(f"unknown method '{name}' (known: {', '.join(METHODS)})")
    return REGISTRY[name]

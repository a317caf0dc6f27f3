"""ConVis engine: explain CLIP with WordNet concepts (Giulivi & Boracchi 2024, arXiv 2405.14563).

Public API::

    from convis_core import load_model, explain, render_png, top_concepts, concept_scores
    model = load_model("shapes-world")                 # or ("ViT-B-32-quickgelu", "openai")
    result = explain(model, "photo.jpg", "dog.n.01", method="convis_grid")
    png = render_png(result, "photo.jpg", style="whitefade")

Names are imported from their modules on first use (PEP 562), so ``import convis_core`` and the
command line's ``--help`` do not pay for torch, open_clip or Grad-CAM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("BankSpec", "ConceptBank", "bank_embeddings", "build_bank", "get_bank"), "bank"),
    **dict.fromkeys(("ConceptHit", "concept_scores", "image_embedding", "top_concepts"), "concepts"),
    **dict.fromkeys(("ConVisEngine", "GridParams", "StochasticParams"), "convis"),
    **dict.fromkeys(("ConvisError", "EmptyConceptError", "InvalidImageError", "UnknownConceptError",
                     "UnsupportedModelError", "WeightsUnavailableError"), "errors"),
    **dict.fromkeys(("ImageFrame", "LoadedImage", "load_image", "open_image"), "images"),
    **dict.fromkeys(("REGISTRY", "SaliencyMethod", "explain", "explain_progressive", "get_method"), "methods"),
    **dict.fromkeys(("ClipModel", "load_model", "load_model_cached"), "models"),
    **dict.fromkeys(("STYLES", "render", "render_png"), "render"),
    "SaliencyResult": "result",
    **dict.fromkeys(("Synset", "nouns"), "wordnet"),
}

__all__ = [
    "REGISTRY", "STYLES", "BankSpec", "ClipModel", "ConVisEngine", "ConceptBank", "ConceptHit",
    "ConvisError", "EmptyConceptError", "GridParams", "ImageFrame", "InvalidImageError",
    "LoadedImage", "SaliencyMethod", "SaliencyResult", "StochasticParams", "Synset",
    "UnknownConceptError", "UnsupportedModelError", "WeightsUnavailableError", "bank_embeddings",
    "build_bank", "concept_scores", "explain", "explain_progressive", "get_bank", "get_method",
    "image_embedding", "load_image", "load_model", "load_model_cached", "nouns", "open_image",
    "render", "render_png", "top_concepts",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'convis_core' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .bank import BankSpec, ConceptBank, bank_embeddings, build_bank, get_bank
    from .concepts import ConceptHit, concept_scores, image_embedding, top_concepts
    from .convis import ConVisEngine, GridParams, StochasticParams
    from .errors import (
        ConvisError,
        EmptyConceptError,
        InvalidImageError,
        UnknownConceptError,
        UnsupportedModelError,
        WeightsUnavailableError,
    )
    from .images import ImageFrame, LoadedImage, load_image, open_image
    from .methods import REGISTRY, SaliencyMethod, explain, explain_progressive, get_method
    from .models import ClipModel, load_model, load_model_cached
    from .render import STYLES, render, render_png
    from .result import SaliencyResult
    from .wordnet import Synset, nouns

"""ConVis engine: explain CLIP with WordNet concepts (Giulivi & Boracchi 2024, arXiv 2405.14563).

Public API::

    from convis_core import load_model, explain, render_png, top_concepts, concept_scores
    model = load_model("shapes-world")                 # or ("ViT-B-32-quickgelu", "openai")
    result = explain(model, "photo.jpg", "dog.n.01", method="convis_grid")
    png = render_png(result, "photo.jpg", style="whitefade")
"""

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

__all__ = [
    "REGISTRY", "STYLES", "BankSpec", "ClipModel", "ConVisEngine", "ConceptBank", "ConceptHit",
    "ConvisError", "EmptyConceptError", "GridParams", "ImageFrame", "InvalidImageError",
    "LoadedImage", "SaliencyMethod", "SaliencyResult", "StochasticParams", "Synset",
    "UnknownConceptError", "UnsupportedModelError", "WeightsUnavailableError", "bank_embeddings",
    "build_bank", "concept_scores", "explain", "explain_progressive", "get_bank", "get_method", "image_embedding",
    "load_image", "load_model", "load_model_cached", "nouns", "open_image", "render", "render_png",
    "top_concepts",
]

"""Saliency methods: one registry (:data:`REGISTRY`), one contract (:class:`SaliencyMethod`).

Importing this package registers every method; add a module and import it here.
"""

# isort: off
# Import order is registry order (what pages and the CLI list): ConVis, then the baselines.
from . import convis_methods  # noqa: F401  (registers convis_grid, convis_stochastic)
from . import gradcam, attention_relevance, rise, occlusion, patch_similarity, baselines  # noqa: F401
# isort: on
from .base import (
    ALIASES,
    REGISTRY,
    ExplainContext,
    MethodOutput,
    MethodParams,
    SaliencyMethod,
    explain,
    explain_progressive,
    get_method,
    register,
    to_frame,
)

__all__ = [
    "ALIASES", "REGISTRY", "ExplainContext", "MethodOutput", "MethodParams", "SaliencyMethod",
    "explain", "explain_progressive", "get_method", "register", "to_frame",
]

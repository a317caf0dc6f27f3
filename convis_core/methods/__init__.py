"""Saliency methods: one registry (:data:`REGISTRY`), one contract (:class:`SaliencyMethod`).

Importing this package registers every method; add a module and import it here.
"""

from . import (  # noqa: F401  (the baselines register themselves)
    attention_relevance,
    baselines,
    convis_methods,  # noqa: F401  (registers convis_grid, convis_stochastic)
    gradcam,
    occlusion,
    patch_similarity,
    rise,
)
from .base import (
    ALIASES,
    REGISTRY,
    ExplainContext,
    MethodOutput,
    MethodParams,
    SaliencyMethod,
    explain,
    get_method,
    register,
    to_frame,
)

__all__ = [
    "ALIASES", "REGISTRY", "ExplainContext", "MethodOutput", "MethodParams", "SaliencyMethod",
    "explain", "get_method", "register", "to_frame",
]

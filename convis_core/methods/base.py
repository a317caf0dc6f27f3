"""The contract every saliency method follows, and the one registry that lists them.

A method subclasses :class:`SaliencyMethod`, declares a pydantic ``Params`` model and implements
``compute`` returning a map where higher means "more of the concept", at any resolution. The
base class owns everything else, the same for every method: parameter validation, support
checks, upsampling to the 224x224 frame (bilinear), min-max normalisation to float32 [0, 1],
timings and metadata.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError

from ..bank import ConceptBank, get_bank
from ..errors import ConvisError, UnsupportedModelError
from ..images import FRAME, ImageInput, LoadedImage, load_image
from ..models import ClipModel
from ..result import SaliencyResult, normalise
from ..wordnet import Synset, nouns
from .registry import ALIASES, REGISTRY, get_method, register

__all__ = ["ALIASES", "REGISTRY", "ExplainContext", "MethodOutput", "MethodParams", "SaliencyMethod", "explain",
           "explain_progressive", "get_method", "register", "to_frame"]

Progress = Callable[[int, int], None]


class MethodParams(BaseModel):
    """Base of every method's parameters: unknown names are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ExplainContext:
    """Everything a method may need about one explanation request."""

    model: ClipModel
    image: LoadedImage
    concept: Synset
    bank_spec: str = "all"
    text_mode: str = "definitions"
    prompt: str | None = None
    progress: Progress | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def bank(self) -> ConceptBank:
        return get_bank(self.bank_spec, self.text_mode)

    @property
    def concept_text(self) -> str:
        """The text the target compares with: the synset's definition, or ``prompt`` filled in
        with ``{lemma}`` (first lemma, spaces) and ``{definition}``."""
        if self.prompt:
            return self.prompt.format(lemma=self.concept.label, definition=self.concept.definition)
        return self.concept.definition

    @cached_property
    def text_embedding(self) -> torch.Tensor:
        """L2-normalised embedding of :attr:`concept_text`, ``(d,)``."""
        return self.model.encode_texts([self.concept_text])[0]

    def frame_tensor(self) -> torch.Tensor:
        """The 224x224 frame through CLIP's preprocessing, ``(1, 3, s, s)`` on the model's device."""
        pil = Image.fromarray(self.image.pixels)
        return self.model.preprocess_pil([pil]).to(self.model.device, self.model.dtype)


@dataclass
class MethodOutput:
    """What ``compute`` returns: a raw map (higher = more concept) and anything extra."""

    map: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class SaliencyMethod(ABC):
    """Base class of all methods; see the module docstring."""

    name: ClassVar[str]
    label: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    uses_bank: ClassVar[bool] = False
    is_baseline: ClassVar[bool] = False

    def unsupported_reason(self, model: ClipModel) -> str | None:
        """Why this method cannot explain ``model`` (``None`` when it can)."""
        return None

    @abstractmethod
    def compute(self, ctx: ExplainContext, params: Any) -> MethodOutput:
        """The raw map for ``ctx``; higher = more of the concept."""

    def params(self, **kwargs: Any) -> MethodParams:
        try:
            return self.Params(**kwargs)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'params'}: {err['msg']}" for err in e.errors())
            raise ConvisError(f"invalid parameters for {self.name}: {problems}") from e

    def explain(self, ctx: ExplainContext, **kwargs: Any) -> SaliencyResult:
        """Run the method and wrap its map in the common result object."""
        params = self.checked_params(ctx, **kwargs)
        with ctx.model.lock:  # methods may hook or re-flag the shared model while they run
            t0 = time.perf_counter()
            out = self.compute(ctx, params)
            seconds = time.perf_counter() - t0
        return self.wrap(ctx, params, out, seconds)

    def explain_progressive(self, ctx: ExplainContext, **kwargs: Any) -> Iterator[SaliencyResult]:
        """Results as they become available, the faithful one last (``meta["stage"]``:
        ``"coarse"`` for a preview, ``"final"``). Methods without a preview yield one result."""
        r = self.explain(ctx, **kwargs)
        r.meta.setdefault("stage", "final")
        r.meta.setdefault("stage_label", f"{self.label}: the full map")
        yield r

    def checked_params(self, ctx: ExplainContext, **kwargs: Any) -> MethodParams:
        """Validated parameters, after checking that the method supports the model."""
        params = self.params(**kwargs)
        reason = self.unsupported_reason(ctx.model)
        if reason:
            raise UnsupportedModelError(f"{self.name} does not support {ctx.model.name}: {reason}")
        return params

    def wrap(self, ctx: ExplainContext, params: MethodParams, out: MethodOutput, seconds: float) -> SaliencyResult:
        """The common result object around a raw map: frame, normalisation, metadata."""
        m = normalise(to_frame(out.map))
        p = params.model_dump(mode="json")
        meta = {
            "method": self.name,
            "method_label": self.label,
            "concept": ctx.concept.name,
            "concept_definition": ctx.concept.definition,
            "params": p,
            "seed": p.get("seed"),
            "image_sha256": ctx.image.sha256,
            **ctx.model.identity,
            **(ctx.bank.identity if self.uses_bank else {"target_text": ctx.concept_text}),
            **out.meta,
        }
        meta["timings"] = {**out.meta.get("timings", {}), "total_s": seconds}
        meta["flat"] = bool(m.max() == m.min())
        return SaliencyResult(m, ctx.image.frame, meta, out.extras)

def to_frame(a: np.ndarray, size: int = FRAME) -> np.ndarray:
    """Upsample a map to ``(size, size)`` with bilinear interpolation (the one resampling used
    for every method)."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"a method returned a map of shape {a.shape}; expected 2-D")
    if a.shape == (size, size):
        return a
    t = torch.from_numpy(a)[None, None]
    return torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def _context(model: ClipModel, image: ImageInput | LoadedImage, concept: str, bank: str, text_mode: str,
             prompt: str | None, progress: Progress | None) -> ExplainContext:
    img = image if isinstance(image, LoadedImage) else load_image(image)
    return ExplainContext(model, img, nouns().synset(concept), bank, text_mode, prompt, progress)


def explain(
    model: ClipModel,
    image: ImageInput | LoadedImage,
    concept: str,
    method: str = "convis_grid",
    bank: str = "all",
    text_mode: str = "definitions",
    prompt: str | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> SaliencyResult:
    """Explain ``concept`` (a WordNet noun synset name) on ``image`` with a registered method.

    Returns a :class:`SaliencyResult`: a 224x224 float32 map in [0, 1] over the centre-cropped
    frame, with metadata (method, parameters, model identity, bank, seed, timings, and the
    ``random_weights`` flag).
    """
    m = get_method(method)
    return m.explain(_context(model, image, concept, bank, text_mode, prompt, progress), **params)


def explain_progressive(
    model: ClipModel,
    image: ImageInput | LoadedImage,
    concept: str,
    method: str = "convis_grid",
    bank: str = "all",
    text_mode: str = "definitions",
    prompt: str | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> Iterator[SaliencyResult]:
    """Like :func:`explain`, but yields a quick preview first where the method has one.

    For ``convis_grid`` on an image whose crops are not cached yet, the first result is the map
    from the boxes on the grid of twice the stride (``meta["stage"] == "coarse"``, about a quarter
    of the crops, computed first), the last the faithful map (``"final"``, the same bits as
    :func:`explain`); ``meta["stage_label"]`` says what each is. Otherwise it yields only the
    final result. Bad input fails at the first ``next()``, as :func:`explain` fails.
    """
    m = get_method(method)
    yield from m.explain_progressive(_context(model, image, concept, bank, text_mode, prompt, progress), **params)

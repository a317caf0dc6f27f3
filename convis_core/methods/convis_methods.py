"""ConVis ``grid`` and ``stochastic`` as registry entries.

Their parameter models are generated from the engine's own parameter dataclasses, so defaults and
names live in one place (:class:`~convis_core.convis.GridParams`, ``StochasticParams``).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar

from pydantic import create_model

from ..convis import ConVisEngine, GridParams, StochasticParams
from ..errors import ConvisError
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register

_ENGINES: dict[tuple[str, str], ConVisEngine] = {}
_KEEP = ("crops", "leaves_in_bank", "timings")


def engine_for(ctx: ExplainContext) -> ConVisEngine:
    """One engine (and so one set of per-image caches) per model and bank."""
    key = (ctx.model.key, ctx.bank.key)
    if key not in _ENGINES:
        if len(_ENGINES) >= 4:
            _ENGINES.pop(next(iter(_ENGINES)))
        _ENGINES[key] = ConVisEngine(ctx.model, ctx.bank)
    return _ENGINES[key]


def params_model(dc: type) -> type[MethodParams]:
    """A pydantic parameter model with the fields, types and defaults of an engine dataclass."""
    hints = typing.get_type_hints(dc)
    fields: dict[str, Any] = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(dc)}
    return create_model(f"{dc.__name__}Args", __base__=MethodParams, **fields)


class _ConVisMethod(SaliencyMethod):
    engine_params: ClassVar[type]
    run: ClassVar[str]
    uses_bank = True

    def compute(self, ctx: ExplainContext, params: MethodParams) -> MethodOutput:
        try:
            p = self.engine_params(**params.model_dump())
        except ValueError as e:
            raise ConvisError(f"invalid parameters for {self.name}: {e}") from e
        r = getattr(engine_for(ctx), self.run)(ctx.image, ctx.concept.name, p, ctx.progress)
        return MethodOutput(r.map, r.extras, {k: r.meta[k] for k in _KEEP})


class ConVisGrid(_ConVisMethod):
    name = "convis_grid"
    label = "ConVis (grid)"
    summary = "WordNet-rank saliency over a 2-scale sliding-box grid (Giulivi & Boracchi 2024, Alg. 1)"
    Params = params_model(GridParams)
    engine_params = GridParams
    run = "grid"


class ConVisStochastic(_ConVisMethod):
    name = "convis_stochastic"
    label = "ConVis (stochastic)"
    summary = "WordNet-rank saliency from 600 adaptively sampled boxes (Giulivi & Boracchi 2024)"
    Params = params_model(StochasticParams)
    engine_params = StochasticParams
    run = "stochastic"


register(ConVisGrid, aliases=("grid", "convis"))
register(ConVisStochastic, aliases=("stochastic",))

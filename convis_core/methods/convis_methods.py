"""ConVis ``grid`` and ``stochastic`` as registry entries.

Their parameter models are generated from the engine's own parameter dataclasses, so defaults and
names live in one place (:class:`~convis_core.convis.GridParams`, ``StochasticParams``).
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import create_model

from ..convis import ConVisEngine, GridParams, StochasticParams
from ..errors import ConvisError
from ..result import SaliencyResult
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register

_ENGINES: dict[tuple[str, str], ConVisEngine] = {}
_KEEP = ("crops", "leaves_in_bank", "timings", "stage", "stage_label")


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

    def engine_args(self, params: MethodParams) -> Any:
        try:
            return self.engine_params(**params.model_dump())
        except ValueError as e:
            raise ConvisError(f"invalid parameters for {self.name}: {e}") from e

    def compute(self, ctx: ExplainContext, params: MethodParams) -> MethodOutput:
        r = getattr(engine_for(ctx), self.run)(ctx.image, ctx.concept.name, self.engine_args(params), ctx.progress)
        return _output(r)


def _output(r: SaliencyResult) -> MethodOutput:
    return MethodOutput(r.map, r.extras, {k: r.meta[k] for k in _KEEP if k in r.meta})


class ConVisGrid(_ConVisMethod):
    name = "convis_grid"
    label = "ConVis (grid)"
    summary = "WordNet-rank saliency over a 2-scale sliding-box grid (Giulivi & Boracchi 2024, Alg. 1)"
    Params = params_model(GridParams)
    engine_params = GridParams
    run = "grid"

    def explain_progressive(self, ctx: ExplainContext, **kwargs: Any) -> Iterator[SaliencyResult]:
        """The coarse preview (cold images only), then the final map; see
        :meth:`ConVisEngine.grid_progressive`. The model's lock is held while each stage
        computes, not while the caller looks at a result."""
        params = self.checked_params(ctx, **kwargs)
        grid = self.engine_args(params)
        seconds = 0.0
        stages = engine_for(ctx).grid_progressive(ctx.image, ctx.concept.name, grid, ctx.progress)
        while True:
            with ctx.model.lock:
                t0 = time.perf_counter()
                r = next(stages, None)
                seconds += time.perf_counter() - t0
            if r is None:
                return
            yield self.wrap(ctx, params, _output(r), seconds)


class ConVisStochastic(_ConVisMethod):
    name = "convis_stochastic"
    label = "ConVis (stochastic)"
    summary = "WordNet-rank saliency from 600 adaptively sampled boxes (Giulivi & Boracchi 2024)"
    Params = params_model(StochasticParams)
    engine_params = StochasticParams
    run = "stochastic"


register(ConVisGrid, aliases=("grid", "convis"))
register(ConVisStochastic, aliases=("stochastic",))

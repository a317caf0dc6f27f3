"""ConVis ``grid`` and ``stochastic`` as registry entries."""

from __future__ import annotations

from ..convis import ConVisEngine, GridParams, StochasticParams
from .base import ExplainContext, MethodOutput, MethodParams, SaliencyMethod, register

_ENGINES: dict[tuple[str, str], ConVisEngine] = {}


def engine_for(ctx: ExplainContext) -> ConVisEngine:
    """One engine (and so one set of per-image caches) per model and bank."""
    key = (ctx.model.key, ctx.bank.key)
    if key not in _ENGINES:
        if len(_ENGINES) >= 4:
            _ENGINES.pop(next(iter(_ENGINES)))
        _ENGINES[key] = ConVisEngine(ctx.model, ctx.bank)
    return _ENGINES[key]


class GridArgs(MethodParams):
    box_sizes: tuple[int, ...] = (128, 64)
    stride: int = 16
    pad: int = 128
    seed: int = 0
    scoring: str = "rank"


class StochasticArgs(MethodParams):
    iterations: int = 600
    box_sizes: tuple[int, int] = (128, 64)
    switch_at: int = 300
    restart_every: int = 100
    step: float = 0.002
    pad: int = 128
    seed: int = 0


def _convert(cls, args: MethodParams):
    try:
        return cls(**args.model_dump())
    except ValueError as e:
        from ..errors import ConvisError

        raise ConvisError(str(e)) from e


class ConVisGrid(SaliencyMethod):
    name = "convis_grid"
    label = "ConVis (grid)"
    summary = "WordNet-rank saliency over a 2-scale sliding-box grid (Giulivi & Boracchi 2024, Alg. 1)"
    Params = GridArgs
    uses_bank = True

    def compute(self, ctx: ExplainContext, params: GridArgs) -> MethodOutput:
        r = engine_for(ctx).grid(ctx.image, ctx.concept.name, _convert(GridParams, params), ctx.progress)
        keep = ("crops", "leaves_in_bank", "timings")
        return MethodOutput(r.map, r.extras, {k: r.meta[k] for k in keep})


class ConVisStochastic(SaliencyMethod):
    name = "convis_stochastic"
    label = "ConVis (stochastic)"
    summary = "WordNet-rank saliency from 600 adaptively sampled boxes (Giulivi & Boracchi 2024)"
    Params = StochasticArgs
    uses_bank = True

    def compute(self, ctx: ExplainContext, params: StochasticArgs) -> MethodOutput:
        r = engine_for(ctx).stochastic(ctx.image, ctx.concept.name, _convert(StochasticParams, params), ctx.progress)
        keep = ("crops", "leaves_in_bank", "timings")
        return MethodOutput(r.map, r.extras, {k: r.meta[k] for k in keep})


register(ConVisGrid, aliases=("grid", "convis"))
register(ConVisStochastic, aliases=("stochastic",))

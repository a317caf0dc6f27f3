"""Forward simulation (simulatability): predict what CLIP does from the image and the maps.

task "top1": which of the candidate concepts does CLIP rank highest for the image?
task "match": does CLIP rank the named concept highest among the candidates (yes/no)?
The no-explanation control shows the same trial without maps.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from study.protocols.base import Item, Protocol, Strict, StrictAnswer, Trial, check_choice, choose


class Config(Strict):
    task: Literal["top1", "match"] = "top1"
    n_candidates: int = Field(4, ge=2, le=8)
    confidence_scale: int = Field(0, ge=0, le=7, description="0: no confidence rating")


class Answer(StrictAnswer):
    choice: str | None = Field(None, max_length=120)
    match: bool | None = None
    confidence: int | None = Field(None, ge=1, le=7)


class ForwardSimulation(Protocol):
    name = "forward_simulation"
    Config = Config
    Answer = Answer
    supports_control = True

    def candidates(self, cfg: Config, concepts: list[str], image: str, rng: np.random.Generator) -> list[str]:
        return sorted(rng.choice(concepts, size=min(cfg.n_candidates, len(concepts)), replace=False).tolist())

    def build(self, cfg: Config, item: Item, arm: tuple[str, ...], rng: np.random.Generator) -> Trial:
        method = arm[0]
        shown = list(rng.permutation(list(item.candidates)))
        content: dict[str, Any] = {"task": cfg.task, "image": item.image, "image_file": item.image_file,
                                   "method": method, "candidates": shown, "confidence_scale": cfg.confidence_scale}
        if cfg.task == "top1":
            content["maps"] = {} if method == "none" else {c: item.maps[(c, method)] for c in shown}
            return Trial(content, {"truth": item.top})
        named = item.top if rng.random() < 0.5 else str(rng.choice([c for c in item.candidates if c != item.top]))
        content["concept"] = named
        content["maps"] = {} if method == "none" else {named: item.maps[(named, method)]}
        return Trial(content, {"truth": named == item.top, "top": item.top})

    def check(self, content: dict[str, Any], answer: dict[str, Any]) -> None:
        from study.errors import InvalidAnswer

        if content["task"] == "top1":
            if answer["choice"] is None or answer["match"] is not None:
                raise InvalidAnswer("forward_simulation/top1: answer needs 'choice' (and no 'match')")
            check_choice(answer["choice"], content["candidates"])
        elif answer["match"] is None or answer["choice"] is not None:
            raise InvalidAnswer("forward_simulation/match: answer needs 'match' (true/false)")
        scale = content["confidence_scale"]
        if scale and (answer["confidence"] is None or answer["confidence"] > scale):
            raise InvalidAnswer(f"confidence must be an integer from 1 to {scale}")
        if not scale and answer["confidence"] is not None:
            raise InvalidAnswer("this trial asks no confidence rating")

    def score(self, trial: Trial, answer: dict[str, Any]) -> tuple[bool | None, dict[str, Any] | None]:
        if trial.content["task"] == "top1":
            return answer["choice"] == trial.key["truth"], None
        return answer["match"] == trial.key["truth"], None

    def bot_answer(self, trial: Trial, p_correct: float, rng: np.random.Generator) -> dict[str, Any]:
        c = trial.content
        conf = int(rng.integers(1, c["confidence_scale"] + 1)) if c["confidence_scale"] else None
        if c["task"] == "top1":
            return {"choice": choose(c["candidates"], trial.key["truth"], p_correct, rng), "confidence": conf}
        truth = bool(trial.key["truth"])
        return {"match": truth if rng.random() < p_correct else not truth, "confidence": conf}


PROTOCOL = ForwardSimulation()

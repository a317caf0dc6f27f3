"""Distinction (HIVE, Kim et al. 2022): candidate concepts, each with its map; pick the one CLIP
predicts (ranks highest) and rate confidence. Needs maps, so no no-explanation control."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from study.errors import InvalidAnswer
from study.protocols.base import Item, Protocol, Strict, StrictAnswer, Trial, check_choice, choose


class Config(Strict):
    n_candidates: int = Field(4, ge=2, le=8)
    confidence_scale: int = Field(4, ge=2, le=7)
    show_image: bool = True


class Answer(StrictAnswer):
    choice: str = Field(max_length=120)
    confidence: int = Field(ge=1, le=7)


class Distinction(Protocol):
    name = "distinction"
    Config = Config
    Answer = Answer

    def candidates(self, cfg: Config, concepts: list[str], image: str, rng: np.random.Generator) -> list[str]:
        return sorted(rng.choice(concepts, size=min(cfg.n_candidates, len(concepts)), replace=False).tolist())

    def build(self, cfg: Config, item: Item, arm: tuple[str, ...], rng: np.random.Generator) -> Trial:
        method = arm[0]
        shown = list(rng.permutation(list(item.candidates)))
        content = {"image": item.image, "image_file": item.image_file if cfg.show_image else None,
                   "method": method, "candidates": shown,
                   "maps": {c: item.maps[(c, method)] for c in shown},
                   "confidence_scale": cfg.confidence_scale}
        return Trial(content, {"truth": item.top, "truth_position": shown.index(item.top)})

    def check(self, content: dict[str, Any], answer: dict[str, Any]) -> None:
        check_choice(answer["choice"], content["candidates"])
        if answer["confidence"] > content["confidence_scale"]:
            raise InvalidAnswer(f"confidence must be from 1 to {content['confidence_scale']}")

    def score(self, trial: Trial, answer: dict[str, Any]) -> tuple[bool | None, dict[str, Any] | None]:
        return answer["choice"] == trial.key["truth"], None

    def bot_answer(self, trial: Trial, p_correct: float, rng: np.random.Generator) -> dict[str, Any]:
        c = trial.content
        return {"choice": choose(c["candidates"], trial.key["truth"], p_correct, rng),
                "confidence": int(rng.integers(1, c["confidence_scale"] + 1))}


PROTOCOL = Distinction()

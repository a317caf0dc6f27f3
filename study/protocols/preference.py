"""Pairwise preference: two methods' maps for the same image and concept, in random left/right
order; which shows the concept better, and by how much (1 = slightly ... scale = much)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any, Literal

import numpy as np
from pydantic import Field

from study.errors import InvalidAnswer
from study.protocols.base import Item, Protocol, Strict, StrictAnswer, Trial


class Config(Strict):
    strength_scale: int = Field(3, ge=1, le=7)
    question: str = "Which map shows the concept better?"


class Answer(StrictAnswer):
    choice: Literal["left", "right"]
    strength: int = Field(1, ge=1, le=7)


class Preference(Protocol):
    name = "pairwise_preference"
    Config = Config
    Answer = Answer
    scored = False
    min_methods = 2
    analysis = "bradley_terry"

    def arms(self, cfg: Config, methods: list[str], control: bool) -> list[tuple[str, ...]]:
        return list(combinations(methods, 2))

    def build(self, cfg: Config, item: Item, arm: tuple[str, ...], rng: np.random.Generator) -> Trial:
        left, right = (arm[0], arm[1]) if rng.random() < 0.5 else (arm[1], arm[0])
        concept = item.top
        content = {"image": item.image, "image_file": item.image_file, "concept": concept,
                   "question": cfg.question, "strength_scale": cfg.strength_scale,
                   "left": {"method": left, "map": item.maps[(concept, left)]},
                   "right": {"method": right, "map": item.maps[(concept, right)]}}
        return Trial(content, {"left": left, "right": right})

    def check(self, content: dict[str, Any], answer: dict[str, Any]) -> None:
        if answer["strength"] > content["strength_scale"]:
            raise InvalidAnswer(f"strength must be from 1 to {content['strength_scale']}")

    def score(self, trial: Trial, answer: dict[str, Any]) -> tuple[bool | None, dict[str, Any] | None]:
        side = answer["choice"]
        other = "right" if side == "left" else "left"
        return None, {"winner": trial.key[side], "loser": trial.key[other], "side": side}

    def bot_probability(self, content: dict[str, Any], accuracy: Callable[[str | None], float]) -> float:
        """Method strengths to P(left wins) = s_left / (s_left + s_right) (Bradley-Terry)."""
        sl, sr = accuracy(content["left"]["method"]), accuracy(content["right"]["method"])
        return sl / (sl + sr) if sl + sr > 0 else 0.5

    def bot_answer(self, trial: Trial, p_correct: float, rng: np.random.Generator) -> dict[str, Any]:
        """`p_correct` here is the probability of preferring the left method."""
        return {"choice": "left" if rng.random() < p_correct else "right",
                "strength": int(rng.integers(1, trial.content["strength_scale"] + 1))}


PROTOCOL = Preference()

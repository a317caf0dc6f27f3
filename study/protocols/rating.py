"""Rating: one map for the image's top concept; Likert items (e.g. "shows the concept")."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from study.errors import InvalidAnswer
from study.protocols.base import Item, Protocol, Strict, StrictAnswer, Trial

DEFAULT_ITEMS = {
    "shows_concept": "The highlighted regions show the concept.",
    "helps_trust": "This explanation would help me decide whether to trust the model.",
}


class Config(Strict):
    scale: int = Field(7, ge=2, le=11)
    items: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ITEMS), min_length=1)

    @field_validator("items")
    @classmethod
    def _ids(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not k.isidentifier()]
        if bad:
            raise ValueError(f"item ids must be identifiers (letters, digits, _): {bad}")
        return v


class Answer(StrictAnswer):
    ratings: dict[str, int] = Field(max_length=50)


class Rating(Protocol):
    name = "rating"
    Config = Config
    Answer = Answer
    scored = False
    analysis = "likert"

    def build(self, cfg: Config, item: Item, arm: tuple[str, ...], rng: np.random.Generator) -> Trial:
        method = arm[0]
        content = {"image": item.image, "image_file": item.image_file, "concept": item.top,
                   "method": method, "map": item.maps[(item.top, method)],
                   "scale": cfg.scale, "items": cfg.items}
        return Trial(content, {})

    def check(self, content: dict[str, Any], answer: dict[str, Any]) -> None:
        ratings = answer["ratings"]
        if set(ratings) != set(content["items"]):
            raise InvalidAnswer(f"ratings must answer exactly the items {sorted(content['items'])}")
        if any(not 1 <= v <= content["scale"] for v in ratings.values()):
            raise InvalidAnswer(f"ratings must be integers from 1 to {content['scale']}")

    def score(self, trial: Trial, answer: dict[str, Any]) -> tuple[bool | None, dict[str, Any] | None]:
        return None, dict(answer["ratings"])

    def bot_answer(self, trial: Trial, p_correct: float, rng: np.random.Generator) -> dict[str, Any]:
        """`p_correct` shifts ratings up: the mean rating is 1 + p_correct * (scale - 1)."""
        scale = trial.content["scale"]
        mean = 1 + p_correct * (scale - 1)
        return {"ratings": {k: int(np.clip(round(rng.normal(mean, 1.0)), 1, scale)) for k in trial.content["items"]}}


PROTOCOL = Rating()

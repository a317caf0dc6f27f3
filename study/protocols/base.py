"""What every protocol provides: a config model, an answer schema, pure trial building and scoring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from study.errors import InvalidAnswer


class Strict(BaseModel):
    """Base for configs and answers: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class StrictAnswer(BaseModel):
    """Base for answer schemas: unknown keys are errors and nothing is coerced ("false" is not a
    boolean, 3.0 and True are not integers)."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class Item:
    """One image as a protocol sees it; identical for every participant of a version."""

    image: str
    image_file: str
    candidates: tuple[str, ...]          # candidate concepts (fixed per image)
    ranking: tuple[str, ...]             # candidates sorted by the model's score, best first
    maps: dict[tuple[str, str], str] = field(default_factory=dict, compare=False)  # (concept, method) -> file

    @property
    def top(self) -> str:
        return self.ranking[0]


@dataclass(frozen=True)
class Trial:
    """A built trial: `content` is shown to the participant, `key` (truth) never leaves the server."""

    content: dict[str, Any]
    key: dict[str, Any]


class Protocol:
    """A protocol module registers one subclass instance; all methods are pure."""

    name: ClassVar[str]
    Config: ClassVar[type[Strict]]
    Answer: ClassVar[type[StrictAnswer]]
    supports_control: ClassVar[bool] = False
    scored: ClassVar[bool] = True   # has a correct answer
    min_methods: ClassVar[int] = 1  # methods a spec must list
    #: how results are analysed: "accuracy" (scored), "bradley_terry" (preferences) or "likert"
    analysis: ClassVar[str] = "accuracy"

    def arms(self, cfg: Strict, methods: list[str], control: bool) -> list[tuple[str, ...]]:
        """What one trial compares: one method per trial by default (plus the control, if any)."""
        arms = [(m,) for m in methods]
        return arms + [("none",)] if control else arms

    def candidates(self, cfg: Strict, concepts: list[str], image: str, rng: np.random.Generator) -> list[str]:
        """Candidate concepts of an image (fixed per image across participants)."""
        return list(concepts)

    def build(self, cfg: Strict, item: Item, arm: tuple[str, ...], rng: np.random.Generator) -> Trial:
        raise NotImplementedError

    def validate_answer(self, content: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        """Parse `answer` with the answer schema and check it against the trial content."""
        try:
            parsed = self.Answer.model_validate(answer).model_dump()
        except ValidationError as exc:
            raise InvalidAnswer(f"{self.name}: {_short(exc)}") from None
        self.check(content, parsed)
        return parsed

    def check(self, content: dict[str, Any], answer: dict[str, Any]) -> None:
        """Content-dependent checks (choice among the options shown, ...)."""

    def score(self, trial: Trial, answer: dict[str, Any]) -> tuple[bool | None, dict[str, Any] | None]:
        """(correct or None, extra score fields or None)."""
        raise NotImplementedError

    def bot_answer(self, trial: Trial, p_correct: float, rng: np.random.Generator) -> dict[str, Any]:
        """A simulated participant's answer, correct with probability `p_correct`."""
        raise NotImplementedError

    def bot_probability(self, content: dict[str, Any], accuracy: Callable[[str | None], float]) -> float:
        """The `p_correct` a simulated participant brings to this trial, from its accuracy per method."""
        return accuracy(content.get("method"))


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors())


def choose(options: list[str], correct: str, p_correct: float, rng: np.random.Generator) -> str:
    """Pick `correct` with probability `p_correct`, else a uniformly random wrong option."""
    if rng.random() < p_correct:
        return correct
    wrong = [o for o in options if o != correct]
    return str(rng.choice(wrong)) if wrong else correct


def check_choice(value: str, options: list[str]) -> None:
    if value not in options:
        raise InvalidAnswer(f"choice {value[:60]!r} is not one of the options shown")

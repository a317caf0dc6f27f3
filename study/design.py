"""Randomisation: conditions, Latin squares, and a participant's whole schedule from one seed.

Within-subject designs cross items × arms with a Latin square (image i gets arm (i + r) mod k
in row r) and order arms by a Williams design row, so method order is counterbalanced and no
participant sees an image twice. A schedule is a list of steps stored before the first trial.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from study import protocols
from study.protocols.base import Item
from study.spec import StudySpec
from study.stimuli import Manifest


def williams(k: int) -> list[list[int]]:
    """Williams design: k rows (2k for odd k) of 0..k-1, each arm follows each other arm equally often."""
    first = [0]
    lo, hi = 1, k - 1
    for j in range(1, k):
        if j % 2:
            first.append(lo)
            lo += 1
        else:
            first.append(hi)
            hi -= 1
    rows = [[(x + r) % k for x in first] for r in range(k)]
    return rows + [row[::-1] for row in rows] if k % 2 else rows


def conditions(spec: StudySpec) -> list[str]:
    """Condition labels for assignment: arm names (between) or Latin-square rows 'L0', 'L1', ... (within)."""
    arms = spec.arms()
    if spec.design.type == "between":
        return ["+".join(a) for a in arms]
    return [f"L{r}" for r in range(len(williams(len(arms))))]


def _derived_rng(*parts: Any) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def build_items(spec: StudySpec, manifest: Manifest) -> list[Item]:
    """Every image as an `Item` (candidates fixed by the design seed), sorted by image id."""
    proto = protocols.get(spec.protocol.name)
    cfg = spec.protocol_config()
    items = []
    for image_id in sorted(manifest.images):
        rng = _derived_rng(spec.design.seed, image_id)
        cands = proto.candidates(cfg, list(spec.concepts), image_id, rng)
        maps = {(s.concept, s.method): s.map for s in manifest.stimuli if s.image == image_id}
        items.append(Item(image_id, manifest.images[image_id].file, tuple(cands),
                          tuple(manifest.ranking(image_id, cands)), maps))
    return items


@dataclass(frozen=True)
class StepSpec:
    kind: str  # instructions | quiz | practice | trial | attention | questionnaire
    payload: dict[str, Any]


def _attention_step(rng: np.random.Generator, n: int) -> StepSpec:
    options = ["red", "green", "blue", "yellow"]
    target = str(rng.choice(options))
    content = {"prompt": f"This is an attention check. Please select “{target}”.",
               "options": list(rng.permutation(options)), "number": n}
    return StepSpec("attention", {"content": content, "key": {"truth": target}})


def build_schedule(spec: StudySpec, items: list[Item], condition: str, seed: int) -> list[StepSpec]:
    """The full, reproducible step list of one participant (pure: same inputs, same schedule)."""
    rng = np.random.default_rng(seed)
    proto = protocols.get(spec.protocol.name)
    cfg = spec.protocol_config()
    arms = spec.arms()
    steps = [StepSpec("instructions", {"content": {"text": spec.instructions}, "key": {}})]
    for i, q in enumerate(spec.quiz.questions):
        content = {"question": q.question, "options": list(rng.permutation(q.options)), "number": i}
        steps.append(StepSpec("quiz", {"content": content, "key": {"truth": q.answer}}))
    n_prac = spec.practice.trials
    practice_items, main_pool = items[:n_prac], items[n_prac:]
    if spec.design.type == "between":
        arm_of = tuple(condition.split("+"))
        chosen = [main_pool[i] for i in rng.choice(len(main_pool), size=spec.trials, replace=False)]
        plan = [(item, arm_of) for item in chosen]
    else:
        k = len(arms)
        r = int(condition.removeprefix("L"))
        order = williams(k)[r]
        fixed = main_pool[: spec.trials]
        by_arm: dict[int, list[Item]] = {a: [] for a in range(k)}
        for i, item in enumerate(fixed):
            by_arm[(i + r) % k].append(item)
        for a in by_arm:
            by_arm[a] = [by_arm[a][j] for j in rng.permutation(len(by_arm[a]))]
        plan = [(by_arm[order[j % k]].pop(), arms[order[j % k]]) for j in range(spec.trials)]
        arm_of = arms[order[0]]
    for j, item in enumerate(practice_items):
        trial = proto.build(cfg, item, arm_of if spec.design.type == "between" else arms[j % len(arms)], rng)
        steps.append(StepSpec("practice", _trial_payload(trial, item, j, spec.practice.feedback)))
    n_att = spec.attention_checks.count
    att_after = set(rng.choice(np.arange(1, spec.trials), size=min(n_att, spec.trials - 1), replace=False).tolist()) \
        if n_att and spec.trials > 1 else set()
    n_done = 0
    for j, (item, arm) in enumerate(plan):
        if j in att_after:
            steps.append(_attention_step(rng, n_done))
            n_done += 1
        trial = proto.build(cfg, item, arm, rng)
        steps.append(StepSpec("trial", _trial_payload(trial, item, j, False, arm)))
    for _ in range(n_att - n_done):
        steps.append(_attention_step(rng, n_done))
        n_done += 1
    if spec.questionnaire:
        content = {"items": [q.model_dump() for q in spec.questionnaire]}
        steps.append(StepSpec("questionnaire", {"content": content, "key": {}}))
    return steps


def _trial_payload(trial: Any, item: Item, position: int, feedback: bool,
                   arm: tuple[str, ...] | None = None) -> dict[str, Any]:
    content = dict(trial.content)
    content["position"] = position
    content["feedback"] = feedback
    return {"content": content, "key": dict(trial.key), "item": item.image,
            "arm": "+".join(arm) if arm else None}

"""Data-quality flags and exclusion rules (pure functions over a participant's responses)."""

from __future__ import annotations

import json
from typing import Any

from study.spec import StudySpec


def quality_flags(spec: StudySpec, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """Flags of one participant: {flag: detail} for failed_attention, failed_quiz, too_fast,
    straightlining. `responses` rows need kind, correct, rt_ms, answer (in step order)."""
    flags: dict[str, Any] = {}
    att = [r for r in responses if r["kind"] == "attention"]
    need = spec.attention_checks.pass_min if spec.attention_checks.pass_min is not None else len(att)
    n_att_ok = sum(bool(r["correct"]) for r in att)
    if att and n_att_ok < need:
        flags["failed_attention"] = {"correct": n_att_ok, "of": len(att), "needed": need}
    quiz = [r for r in responses if r["kind"] == "quiz"]
    if quiz:
        share = sum(bool(r["correct"]) for r in quiz) / len(quiz)
        if share < spec.quiz.pass_mark:
            flags["failed_quiz"] = {"share_correct": round(share, 3), "pass_mark": spec.quiz.pass_mark}
    trials = [r for r in responses if r["kind"] == "trial"]
    if trials:
        fast = sum(r["rt_ms"] < spec.quality.too_fast_ms for r in trials) / len(trials)
        if fast > spec.quality.too_fast_fraction:
            flags["too_fast"] = {"share_fast": round(fast, 3), "threshold_ms": spec.quality.too_fast_ms}
        run = longest_run([_answer_signature(r) for r in trials])
        if run >= spec.quality.straightline_run:
            flags["straightlining"] = {"longest_identical_run": run}
    return flags


def _answer_signature(r: dict[str, Any]) -> str:
    """What repeats under straight-lining: the side/position chosen, or the rating pattern."""
    a, content = r["answer"], r.get("content") or {}
    if "choice" in a and "candidates" in content:
        return f"pos{content['candidates'].index(a['choice'])}" if a["choice"] in content["candidates"] else "?"
    if "ratings" in a:
        return json.dumps(a["ratings"], sort_keys=True)
    return json.dumps({k: v for k, v in a.items() if k != "confidence"}, sort_keys=True)


def longest_run(values: list[Any]) -> int:
    best = cur = 0
    prev = object()
    for v in values:
        cur = cur + 1 if v == prev else 1
        best, prev = max(best, cur), v
    return best


def exclusion_reasons(spec: StudySpec, flags: dict[str, Any]) -> list[str]:
    """The flags that the spec's `quality.exclude` rules turn into exclusions."""
    return [f for f in spec.quality.exclude if f in flags]

"""A study's steps exactly as a participant would receive them, without a database.

`preview_steps` builds the schedule of one condition with the same functions a real session uses
(`design.build_items`, `design.build_schedule`) and wraps each step as the runtime's `StepView`
(same content, same asset bytes, same trial numbering), so the researcher's preview draws what a
participant sees while writing nothing anywhere.
"""

from __future__ import annotations

from study.assets import allowed_files, step_assets
from study.design import build_items, build_schedule, conditions
from study.errors import StimulusError
from study.runtime import StepView
from study.spec import StudySpec
from study.stimuli import Manifest, load_manifest


def preview_manifest(spec: StudySpec) -> Manifest:
    """The spec's precomputed stimuli (`StimulusError` if they are not built yet)."""
    return load_manifest(spec.stimuli_dir(), verify=False)


def preview_steps(spec: StudySpec, condition: str | None = None, seed: int = 0,
                  manifest: Manifest | None = None) -> list[StepView]:
    """Consent, then every step of `condition` (default: the first) for a participant with `seed`."""
    manifest = manifest or preview_manifest(spec)
    conds = conditions(spec)
    condition = condition or conds[0]
    if condition not in conds:
        raise StimulusError(f"unknown condition {condition!r}; the study has {', '.join(conds)}")
    steps = build_schedule(spec, build_items(spec, manifest), condition, seed)
    folder, allowed = str(spec.stimuli_dir()), allowed_files(manifest)
    views = [StepView(-1, "consent", {"text": spec.consent, "title": spec.title}, len(steps), {}, spec.trials)]
    for i, step in enumerate(steps):
        content = step.payload["content"]
        number = int(content.get("position", 0)) + 1 if step.kind == "trial" else None
        views.append(StepView(i, step.kind, content, len(steps), step_assets(folder, allowed, content),
                              spec.trials, number))
    return views

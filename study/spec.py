"""The study spec: one YAML file validated with pydantic.

`load_spec(path)` reports every problem at once, each with its YAML line, its field path and,
where one exists, a suggested fix. `freeze(spec, manifest)` gives the canonical config and sha256
that a launched version stores.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from study import protocols
from study.config import data_dir
from study.errors import SpecError, StimulusError
from study.stimuli import Manifest, canonical_json, load_manifest

SYNSET = re.compile(r"^[a-z0-9][a-z0-9_.'\-]*\.[nvasr]\.\d{2}$")
FLAGS = ("failed_attention", "failed_quiz", "too_fast", "straightlining")
MAX_SPEC_BYTES = 1_000_000


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSpec(_M):
    file: str
    id: str | None = None
    label: str | None = None
    boxes: list[tuple[float, float, float, float]] = Field(default_factory=list)


class ImageFolder(_M):
    folder: str


class ShapesImages(_M):
    """Images from the Shapes world (`convis_core.shapes.render_scene`): known objects and boxes."""

    shapes: int = Field(ge=1, le=10_000, description="number of scenes")
    first_id: int | None = Field(None, ge=0, description="first scene id; default: the held-out test ids")
    n_objects: int | None = Field(None, ge=1, le=4, description="objects per scene; default 1-4 by scene id (at most the pool size)")
    pool: list[str] | None = Field(None, description="synsets to draw; default the study's Shapes concepts")


class StimuliSpec(_M):
    source: Literal["engine", "synthetic"] = "engine"
    dir: str | None = Field(None, description="stimulus folder; default <data>/stimuli/<study id>")
    model: str | None = Field(None, description="open_clip architecture; default $CONVIS_MODEL, else the "
                              "bundled Shapes-world toy model (shapes-world)")
    pretrained: str | None = Field(None, description="weights: an open_clip tag, a checkpoint path, 'bundled' "
                                   "or 'none' (random, flagged); default $CONVIS_PRETRAINED, else "
                                   "'bundled' for shapes-world and 'openai' otherwise")
    bank: str = Field("all", description="ConVis concept bank: all | subtree=ROOT.n.01 | words=coco80|FILE")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                              description="engine parameters per method, e.g. {convis: {stride: 32}}")
    style: Literal["whitefade", "heatmap", "raw"] = "whitefade"
    n_images: int = Field(24, ge=1, le=10_000, description="synthetic source only")
    seed: int = 0


class ProtocolSpec(_M):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class DesignSpec(_M):
    type: Literal["between", "within"] = "between"
    control: bool = Field(False, description="add a no-explanation condition")
    seed: int = 0


class PracticeSpec(_M):
    trials: int = Field(0, ge=0, le=20)
    feedback: bool = True


class AttentionSpec(_M):
    count: int = Field(0, ge=0, le=20)
    pass_min: int | None = Field(None, ge=0, description="correct checks needed; default all")


class QuizQuestion(_M):
    question: str
    options: list[str] = Field(min_length=2)
    answer: str


class QuizSpec(_M):
    questions: list[QuizQuestion] = Field(default_factory=list)
    pass_mark: float = Field(1.0, ge=0, le=1)
    screen_out: bool = Field(False, description="end the session with the screen-out code on failure")


class QuestionnaireItem(_M):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    text: str
    type: Literal["likert", "text", "choice"] = "likert"
    scale: int = Field(7, ge=2, le=11)
    options: list[str] = Field(default_factory=list)
    required: bool = True
    max_length: int = Field(1000, ge=1, le=5000)


class RecruitmentSpec(_M):
    platform: Literal["prolific", "anonymous"] = "prolific"
    completion_code: str = Field(pattern=r"^[A-Za-z0-9]{1,32}$")
    screenout_code: str | None = Field(None, pattern=r"^[A-Za-z0-9]{1,32}$")
    target_per_condition: int = Field(20, ge=1, description="consented sessions per condition")
    allow_anonymous: bool | None = Field(None, description="sessions without a Prolific id; default: "
                                         "only when platform is 'anonymous'")
    stop_when_full: bool = False
    max_starts_per_client: int | None = Field(5, ge=1, description="new sessions per client key (e.g. IP "
                                              "address) in 10 minutes; null: no limit (e.g. a lab behind one address)")

    @model_validator(mode="after")
    def _anonymous(self) -> RecruitmentSpec:
        if self.allow_anonymous is None:
            self.allow_anonymous = self.platform == "anonymous"
        elif self.platform == "anonymous" and not self.allow_anonymous:
            raise ValueError("platform 'anonymous' needs allow_anonymous: true")
        return self


class TimeLimits(_M):
    session_minutes: float = Field(60, gt=0, description="idle limit: minutes without an answer")
    total_minutes: float = Field(120, gt=0, description="hard limit: minutes from the start of the session")


class QualitySpec(_M):
    too_fast_ms: float = Field(400, ge=0)
    too_fast_fraction: float = Field(0.3, ge=0, le=1)
    straightline_run: int = Field(8, ge=2)
    exclude: list[Literal["failed_attention", "failed_quiz", "too_fast", "straightlining"]] = Field(
        default_factory=lambda: ["failed_attention"])


class BonusSpec(_M):
    per_correct: float = Field(0.0, ge=0)
    currency: str = "GBP"


class StudySpec(_M):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    title: str
    consent: str
    instructions: str
    stimuli: StimuliSpec = Field(default_factory=StimuliSpec)
    images: ImageFolder | ShapesImages | list[ImageSpec] | None = None
    concepts: list[str] = Field(min_length=1)
    methods: list[str] = Field(min_length=1)
    protocol: ProtocolSpec
    design: DesignSpec = Field(default_factory=DesignSpec)
    trials: int = Field(ge=1, le=500)
    practice: PracticeSpec = Field(default_factory=PracticeSpec)
    attention_checks: AttentionSpec = Field(default_factory=AttentionSpec)
    quiz: QuizSpec = Field(default_factory=QuizSpec)
    questionnaire: list[QuestionnaireItem] = Field(default_factory=list)
    recruitment: RecruitmentSpec
    time_limits: TimeLimits = Field(default_factory=TimeLimits)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    bonus: BonusSpec = Field(default_factory=BonusSpec)

    base_dir: str = Field("", exclude=True, description="folder of the YAML file (not part of the spec)")

    def protocol_config(self) -> BaseModel:
        return protocols.get(self.protocol.name).Config.model_validate(self.protocol.options)

    def stimuli_dir(self) -> Path:
        if self.stimuli.dir is None:
            return data_dir() / "stimuli" / self.id
        path = Path(self.stimuli.dir)
        return path if path.is_absolute() else Path(self.base_dir or ".") / path

    def arms(self) -> list[tuple[str, ...]]:
        proto = protocols.get(self.protocol.name)
        return proto.arms(self.protocol_config(), self.methods, self.design.control)

    def frozen(self, manifest_sha256: str) -> dict[str, Any]:
        """The canonical config stored with a launched version."""
        return {"spec": self.model_dump(mode="json"), "manifest_sha256": manifest_sha256}


def config_sha256(frozen: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(frozen).encode()).hexdigest()


# ---------------------------------------------------------------- YAML line numbers and hints
def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """Map every key path in the YAML document to its 1-based line."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = getattr(k, "value", None)
                index[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return index


def _line(index: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in index:
            return index[loc[:n]]
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec model that a location's last key belongs to (for 'did you mean' on unknown keys)."""
    model: Any = StudySpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is None or not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _unwrap(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return tp


def _suggest(word: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fmt(index: dict[tuple[Any, ...], int], loc: tuple[Any, ...], msg: str, hint: str = "") -> str:
    line = _line(index, loc)
    where = ".".join(str(p) for p in loc) or "(top level)"
    return f"line {line}: {where}: {msg}{hint}" if line else f"{where}: {msg}{hint}"


def _pydantic_problems(exc: ValidationError, index: dict[tuple[Any, ...], int], prefix: tuple[Any, ...] = ()) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p in {"list[ImageSpec]", "ImageFolder", "ShapesImages"}))
        hint = ""
        if err["type"] == "extra_forbidden":
            model = _model_at(loc) if not prefix else None
            fields = list(model.model_fields) if model else []
            hint = _suggest(loc[-1], fields) or (f"; allowed: {', '.join(fields)}" if fields else "")
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "literal_error":
            msg = err["msg"]
            hint = _suggest(err.get("input"), re.findall(r"'([^']+)'", err["msg"]))
        else:
            msg = err["msg"]
        problems.append(_fmt(index, loc, msg, hint))
    return sorted(set(problems), key=problems.index)


# ---------------------------------------------------------------- semantic checks
_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


@functools.lru_cache(maxsize=4)
def _wordnet_index(pos: str) -> dict[str, int] | None:
    """lemma -> number of senses, read from WordNet's `index.<pos>` (None if WordNet is absent)."""
    path = data_dir() / "nltk_data" / "corpora" / "wordnet" / f"index.{_POS_FILES[pos]}"
    if not path.is_file():
        return None
    out = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith(" "):
                parts = line.split(" ", 3)
                out[parts[0]] = int(parts[2])
    return out


def _wordnet_problem(concept: str) -> str | None:
    """Why `concept` is not a WordNet 3.0 synset name (with a suggestion), or None if it is."""
    lemma, pos, sense = concept.rsplit(".", 2)
    index = _wordnet_index(pos)
    if index is None:
        return None
    count = index.get(lemma.lower())
    if count is None:
        close = difflib.get_close_matches(lemma.lower(), list(index), n=1, cutoff=0.75)
        return f"unknown WordNet lemma {lemma!r}" + (f"; did you mean '{close[0]}.{pos}.01'?" if close else "")
    if not 1 <= int(sense) <= count:
        return f"{lemma!r} has {count} sense(s) as {_POS_FILES[pos]}; use {lemma}.{pos}.01 to {lemma}.{pos}.{count:02d}"
    return None


def _concept_problems(spec: StudySpec, index: dict[tuple[Any, ...], int], manifest: Manifest | None) -> list[str]:
    problems = []
    for i, concept in enumerate(spec.concepts):
        loc = ("concepts", i)
        if not SYNSET.match(concept):
            problems.append(_fmt(index, loc, f"{concept!r} is not a WordNet synset name like 'dog.n.01'"))
            continue
        if manifest is not None:
            if concept not in manifest.concepts:
                problems.append(_fmt(index, loc, f"concept {concept!r} is not in the stimulus manifest",
                                     _suggest(concept, manifest.concepts)))
            continue
        problem = _wordnet_problem(concept)
        if problem:
            problems.append(_fmt(index, loc, problem))
    for key in ("concepts", "methods"):
        values = getattr(spec, key)
        for v in sorted({v for v in values if values.count(v) > 1}):
            problems.append(_fmt(index, (key,), f"{v!r} is listed twice"))
    return problems


def _design_problems(spec: StudySpec, index: dict[tuple[Any, ...], int], manifest: Manifest | None) -> list[str]:
    problems = []
    proto = protocols.get(spec.protocol.name)
    if spec.design.control and not proto.supports_control:
        problems.append(_fmt(index, ("design", "control"),
                             f"protocol {proto.name!r} has no no-explanation control; set control: false"))
    if "none" in spec.methods:
        problems.append(_fmt(index, ("methods",), "'none' is reserved for the control; use design.control: true"))
    if len(spec.methods) < proto.min_methods:
        problems.append(_fmt(index, ("methods",), f"{proto.name} needs at least {proto.min_methods} methods"))
    n_cand = getattr(spec.protocol_config(), "n_candidates", 1)
    if n_cand > len(spec.concepts):
        problems.append(_fmt(index, ("protocol", "options", "n_candidates"),
                             f"{n_cand} candidates but only {len(spec.concepts)} concepts; lower n_candidates or add concepts"))
    if spec.design.type == "within":
        k = len(spec.arms())
        if k and spec.trials % k:
            problems.append(_fmt(index, ("trials",), f"within-subject Latin square needs a multiple of {k} trials "
                                 f"(one per arm); try {spec.trials + (-spec.trials) % k}"))
    for i, q in enumerate(spec.quiz.questions):
        if q.answer not in q.options:
            problems.append(_fmt(index, ("quiz", "questions", i, "answer"), f"{q.answer!r} is not one of the options",
                                 _suggest(q.answer, q.options)))
    ids = [q.id for q in spec.questionnaire]
    for v in sorted({v for v in ids if ids.count(v) > 1}):
        problems.append(_fmt(index, ("questionnaire",), f"item id {v!r} is used twice"))
    for i, q in enumerate(spec.questionnaire):
        if q.type == "choice" and len(q.options) < 2:
            problems.append(_fmt(index, ("questionnaire", i, "options"), "a choice item needs at least two options"))
    att = spec.attention_checks
    if att.pass_min is not None and att.pass_min > att.count:
        problems.append(_fmt(index, ("attention_checks", "pass_min"), f"pass_min {att.pass_min} > count {att.count}"))
    if manifest is not None:
        for i, m in enumerate(spec.methods):
            if m not in manifest.methods:
                problems.append(_fmt(index, ("methods", i), f"unknown method {m!r}: not in the stimulus manifest "
                                     f"(has {', '.join(manifest.methods)})", _suggest(m, manifest.methods)))
        needed = spec.trials + spec.practice.trials
        if len(manifest.images) < needed:
            problems.append(_fmt(index, ("trials",), f"{needed} trials incl. practice need {needed} distinct images; "
                                 f"the stimuli have {len(manifest.images)}"))
    elif spec.stimuli.source == "synthetic" and spec.stimuli.n_images < spec.trials + spec.practice.trials:
        problems.append(_fmt(index, ("stimuli", "n_images"),
                             f"need at least {spec.trials + spec.practice.trials} images (trials + practice)"))
    elif spec.stimuli.source == "engine":
        problems += _engine_problems(spec, index)
    return problems


def _engine_problems(spec: StudySpec, index: dict[tuple[Any, ...], int]) -> list[str]:
    """Checks of an engine-built stimulus set that need no model (the build checks the rest)."""
    problems = []
    needed = spec.trials + spec.practice.trials
    if spec.images is None:
        problems.append(_fmt(index, ("images",), "stimuli.source 'engine' needs images: a list of files, "
                             "{folder: DIR} or {shapes: N} (Shapes-world scenes)"))
    elif isinstance(spec.images, ShapesImages) and spec.images.shapes < needed:
        problems.append(_fmt(index, ("images", "shapes"), f"need at least {needed} scenes (trials + practice)"))
    elif isinstance(spec.images, list) and len(spec.images) < needed:
        problems.append(_fmt(index, ("images",), f"need at least {needed} images (trials + practice)"))
    for key in spec.stimuli.params:
        if key not in spec.methods:
            problems.append(_fmt(index, ("stimuli", "params", key), f"{key!r} is not one of the study's methods",
                                 _suggest(key, spec.methods)))
    return problems


def _try_manifest(spec: StudySpec) -> Manifest | None:
    try:
        return load_manifest(spec.stimuli_dir(), verify=False)
    except StimulusError:
        return None


def validate_text(text: str, source: str = "spec", base_dir: str | Path = ".",
                  manifest: Manifest | None = None, find_manifest: bool = True) -> StudySpec:
    """Parse and validate YAML text; raise `SpecError` listing every problem found.

    Concepts, methods and image counts are checked against `manifest`, else against the manifest
    found in the spec's stimulus folder (unless `find_manifest` is false: drafts, whose stimuli
    go to a folder of their own, `study.drafts`)."""
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise SpecError([f"file is larger than {MAX_SPEC_BYTES} bytes"], source)
    try:
        data = yaml.safe_load(text)
        index = _line_index(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError([f"{where}malformed YAML: {getattr(exc, 'problem', None) or exc}"], source) from None
    if not isinstance(data, dict):
        raise SpecError(["the file must be a YAML mapping (key: value lines)"], source)
    problems: list[str] = []
    proto_name = (data.get("protocol") or {}).get("name") if isinstance(data.get("protocol"), dict) else None
    if proto_name is not None and proto_name not in protocols.REGISTRY:
        problems.append(_fmt(index, ("protocol", "name"), f"unknown protocol {proto_name!r} "
                             f"(known: {', '.join(protocols.REGISTRY)})", _suggest(proto_name, list(protocols.REGISTRY))))
        data = {**data, "protocol": {**data["protocol"], "name": "rating", "options": {}}}
    elif proto_name is not None:
        try:
            protocols.get(proto_name).Config.model_validate(data["protocol"].get("options") or {})
        except ValidationError as exc:
            sub = _pydantic_problems(exc, index, ("protocol", "options"))
            fields = list(protocols.get(proto_name).Config.model_fields)
            problems += [p + (_suggest(p.split(":")[1].strip().split(".")[-1], fields) if "unknown field" in p else "")
                         for p in sub]
    try:
        spec = StudySpec.model_validate({**data, "base_dir": str(base_dir)})
    except ValidationError as exc:
        raise SpecError(problems + _pydantic_problems(exc, index), source) from None
    if problems:
        raise SpecError(problems, source)
    manifest = manifest or (_try_manifest(spec) if find_manifest else None)
    problems = _concept_problems(spec, index, manifest) + _design_problems(spec, index, manifest)
    if problems:
        raise SpecError(problems, source)
    return spec


def load_spec(path: str | Path, manifest: Manifest | None = None) -> StudySpec:
    """Read and validate a study YAML file (see `validate_text`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"cannot read: {exc}"], str(path)) from None
    return validate_text(text, str(path), path.resolve().parent, manifest)

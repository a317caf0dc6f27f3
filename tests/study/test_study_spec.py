"""Spec validation: every problem at once, with line, field and suggestion; freezing and versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.errors import SpecError
from study.spec import load_spec, validate_text
from study.versions import launch


def test_examples_validate() -> None:
    for path in sorted(Path("examples/studies").glob("*.yaml")):
        assert load_spec(path).id


def test_malformed_yaml_names_line() -> None:
    with pytest.raises(SpecError) as err:
        validate_text("id: x\ntitle: [unclosed\nconsent: y\n")
    assert "line 3" in str(err.value) and "malformed YAML" in str(err.value)


def test_all_structural_problems_at_once_with_lines_and_hints() -> None:
    text = ("id: demo\ntitle: T\nconsent: c\ninstructions: i\nconcepts: [dog.n.01]\nmethods: [grid]\n"
            "protocl: {name: x}\nprotocol:\n  name: forward_simulaton\ndesign:\n  type: betwen\ntrials: 0\n"
            "recruitment: {completion_code: ABC}\n")
    with pytest.raises(SpecError) as err:
        validate_text(text)
    probs = err.value.problems
    assert len(probs) == 4
    joined = "\n".join(probs)
    assert "line 7: protocl: unknown field; did you mean 'protocol'?" in joined
    assert "line 9: protocol.name" in joined and "did you mean 'forward_simulation'" in joined
    assert "line 11: design.type" in joined and "did you mean 'between'" in joined
    assert "line 12: trials" in joined


def test_unknown_method_and_concept_against_manifest(write_spec) -> None:
    path = write_spec(methods=["convis", "gradcm"], concepts=["dog.n.01", "cat.n.01", "car.n.01", "tree.n.01", "hose.n.01"])
    with pytest.raises(SpecError) as err:
        load_spec(path)
    joined = "\n".join(err.value.problems)
    assert "unknown method 'gradcm'" in joined and "did you mean 'gradcam'" in joined
    assert "concept 'hose.n.01' is not in the stimulus manifest" in joined and "'house.n.01'" in joined


def test_wordnet_and_design_checks(tmp_path) -> None:
    text = ("id: demo\ntitle: T\nconsent: c\ninstructions: i\nstimuli: {source: synthetic, dir: " + str(tmp_path / "none")
            + ", n_images: 8}\nconcepts: [dog.n.99, notasynset, dog.n.01]\nmethods: [convis]\n"
            "protocol: {name: distinction, options: {n_candidates: 4}}\ndesign: {control: true}\ntrials: 6\n"
            "practice: {trials: 4}\nquiz: {questions: [{question: q, options: [a, b], answer: c}]}\n"
            "recruitment: {completion_code: ABC}\n")
    with pytest.raises(SpecError) as err:
        validate_text(text)
    joined = "\n".join(err.value.problems)
    assert "'notasynset' is not a WordNet synset name" in joined
    assert "has no no-explanation control" in joined
    assert "4 candidates but only 3 concepts" in joined
    assert "line 12: quiz.questions.0.answer" in joined
    assert "need at least 10 images" in joined
    if (Path(".data") / "nltk_data" / "corpora" / "wordnet" / "index.noun").is_file():
        assert "'dog' has 7 sense(s)" in joined


def test_protocol_option_errors_are_located() -> None:
    text = ("id: demo\ntitle: T\nconsent: c\ninstructions: i\nconcepts: [dog.n.01]\nmethods: [a]\n"
            "protocol:\n  name: rating\n  options: {scael: 5}\ntrials: 2\nrecruitment: {completion_code: ABC}\n")
    with pytest.raises(SpecError) as err:
        validate_text(text)
    assert any("protocol.options.scael" in p and "did you mean 'scale'" in p for p in err.value.problems)


def test_launch_freezes_versions(sqlite_db, write_spec) -> None:
    v1 = launch(sqlite_db, write_spec())
    again = launch(sqlite_db, write_spec())
    assert again.id == v1.id and not again.created and len(v1.config_sha256) == 64
    v2 = launch(sqlite_db, write_spec(trials=8))
    assert v2.version == 2 and v2.config_sha256 != v1.config_sha256 and v1.random_weights and v1.synthetic
    from study.versions import get_version, list_studies

    assert get_version(sqlite_db, "demo").id == v2.id
    assert [r["status"] for r in list_studies(sqlite_db)] == ["superseded", "active"]


def test_protocol_rules_come_from_the_protocol(tmp_path) -> None:
    """A rule of one protocol (pairwise preference needs two methods) lives in its module, so the
    spec, the bots and the analysis need no protocol names of their own."""
    from study import protocols

    text = ("id: demo\ntitle: T\nconsent: c\ninstructions: i\nstimuli: {source: synthetic, dir: " + str(tmp_path / "x")
            + ", n_images: 8}\nconcepts: [dog.n.01, cat.n.01]\nmethods: [convis]\n"
            "protocol: {name: pairwise_preference}\ntrials: 2\nrecruitment: {completion_code: ABC}\n")
    with pytest.raises(SpecError) as err:
        validate_text(text)
    assert "line 7: methods: pairwise_preference needs at least 2 methods" in "\n".join(err.value.problems)
    pref = protocols.get("pairwise_preference")
    content = {"left": {"method": "a"}, "right": {"method": "b"}}
    assert pref.bot_probability(content, {"a": 0.75, "b": 0.25}.get) == pytest.approx(0.75)
    assert [protocols.get(n).analysis for n in ("forward_simulation", "distinction", "pairwise_preference",
                                                 "rating")] == ["accuracy", "accuracy", "bradley_terry", "likert"]
    source = "".join((Path("study") / f).read_text() for f in ("spec.py", "bots.py", "cli.py"))
    assert "pairwise_preference" not in source

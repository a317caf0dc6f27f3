"""The Studies page through AppTest: empty list, a draft from an example, the YAML editor's
line-by-line problems, the preview (nothing stored), launch, pause/resume/close and the link."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from study.models import Participant, Response, Step
from study.overview import study_rows
from ui.research.launch_view import participant_link
from ui.research.spec_editor import annotate

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "studies.py")


ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "studies"




def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()


def _texts(at: AppTest) -> str:
    parts = [str(e.value) for k in ("markdown", "caption", "info", "success", "error", "warning", "code", "subheader")
             for e in getattr(at, k)]
    return "\n".join(parts + [b.label for b in at.button])


def test_empty_then_example_draft_preview_launch_status(db, tmp_path, monkeypatch) -> None:
    at = page()
    assert not at.exception
    assert "No studies yet" in _texts(at)
    at.selectbox(key="new_example").set_value(EXAMPLES / "rating.yaml").run()
    at.button(key="new_from_example").click().run()
    assert not at.exception, at.exception
    rows = study_rows(db)
    assert [(r.slug, r.status) for r in rows] == [("convis-rating-demo", "draft")]
    # the preview of a synthetic study needs its stimuli: launching builds them
    at.button(key="launch_convis-rating-demo").click().run()
    assert not at.exception, at.exception
    assert study_rows(db)[0].status == "live"
    at = page()
    assert "Participant link" in _texts(at)
    link = participant_link("http://localhost:8501", "convis-rating-demo")
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in link and any(link.split("/?")[1] in c.value for c in at.code)
    # preview: every step drawn, nothing stored
    slider = at.select_slider(key="preview_step_convis-rating-demo")
    for i in range(len(slider.options)):
        at.select_slider(key="preview_step_convis-rating-demo").set_value(i).run()
        assert not at.exception, (i, at.exception)
    with db.session() as s:
        for table in (Participant, Step, Response):
            assert s.scalar(select(func.count()).select_from(table)) == 0
    at.button(key="status_convis-rating-demo_paused").click().run()
    assert study_rows(db)[0].status == "paused"
    at.button(key="status_convis-rating-demo_closed").click().run()
    assert study_rows(db)[0].status == "closed"


def test_yaml_problems_are_shown_next_to_their_lines(db) -> None:
    html = annotate("id: x\ntitle: T\ntrials: -1\n", ["line 3: trials: Input should be greater than or equal to 1",
                                                     "recruitment: required field is missing"])
    rows = html.split("<tr")
    line3 = next(i for i, r in enumerate(rows) if ">3<" in r)
    assert "greater than or equal" in rows[line3 + 1] and "recruitment: required" in html.split("<table")[0]
    at = page()
    at.selectbox(key="new_example").set_value(EXAMPLES / "forward_simulation.yaml").run()
    at.button(key="new_from_example").click().run()
    key = "studies_yaml_convis-forward-demo"
    at.text_area(key=key).input(at.text_area(key=key).value.replace("trials: 16", "trials: 0")
                                .replace("protocol:\n  name: forward_simulation", "protocol:\n  name: forward_simulaton"))
    at.button(key=f"{key}_save").click().run()
    assert not at.exception
    shown = "\n".join(h.proto.body for h in at.get("html"))
    assert "did you mean &#x27;forward_simulation&#x27;" in shown or "did you mean 'forward_simulation'" in shown
    assert "nothing was saved" in _texts(at)


def test_failed_precompute_is_shown_with_its_reason(db) -> None:
    """A precompute whose image went bad after validation: the Stimuli tab says which and why."""
    import io

    import yaml
    from PIL import Image

    from study import jobs
    from study.drafts import save_draft, save_upload

    files = []
    for i, colour in enumerate(("red", "blue")):
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(buf, format="PNG")
        files.append(save_upload("broken", f"pic{i}.png", buf.getvalue()))
    spec = {"id": "broken", "title": "Broken", "consent": "c", "instructions": "i",
            "stimuli": {"source": "engine", "model": "convis-tiny", "pretrained": "none"},
            "images": [{"file": f} for f in files], "concepts": ["circle.n.01", "square.n.01"],
            "methods": ["centre"], "protocol": {"name": "forward_simulation", "options": {"n_candidates": 2}},
            "trials": 2, "recruitment": {"completion_code": "X1"}}
    draft = save_draft(db, yaml.safe_dump(spec))
    (Path(draft.base_dir) / files[1]).write_bytes(b"\x89PNG\r\n\x1a\nnot really a picture")
    job = jobs.run_worker(db, "broken")
    assert job.state == "failed" and "pic1" in job.error
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["open"] = "broken"
    at.run()
    assert not at.exception
    assert any("pic1" in e.value for e in at.error), [e.value for e in at.error]
    assert "Start precompute" in [b.label for b in at.button]


def test_new_study_from_the_form(db) -> None:
    """The form: WordNet search by name and definition, registry methods with their generated
    parameter fields, Shapes-world images; the draft holds exactly what was chosen."""
    at = page()
    at.text_input(key="new_slug").input("form-study")
    at.text_input(key="new_title").input("Shapes by form")
    at.run()
    for word, synset in (("circle", "circle.n.01"), ("square", "square.n.01")):
        at.text_input(key="new_word").input(word).run()
        assert any(synset in m.value and "plane" in m.value.lower() for m in at.markdown), word  # the definition
        at.button(key=f"new_add_{synset}").click().run()
    at.multiselect(key="new_methods").set_value(["convis_grid", "centre"]).run()
    at.number_input(key="new_p_convis_grid_stride").set_value(32).run()
    at.number_input(key="new_shapes").set_value(6)
    at.number_input(key="new_trials").set_value(3)
    at.number_input(key="new_practice").set_value(1)
    at.text_input(key="new_code").input("FORM01")
    at.button(key="new_from_form").click().run()
    assert not at.exception, at.exception
    from study.drafts import get_draft

    spec = get_draft(db, "form-study").spec()
    assert spec.concepts == ["circle.n.01", "square.n.01"] and spec.methods == ["convis_grid", "centre"]
    assert spec.stimuli.params == {"convis_grid": {"stride": 32}} and spec.images.shapes == 6
    assert spec.trials == 3 and spec.recruitment.completion_code == "FORM01"

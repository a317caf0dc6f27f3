"""Smoke test of the Explore page through Streamlit's AppTest (real engine, tiny random model)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def researcher_app() -> AppTest:
    """The app as a researcher who has logged in (the login itself: tests/app/test_login.py)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["research_logged_in"] = True
    return at


def test_explore_page_explains_and_warns_about_random_weights():
    at = researcher_app()
    at.run()
    assert not at.exception
    at.sidebar.selectbox(key="explore_model").select("Tiny model, RANDOM weights (plumbing only)")
    at.sidebar.selectbox(key="explore_bank").select("subtree=plane_figure.n.01")
    at.run()
    assert any("RANDOM WEIGHTS" in e.value for e in at.error), "random weights must be flagged on screen"
    at.text_input(key="explore_word").input("circle")
    at.run()
    sense = at.selectbox(key="explore_sense")
    assert sense.value.startswith("circle.n.01")
    at.button(key="explore_go").click()
    at.run()
    assert not at.exception
    assert at.session_state["explore_result"].meta["concept"] == "circle.n.01"
    assert at.session_state["explore_result"].meta["random_weights"] is True


def test_explore_page_rejects_unknown_words_and_bad_uploads():
    at = researcher_app()
    at.run()
    at.sidebar.selectbox(key="explore_model").select("Tiny model, RANDOM weights (plumbing only)")
    at.run()
    at.text_input(key="explore_word").input("qwxzzy")
    at.run()
    assert not at.exception
    assert any("No WordNet noun matches" in w.value for w in at.warning)


def test_every_registered_method_runs_through_the_page():
    """Each registry entry through the page's door: only its own parameters are sent."""
    import convis_core as cc

    at = researcher_app()
    at.run()
    at.sidebar.selectbox(key="explore_model").select("Tiny model, RANDOM weights (plumbing only)")
    at.sidebar.selectbox(key="explore_bank").select("subtree=plane_figure.n.01")
    at.run()
    at.text_input(key="explore_word").input("circle")
    at.run()
    for name, method in cc.REGISTRY.items():
        at.sidebar.selectbox(key="explore_method").select(method.label)
        at.run()
        at.button(key="explore_go").click()
        at.run()
        assert not at.exception, (name, at.exception)
        assert not at.error or all("RANDOM WEIGHTS" in e.value for e in at.error), (name, [e.value for e in at.error])
        assert at.session_state["explore_result"].meta["method"] == name

"""The participant page end to end in headless Chromium: each example study from the Prolific
link to the completion code, reloads, double clicks, the back button, tampered links, pages a
participant must not reach, and what fits in a 1366x768 window. Screenshots of every step type
go to `$CONVIS_TEST_OUTPUT/participant/` (default `<repo>/.test-output/`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from study.db import connect, forget
from study.models import Response
from study.runtime import Runtime
from tests.app.browser_participant import ARGS, CHROMIUM, ROOT, Participant, app, token_from_url
from tests.app.conftest import environ
from tests.app.studies import SYNTHETIC_EXAMPLES, launch_example, prolific_pid

pytestmark = pytest.mark.browser
OUT = Path(os.environ.get("CONVIS_TEST_OUTPUT") or ROOT / ".test-output") / "participant"
PROTOCOL = {"forward_simulation": "forward_simulation", "distinction_within": "distinction",
            "preference": "pairwise_preference", "rating": "rating"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Every synthetic example study launched into one SQLite file, and the app serving it."""
    folder = tmp_path_factory.mktemp("participant-site")
    url = f"sqlite:///{folder / 'studies.sqlite'}"
    env = {"DATABASE_URL": url, "CONVIS_PID_KEY": "cd" * 32}
    with environ(env):
        db = connect(url)
        specs = {name: launch_example(db, name, folder) for name in SYNTHETIC_EXAMPLES}
        try:
            with app(env, folder / "streamlit.log") as base:
                yield base, db, specs
        finally:
            forget(url)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def link(base: str, slug: str, pid: str | None = None) -> str:
    pid = pid or prolific_pid()
    return f"{base}/?study={slug}&PROLIFIC_PID={pid}&STUDY_ID={'a' * 24}&SESSION_ID={'b' * 24}"


def responses(db, participant_id: str) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Response).where(Response.participant_id == participant_id))


def images_in_viewport(page) -> list[dict]:
    """Bounding boxes of every image on screen; each must lie inside the viewport."""
    size = page.viewport_size
    boxes = [page.locator("[data-testid=stImage] img").nth(i).bounding_box()
             for i in range(page.locator("[data-testid=stImage] img").count())]
    assert boxes, "no image on the trial screen"
    for b in boxes:
        assert b["x"] >= 0 and b["y"] >= 0, b
        assert b["x"] + b["width"] <= size["width"] and b["y"] + b["height"] <= size["height"], (b, size)
    return boxes


@pytest.mark.parametrize("name", SYNTHETIC_EXAMPLES)
def test_participant_completes_example_study(site, browser, name) -> None:
    base, db, specs = site
    spec = specs[name]
    rt = Runtime(db)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        who = Participant(page, rt, PROTOCOL[name], shots=OUT)
        who.open(link(base, spec["id"]))
        checked: list[int] = []

        def check(kind, view) -> None:
            if kind == "trial":
                page.locator("[data-testid=stImage] img").last.wait_for()
                checked.append(len(images_in_viewport(page)))

        who.on_screen = check
        seen = who.run()
        page.get_by_text(spec["recruitment"]["completion_code"]).first.wait_for(timeout=30_000)
        info = rt.resume(who.token)
        assert info.status == "completed" and responses(db, info.participant_id) == info.n_steps
        assert seen["trial"] == spec["trials"] == len(checked) and min(checked) >= 1
        assert "Traceback" not in page.content()
    finally:
        page.close()


def test_reload_double_click_back_button_and_large_screen(site, browser) -> None:
    base, db, specs = site
    spec, rt = specs["forward_simulation"], Runtime(db)
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    try:
        who = Participant(page, rt, "forward_simulation")
        who.open(link(base, spec["id"]))
        kind, key, view = who.advance_to("trial")
        images_in_viewport(page)
        pid = rt.resume(who.token).participant_id
        before = responses(db, pid)
        # one click disables the step's answer buttons at once, before the server answers
        buttons = who.el(key).locator("button")
        buttons.first.click()
        page.wait_for_function("() => (window.__ptDisabled || 0) >= 1", timeout=5000)
        who._wait_advanced(view)
        kind, key, view = who.advance_to("trial")
        before = responses(db, pid)
        # a double click on an answer button stores one answer and answers nothing else
        who.el(key).locator("button").first.dblclick()
        who._wait_advanced(view)
        page.wait_for_timeout(1500)
        assert responses(db, pid) == before + 1
        assert rt.current_step(who.token).index == view.index + 1
        # a reload resumes at the same step
        now = who.step_key()
        page.reload()
        who.wait_for(now[1])
        assert who.step_key()[1] == now[1]
        # the back button changes nothing: the page still shows the current step after it
        count = responses(db, pid)
        page.go_back()
        page.wait_for_timeout(1500)
        if "r=" not in page.url and "study=" not in page.url:
            page.go_forward()
        page.wait_for_timeout(500)
        assert responses(db, pid) == count
        page.goto(f"{base}/?r={who.token}")
        who.wait_for(now[1])
        assert rt.current_step(who.token).index == now[2].index
    finally:
        page.close()


def test_bad_links_and_researcher_pages_are_out_of_reach(site, browser) -> None:
    base, db, specs = site
    spec = specs["rating"]
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        for bad in (f"{base}/?r={'Z' * 43}", f"{base}/?r=%3Cscript%3E", f"{base}/?study=nope&PROLIFIC_PID={prolific_pid()}",
                    f"{base}/?study={spec['id']}&PROLIFIC_PID=%7B%7B%25PROLIFIC_PID%25%7D%7D"):
            page.goto(bad)
            page.get_by_text("This link does not work").wait_for(timeout=60_000)
            assert "Traceback" not in page.content()
        page.goto(link(base, spec["id"]))
        token = token_from_url(page)
        page.locator(".st-key-pt_consent_yes").wait_for()
        for path in ("explore", "take_part", "nonexistent"):
            page.goto(f"{base}/{path}?r={token}&page=explore")
            page.locator(".st-key-pt_consent_yes").wait_for(timeout=60_000)
            assert page.locator("[data-testid=stSidebar]").count() == 0 or \
                not page.locator("[data-testid=stSidebar]").first.is_visible()
            assert page.get_by_text("Explore explanations").count() == 0
            assert page.get_by_text("CLIP model").count() == 0
    finally:
        page.close()

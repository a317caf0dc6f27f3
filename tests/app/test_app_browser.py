"""Explore end to end in headless Chromium, as a person would use it: the first visit at 1366x768,
pick an image, a word and its sense, step to a hypernym and to a child, see every method side by
side, download the grid as a zip, drag a region and click a concept CLIP sees there. Screenshots
go to `$CONVIS_TEST_OUTPUT/explore/` (default `.test-output/explore/`).

The Shapes-world toy model with the plane-figure bank (set through the page's own link)."""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import pytest

import convis_core as cc
from tests.app.browser_participant import ARGS, CHROMIUM, ROOT, app
from tests.app.conftest import environ, private_data_dir

pytestmark = pytest.mark.browser
OUT = Path(os.environ.get("CONVIS_TEST_OUTPUT") or ROOT / ".test-output") / "explore"
PASSWORD = "explore-e2e-password"


def key(page, name: str):  # noqa: ANN001, ANN201
    """The element Streamlit wraps a widget with `key=name` in (non-word characters become '-')."""
    return page.locator(f".st-key-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}")


def settle(page) -> None:  # noqa: ANN001
    """Until the app's rerun has finished and no element of the previous run is left on screen."""
    page.wait_for_timeout(400)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon]')"
                           " && !document.querySelector('[data-stale=true]')")


def images_loaded(page) -> None:  # noqa: ANN001
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")


def set_number(page, name: str, value: int) -> None:  # noqa: ANN001
    settle(page)
    box = key(page, name).locator("input").first
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def test_explore_in_chromium(tmp_path) -> None:
    data = private_data_dir(tmp_path)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite'}", "CONVIS_ADMIN_PASSWORD": PASSWORD,
           "CONVIS_DATA_DIR": str(data), "CONVIS_MODEL": "", "CONVIS_DEMO": "0"}
    with environ(env):
        _explore(tmp_path, env)


def _explore(tmp_path: Path, env: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with app(env, tmp_path / "app.log") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, accept_downloads=True)
        page.set_default_timeout(180_000)
        try:
            _walk_through(page, base)
        except Exception:
            page.screenshot(path=str(OUT / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def _walk_through(page, base: str) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    page.goto(f"{base}/?bank=subtree%3Dplane_figure.n.01&mode=bogus")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # the first visit: a Shapes scene, a concept, its map, all in view without scrolling
    caption = page.get_by_text("ConVis (grid) · circle.n.01", exact=False).first
    caption.wait_for()
    page.get_by_text("Ignored from the link: mode", exact=False).wait_for()
    images_loaded(page)
    page.screenshot(path=str(OUT / "first-visit-1366x768.png"))
    map_box = page.locator("[data-testid=stImage]").first.bounding_box()
    word_box = key(page, "explore_word").bounding_box()
    assert map_box and map_box["y"] + map_box["height"] <= 768, map_box
    assert word_box and word_box["y"] + word_box["height"] <= 768, word_box

    # pick an image and a word with several senses, then its sense
    set_number(page, "explore_scene", 1_000_006)
    page.get_by_text("Shapes scene 1000006: one, square").wait_for()
    settle(page)
    word = key(page, "explore_word").locator("input").first
    word.fill("square")
    word.press("Enter")
    settle(page)
    sense = key(page, "explore_sense")
    sense.wait_for()
    sense.click()
    page.get_by_role("option", name=re.compile(r"^square\.n\.01 — ")).click()
    settle(page)
    page.get_by_text("ConVis (grid) · square.n.01", exact=False).first.wait_for()
    page.screenshot(path=str(OUT / "word-and-sense.png"))

    # step to a hypernym, then to a child
    key(page, "explore_up_regular_polygon.n.01").locator("button").first.click()
    settle(page)
    page.get_by_text("ConVis (grid) · regular_polygon.n.01", exact=False).first.wait_for()
    key(page, "explore_child_square.n.01").locator("button").first.click()
    settle(page)
    page.get_by_text("ConVis (grid) · square.n.01", exact=False).first.wait_for()
    page.screenshot(path=str(OUT / "walk.png"))

    # every method side by side; the slow ones with light settings from their own controls (a tall
    # window for the screenshot: the grid is longer than a screen)
    page.get_by_role("tab", name="rise").click()
    set_number(page, "explore_p_rise_n_masks", 64)
    page.get_by_role("tab", name="occlusion").click()
    set_number(page, "explore_p_occlusion_stride", 48)
    page.get_by_role("tab", name="convis_stochastic").click()
    set_number(page, "explore_p_convis_stochastic_iterations", 120)
    key(page, "explore_compare").locator("label").first.click()
    settle(page)
    key(page, "explore_grid_with_occlusion").locator("label").first.click()
    settle(page)
    key(page, "explore_grid_with_rise").locator("label").first.click()
    settle(page)
    for m in cc.REGISTRY.values():
        if m.unsupported_reason(cc.load_model_cached("shapes-world", "bundled")) is None:
            page.get_by_text(f"{m.label} · ", exact=False).first.wait_for()
        else:
            page.get_by_text(f"{m.label}: not for this model", exact=False).first.wait_for()
    page.set_viewport_size({"width": 1366, "height": 2200})
    images_loaded(page)
    key(page, "explore_section_body").screenshot(path=str(OUT / "side-by-side.png"))
    page.set_viewport_size({"width": 1366, "height": 768})
    key(page, "explore_zip_go").locator("button").first.click()
    settle(page)
    with page.expect_download() as dl:
        key(page, "explore_dl_zip").locator("button").first.click()
    settle(page)
    names = set(zipfile.ZipFile(io.BytesIO(Path(dl.value.path()).read_bytes())).namelist())
    assert {"grid.png", "summary.json", "maps/convis_grid.png", "maps/rise.npy", "maps/occlusion.json"} <= names

    # what CLIP sees here: drag the region, click a concept it suggests
    key(page, "explore_section").get_by_text("What CLIP sees here").click()
    settle(page)
    frame = page.frame_locator("iframe[title*='cropper']")
    canvas = frame.locator("canvas").last
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box
    before = page.get_by_text(re.compile(r"Region.*x 0\.20–0\.80")).count()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.3, steps=8)
    page.mouse.up()
    settle(page)
    expect(page.get_by_text(re.compile(r"Region.*x 0\.20–0\.80"))).to_have_count(0)
    assert before == 1
    suggestion = page.locator("[class*='st-key-explore_see_region_']:not([class*='square-n-01']) button").first
    label = suggestion.inner_text().split(" · ")[0].strip()
    key(page, "explore_section_body").screenshot(path=str(OUT / "region.png"))
    suggestion.click()
    settle(page)
    page.get_by_text(re.compile(r"ConVis \(grid\) · \S+\.n\.\d\d")).first.wait_for()
    concept = key(page, "explore_word").locator("input").first.input_value()
    assert cc.nouns().synset(concept).label == label
    page.screenshot(path=str(OUT / "region-concept.png"))

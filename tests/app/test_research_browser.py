"""A researcher's whole path in Chromium: log in, create a study from an example, precompute an
engine-built study (reloading in the middle: the job goes on and the bar comes back), preview,
launch, let participants answer, watch Monitor, read Analysis, download the export and open it.
Screenshots of every page go to `$CONVIS_TEST_OUTPUT/research/`."""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import pytest

from study.bots import BotProfile, run_bots
from study.db import connect, forget
from study.demo import demo_yaml
from study.drafts import save_draft
from study.overview import study_rows
from tests.app.browser_participant import ARGS, CHROMIUM, ROOT, app
from tests.app.conftest import environ, private_data_dir

pytestmark = pytest.mark.browser
OUT = Path(os.environ.get("CONVIS_TEST_OUTPUT") or ROOT / ".test-output") / "research"
PASSWORD = "research-e2e-password"


def test_researcher_path(tmp_path) -> None:
    data = private_data_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    env = {"DATABASE_URL": url, "CONVIS_PID_KEY": "9a" * 32, "CONVIS_ADMIN_PASSWORD": PASSWORD,
           "CONVIS_DATA_DIR": str(data)}
    with environ(env):
        _researcher_path(tmp_path, env, url)


def _researcher_path(tmp_path: Path, env: dict[str, str], url: str) -> None:
    from playwright.sync_api import sync_playwright

    db = connect(url)
    # an engine-built study small enough for a test (6 Shapes scenes x 2 concepts, toy model)
    text = demo_yaml(scenes=6, concepts=2, trials=3).replace("id: demo-shapes", "id: shapes-e2e")
    save_draft(db, text, base_dir=str(ROOT / "examples" / "studies"))
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with app(env, tmp_path / "app.log") as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 900}, accept_downloads=True)
            page.set_default_timeout(90_000)
            page.goto(f"{base}/studies")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.get_by_text("New study").wait_for()
            # create a study from an example
            page.get_by_text("New study").click()
            page.get_by_role("button", name="Create a draft from this example").click()
            page.get_by_text("Precompute its stimuli, preview, then launch").wait_for()
            page.screenshot(path=str(OUT / "studies-new.png"), full_page=True)
            assert {r.slug: r.status for r in study_rows(db)}["convis-distinction-demo"] == "draft"
            # precompute the engine study, reload in the middle
            page.goto(f"{base}/studies?open=shapes-e2e")
            page.get_by_role("tab", name="Stimuli").click()
            page.locator(".st-key-pre_start_shapes-e2e button").click()
            page.get_by_text(re.compile(r"(queued|running): \d+ of \d+ maps")).first.wait_for()
            page.reload()                         # the URL keeps the open study; the job goes on
            page.get_by_role("tab", name="Stimuli").click()
            page.get_by_text(re.compile(r"(queued|running|done): \d+ of \d+ maps")).first.wait_for()
            page.screenshot(path=str(OUT / "studies-precompute.png"), full_page=True)
            page.get_by_text(re.compile(r"done: 12 of 12 maps")).first.wait_for(timeout=300_000)
            # preview, then launch
            page.get_by_role("tab", name="Preview").click()
            page.get_by_text("Below is the participant's screen").wait_for()
            page.screenshot(path=str(OUT / "studies-preview.png"), full_page=True)
            page.get_by_role("tab", name="Launch and share").click()
            page.locator(".st-key-launch_shapes-e2e button").click()
            page.get_by_text("Participant link").wait_for()
            page.screenshot(path=str(OUT / "studies-launched.png"), full_page=True)
            assert page.get_by_text("?study=shapes-e2e&PROLIFIC_PID={{%PROLIFIC_PID%}}", exact=False).count()
            # participants answer (simulated, through the runtime API), Monitor sees them
            run_bots(db, "shapes-e2e", 12, BotProfile(accuracy={"convis": 0.85, "none": 0.5}), workers=3)
            page.goto(f"{base}/monitor")
            page.get_by_text("Completed").first.wait_for()
            page.get_by_text("n = 12 participants", exact=False).first.wait_for()
            page.screenshot(path=str(OUT / "monitor.png"), full_page=True)
            page.goto(f"{base}/analysis")
            page.get_by_text("Accuracy per method").wait_for()
            page.locator("[data-testid=stVegaLiteChart], .vega-embed").first.wait_for()
            page.screenshot(path=str(OUT / "analysis.png"), full_page=True)
            page.get_by_role("tab", name="Downloads").click()
            page.get_by_role("button", name="Prepare the downloads").click()
            with page.expect_download() as dl:
                page.get_by_role("button", name="Tidy export (.zip)").click()
            data_zip = Path(dl.value.path()).read_bytes()
            names = set(zipfile.ZipFile(io.BytesIO(data_zip)).namelist())
            assert {"responses.csv", "participants.csv", "codebook.csv", "config.json", "config.sha256"} <= \
                {n.split("/")[-1] for n in names}
            browser.close()
    finally:
        forget(url)

"""End to end in a real browser: headless Chromium drives the Streamlit app over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "CONVIS_MODEL": "convis-tiny", "CONVIS_PRETRAINED": "none",
           "CONVIS_ADMIN_PASSWORD": "explore-test-password"}
    log = tmp_path_factory.mktemp("app") / "streamlit.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_explore_in_chromium(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{app_url}/?word=circle&bank=subtree%3Dplane_figure.n.01&sample=coffee&mode=bogus")
            page.get_by_label("Password", exact=True).fill("explore-test-password")
            page.get_by_role("button", name="Log in").click()
            page.get_by_text("RANDOM WEIGHTS", exact=False).first.wait_for(timeout=120_000)
            page.get_by_text("Ignored invalid link parameters: mode").wait_for(timeout=30_000)
            page.get_by_text("Pick a concept and press Explain").wait_for(timeout=120_000)
            page.get_by_role("button", name="Explain", exact=True).click()
            page.get_by_text("ConVis (grid) · circle.n.01", exact=False).wait_for(timeout=180_000)
            page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
            assert (tmp_path / "explore.png").stat().st_size > 10_000
        finally:
            browser.close()

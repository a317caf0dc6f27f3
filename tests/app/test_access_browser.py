"""No researcher page without the password, even as the very first request to a fresh server
(Streamlit once served a `pages/` folder by path before `app.py` ran), and a login survives a
reload (signed cookie)."""

from __future__ import annotations

import pytest

from tests.app.browser_participant import ARGS, CHROMIUM, app

pytestmark = pytest.mark.browser
PASSWORD = "access-test-password"


def test_fresh_server_paths_need_the_password_and_login_survives_reload(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite'}", "CONVIS_PID_KEY": "12" * 32,
           "CONVIS_ADMIN_PASSWORD": PASSWORD, "CONVIS_MODEL": "convis-tiny", "CONVIS_PRETRAINED": "none"}
    with app(env, tmp_path / "app.log") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            for path in ("studies", "monitor", "analysis", "evaluation", "explore", "take_part"):
                page.goto(f"{base}/{path}")      # the first request of this server is /studies
                page.get_by_text("Researcher pages. Participants open").wait_for(timeout=60_000)
                assert page.get_by_text("New study").count() == 0 and page.get_by_text("Study version").count() == 0
                assert page.locator("[data-testid=stSidebarNav]").count() == 0
            page.goto(f"{base}/monitor")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.get_by_text("No study has been launched yet").wait_for(timeout=60_000)
            page.reload()                        # a new Streamlit session: the cookie keeps the login
            page.get_by_text("No study has been launched yet").wait_for(timeout=60_000)
            page.goto(f"{base}/studies")
            page.get_by_text("New study").wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "studies.png"))
            fresh = browser.new_context().new_page()   # another browser: no cookie, no pages
            fresh.goto(f"{base}/studies")
            fresh.get_by_text("Researcher pages. Participants open").wait_for(timeout=60_000)
            assert fresh.get_by_text("New study").count() == 0
        finally:
            browser.close()

"""Several app processes on one PostgreSQL, started by `deploy/start_apps.sh` and checked by
`deploy/readiness.py`: one browser participant on each process, the Monitor's counts equal when
computed in either process's environment, and a precompute job started from one process seen
running and cancelled from the other (its detached worker stops and leaves a resumable store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import delete

from study.models import PrecomputeJob, StudyDraft
from study.runtime import Runtime
from tests.app.browser_participant import ARGS, CHROMIUM, free_port
from tests.app.browser_participant import Participant as Driver
from tests.app.studies import launch_example, prolific_pid
from tests.scale.conftest import ROOT, fresh_data_dir

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


def _py(env: dict[str, str], code: str) -> dict:
    """Run `code` in a fresh Python process with an app process's environment; its last stdout line as JSON."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


MONITOR = """
import json
from study.db import connect
from study.monitor import snapshot
from study.versions import list_studies
version = [v for v in list_studies(connect()) if v["slug"] == {slug!r}][-1]["version_id"]
snap = snapshot(connect(), version)
print(json.dumps({{"counts": snap.counts, "consort": snap.consort}}, default=str))
"""

JOB = """
import json
from study import jobs
from study.db import connect
info = getattr(jobs, {what!r})(connect(), {slug!r}{extra})
print(json.dumps({{k: info.__dict__[k] for k in ("id", "state", "done", "total", "alive", "pid", "cancel_requested")}}))
"""


def _tiny_engine_spec(slug: str) -> str:
    return yaml.safe_dump({
        "id": slug, "title": "Tiny precompute", "consent": "I agree.", "instructions": "Predict the model.",
        "stimuli": {"source": "engine", "model": "convis-tiny", "pretrained": "none",
                    "bank": "subtree=plane_figure.n.01", "params": {"convis": {"stride": 32}}},
        "images": {"shapes": 8}, "concepts": ["circle.n.01", "square.n.01"], "methods": ["convis", "centre"],
        "protocol": {"name": "forward_simulation", "options": {"n_candidates": 2}},
        "trials": 2, "recruitment": {"completion_code": "TINY2"}}, sort_keys=False)


def test_two_apps_one_postgres_monitor_and_precompute(pg_db, pg_url, tmp_path) -> None:
    db = pg_db
    with db.session() as s:
        s.execute(delete(PrecomputeJob))
        s.execute(delete(StudyDraft))
    data = fresh_data_dir(tmp_path / "data")
    env = {"DATABASE_URL": pg_url, "CONVIS_PID_KEY": "ef" * 32, "CONVIS_DATA_DIR": str(data), "CONVIS_DEMO": "0",
           "CONVIS_ADMIN_PASSWORD": "two-apps-test"}
    spec = launch_example(db, "rating", tmp_path, trials=3, practice={"trials": 0}, attention_checks={"count": 0},
                          questionnaire=[])
    base = free_port()
    script_env = {**os.environ, **env}
    started = subprocess.run([str(ROOT / "deploy" / "start_apps.sh"), "start", "2", str(base)], cwd=ROOT,
                             env=script_env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    try:
        ready = subprocess.run([sys.executable, str(ROOT / "deploy" / "readiness.py"), "--ports",
                                f"{base}-{base + 1}", "--wait", "150"], cwd=ROOT, env=script_env,
                               capture_output=True, text=True, timeout=200)
        assert ready.returncode == 0, ready.stdout + ready.stderr
        last = ready.stdout.strip().splitlines()[-3:]       # the passing attempt: two apps and the database
        assert [line.split()[:2] for line in last] == [["ok", "app"], ["ok", "app"], ["ok", "database"]], last

        # one participant on each process: one completes, one stops after its first trial
        from playwright.sync_api import sync_playwright

        rt = Runtime(db)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                who = []
                for port in (base, base + 1):
                    page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
                    d = Driver(page, rt, "rating")
                    d.open(f"http://127.0.0.1:{port}/?study={spec['id']}&PROLIFIC_PID={prolific_pid()}"
                           f"&STUDY_ID={'a' * 24}&SESSION_ID={'c' * 24}")
                    who.append(d)
                who[0].run()
                who[1].advance_to("trial")
                who[1].step()
            finally:
                browser.close()

        # the Monitor's figures, computed in each app process's environment, agree
        views = [_py(env, MONITOR.format(slug=spec["id"])) for _ in (base, base + 1)]
        assert views[0] == views[1]
        statuses = [st for per in views[0]["counts"].values() for st, n in per.items() for _ in range(n)]
        assert len(statuses) == 2 and statuses.count("completed") == 1, views[0]

        # a precompute job started from process A is seen and cancelled from process B
        from study.drafts import save_draft

        save_draft(db, _tiny_engine_spec("tiny-two-apps"))
        a = _py(env, JOB.format(what="start", slug="tiny-two-apps", extra=", throttle=0.5"))
        assert a["state"] in ("queued", "running")
        deadline = time.monotonic() + 180
        seen = a
        while time.monotonic() < deadline and not (seen["state"] == "running" and seen["done"] >= 1):
            time.sleep(1.0)
            seen = _py(env, JOB.format(what="status", slug="tiny-two-apps", extra=""))
        assert seen["id"] == a["id"] and seen["state"] == "running" and seen["alive"], seen
        b = _py(env, JOB.format(what="cancel", slug="tiny-two-apps", extra=""))
        assert b["cancel_requested"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b["state"] != "cancelled":
            time.sleep(0.5)
            b = _py(env, JOB.format(what="status", slug="tiny-two-apps", extra=""))
        assert b["state"] == "cancelled" and 1 <= b["done"] < b["total"], b
        pid = b["pid"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
                Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z":
            time.sleep(0.2)
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    finally:
        subprocess.run([str(ROOT / "deploy" / "start_apps.sh"), "stop"], cwd=ROOT, env=script_env, timeout=60)

"""The participant page on PostgreSQL with real app processes: a server killed with SIGKILL in
the middle of a study, and two app processes sharing one database with ten browser participants."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from study.design import conditions
from study.models import Participant, Response
from study.runtime import Runtime
from study.spec import load_spec
from tests.app.browser_participant import ARGS, CHROMIUM, free_port, start_app
from tests.app.browser_participant import Participant as Driver
from tests.app.studies import launch_example, prolific_pid

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


@pytest.fixture
def pg_env(pg_db, pg_url):
    return pg_db, {"DATABASE_URL": pg_url, "CONVIS_PID_KEY": "ef" * 32}


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _link(base: str, slug: str) -> str:
    return f"{base}/?study={slug}&PROLIFIC_PID={prolific_pid()}&STUDY_ID={'a' * 24}&SESSION_ID={'c' * 24}"


def _answers(db, participant_id: str) -> list[tuple[int, str]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(Response.step_index, Response.kind)
                                            .where(Response.participant_id == participant_id)
                                            .order_by(Response.step_index))]


def test_server_killed_mid_study_resumes_with_every_answer(pg_env, chromium, tmp_path) -> None:
    db, env = pg_env
    spec = launch_example(db, "forward_simulation", tmp_path)
    rt = Runtime(db)
    port = free_port()
    proc, base = start_app(env, tmp_path / "app1.log", port)
    page = chromium.new_page(viewport={"width": 1366, "height": 768})
    try:
        who = Driver(page, rt, "forward_simulation")
        who.open(_link(base, spec["id"]))
        who.advance_to("trial")
        for _ in range(3):
            who.step()
        pid = rt.resume(who.token).participant_id
        committed = _answers(db, pid)
        where = rt.current_step(who.token).index
        proc.kill()                       # SIGKILL: no shutdown handlers run
        proc.wait(timeout=10)
        time.sleep(0.5)
        proc, _ = start_app(env, tmp_path / "app2.log", port)
        page.reload()
        kind, key, view = who.step_key()
        who.wait_for(key)
        assert view.index == where and _answers(db, pid) == committed
        assert who.run()["trial"] >= 1
        info = rt.resume(who.token)
        assert info.status == "completed" and len(_answers(db, pid)) == info.n_steps
    finally:
        page.close()
        proc.kill()


def test_two_app_processes_ten_participants(pg_env, chromium, tmp_path) -> None:
    db, env = pg_env
    spec = launch_example(db, "rating", tmp_path, trials=4, practice={"trials": 0},
                          attention_checks={"count": 0}, questionnaire=[])
    rt = Runtime(db)
    apps = [start_app(env, tmp_path / f"app{i}.log") for i in range(2)]
    pages = []
    try:
        drivers = []
        for i in range(10):
            page = chromium.new_context(viewport={"width": 1366, "height": 768}).new_page()
            pages.append(page)
            d = Driver(page, rt, "rating")
            d.open(_link(apps[i % 2][1], spec["id"]))
            drivers.append(d)
        active = list(drivers)
        while active:                      # every participant is in the study at the same time
            active = [d for d in active if d.step() != "done"]
        with db.session() as s:
            parts = s.scalars(select(Participant)).all()
            dup = s.execute(select(Response.participant_id, Response.step_index, func.count())
                            .group_by(Response.participant_id, Response.step_index)
                            .having(func.count() > 1)).all()
        assert len(parts) == 10 and all(p.status == "completed" for p in parts)
        assert not dup
        for p in parts:
            assert len(_answers(db, p.id)) == p.n_steps
        conds = conditions(load_spec(tmp_path / f"{spec['id']}.yaml"))
        counts = {c: sum(p.condition == c for p in parts) for c in conds}
        assert max(counts.values()) - min(counts.values()) <= 1, counts
    finally:
        for page in pages:
            page.context.close()
        for proc, _ in apps:
            proc.kill()

"""The first-start demo: started only on an empty database, built as a precompute job, launched
with simulated participants, labelled on the pages, removed for good by its button."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from study import demo
from study.models import Participant, PrecomputeJob, Response, Study
from study.overview import study_rows

ROOT = Path(__file__).resolve().parents[2]




def _count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_first_start_only_on_an_empty_database(db, monkeypatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(demo.subprocess, "Popen", lambda args, **kw: started.append(args))
    monkeypatch.setenv(demo.ENV, "0")
    assert not demo.ensure_demo(db) and not started
    monkeypatch.setenv(demo.ENV, "1")
    assert demo.ensure_demo(db) and started[0][-2:] == ["study", "demo"]
    assert [r.status for r in study_rows(db)] == ["draft"]          # the Studies page lists it at once
    assert not demo.ensure_demo(db) and len(started) == 1            # not empty any more


def test_demo_is_built_labelled_and_removed(db, monkeypatch) -> None:
    out = demo.build_demo(db, bots=6, scenes=4, concepts=2, trials=2)
    assert out == {"bots": 6, "participants": 6}
    assert [(r.slug, r.status) for r in study_rows(db)] == [(demo.SLUG, "live")]
    with db.session() as s:
        assert s.scalar(select(PrecomputeJob.state).where(PrecomputeJob.slug == demo.SLUG)) == "done"
    assert _count(db, Response) > 0
    assert demo.build_demo(db, bots=6, scenes=4, concepts=2, trials=2)["bots"] == 0   # idempotent
    monkeypatch.setenv("CONVIS_ADMIN_PASSWORD", "x")
    at = AppTest.from_file(str(ROOT / "app_pages" / "monitor.py"), default_timeout=120).run()
    assert not at.exception
    assert any("Demo data" in i.value for i in at.info)
    at.button(key="monitor_remove_demo").click().run()
    assert _count(db, Study) == 0 and _count(db, Participant) == 0 and _count(db, Response) == 0
    assert _count(db, PrecomputeJob) == 0
    monkeypatch.setenv(demo.ENV, "1")
    assert not demo.ensure_demo(db)                                   # removed for good

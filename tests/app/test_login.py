"""The researcher password: generated once (hash only), configured by environment, wrong
attempts slowed, and no researcher page without it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from study import access

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVIS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(access.ENV, raising=False)
    return tmp_path


def test_generated_once_and_only_its_hash_is_kept(data) -> None:
    password = access.ensure_password()
    assert password and len(password) >= 16
    assert access.ensure_password() is None            # shown once
    stored = access.hash_file().read_text()
    assert password not in stored and json.loads(stored)["kdf"] == "scrypt"
    assert stat.S_IMODE(access.hash_file().stat().st_mode) == 0o600
    assert access.verify(password) and not access.verify(password + "x") and not access.verify("")


def test_environment_sets_the_password(data, monkeypatch) -> None:
    monkeypatch.setenv(access.ENV, "correct horse")
    assert access.ensure_password() is None and not access.hash_file().exists()
    assert access.verify("correct horse") and not access.verify("correct hors")


def test_wrong_attempts_are_slowed() -> None:
    t = access.Throttle(base=1.0, cap=8.0)
    assert t.wait_left("a", now=0) == 0
    for _ in range(5):
        t.failed("a", now=100.0)
    assert t.wait_left("a", now=100.0) == 8.0           # capped doubling
    assert t.wait_left("b", now=100.0) == 0             # per client
    t.succeeded("a")
    assert t.wait_left("a", now=100.0) == 0


def test_pages_need_the_password(data, monkeypatch) -> None:
    monkeypatch.setenv(access.ENV, "letmein-please")
    clock = [1000.0]
    monkeypatch.setattr(access.time, "monotonic", lambda: clock[0])
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"] and not at.sidebar.selectbox
    at.text_input(key="research_password").input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    at.text_input(key="research_password").input("letmein-please")
    at.button[0].click().run()
    assert any("Too many wrong passwords" in e.value for e in at.error), [e.value for e in at.error] + [m.value for m in at.markdown]
    clock[0] += 1.01
    at.text_input(key="research_password").input("letmein-please")
    at.button[0].click().run()
    assert at.session_state["research_logged_in"] is True


def test_session_tokens_are_signed_and_expire(data, monkeypatch) -> None:
    monkeypatch.setenv("CONVIS_PID_KEY", "34" * 32)
    token = access.session_token(now=1000.0, hours=1)
    assert access.session_valid(token, now=1000.0 + 3599)
    assert not access.session_valid(token, now=1000.0 + 3601)
    expiry, sig = token.split(".")
    assert not access.session_valid(f"{int(expiry) + 10**6}.{sig}", now=1000.0)   # a later expiry is not signed
    assert not access.session_valid("123.abc") and not access.session_valid(None) and not access.session_valid("x" * 500)
    monkeypatch.setenv("CONVIS_PID_KEY", "56" * 32)                               # another installation's key
    assert not access.session_valid(token, now=1000.0)

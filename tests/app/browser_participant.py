"""A participant in a real browser: starts the app, opens a study link and answers every step by
clicking what a person would click. Shared by the browser tests and `bench/bench_participants.py`.

The driver asks the database (through the public `Runtime`) which step is current, so it knows
what to click; the page itself is only driven through the browser.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from study.bots import _answer_keys
from study.labels import describe
from study.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict[str, str], log: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start `streamlit run app.py` with `env` added; returns the process and its URL once it answers."""
    port = port or free_port()
    fh = open(log, "w")  # noqa: SIM115 - stays open for the life of the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def app_process(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """The app running for a block: its process and its URL; stopped at the end."""
    proc, url = start_app(env, log)
    try:
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def app(env: dict[str, str], log: Path) -> Iterator[str]:
    """The app running for a block; yields its URL."""
    with app_process(env, log) as (_, url):
        yield url


def token_from_url(page: Any, timeout_s: float = 60) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        m = re.search(r"[?&]r=([A-Za-z0-9_-]+)", page.url)
        if m:
            return m.group(1)
        page.wait_for_timeout(100)
    raise AssertionError(f"no resume token in the URL: {page.url}")


class Participant:
    """Drives one browser page through a study; `screenshots` (kind -> path) when a folder is given."""

    def __init__(self, page: Any, rt: Runtime, protocol: str, shots: Path | None = None) -> None:
        self.page, self.rt, self.protocol, self.shots = page, rt, protocol, shots
        self.token = ""
        self.seen: dict[str, int] = {}
        self.timeout = 60_000
        self.on_screen: Any = None      # called as on_screen(kind, view) once a step is on screen

    # ------------------------------------------------------------ locating
    def el(self, key: str) -> Any:
        return self.page.locator(f".st-key-{key}")

    def click(self, key: str) -> None:
        self.el(key).locator("button").first.click(timeout=self.timeout)

    def pick(self, key: str, option: str) -> None:
        exact = re.compile(rf"^\s*{re.escape(option)}\s*$")
        self.el(key).locator("[data-testid=stRadioOption]").filter(has_text=exact).first.click(timeout=self.timeout)

    def wait_for(self, key: str) -> None:
        self.el(key).first.wait_for(state="visible", timeout=self.timeout)

    def shot(self, kind: str) -> None:
        if self.shots is not None and kind not in self.seen:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(self.shots / f"{self.protocol}-{kind}.png"))

    # ------------------------------------------------------------ the study
    def open(self, url: str) -> None:
        self.page.goto(url)
        self.token = token_from_url(self.page)

    def step_key(self) -> tuple[str, str, Any]:
        """(kind, a widget key of the step on screen now, the step view or None)."""
        info = self.rt.resume(self.token)
        if info.status == "started":
            return "consent", "pt_consent_yes", None
        if info.status != "active":
            return "done", "", None
        view = self.rt.current_step(self.token)
        if view is None:
            return "done", "", None
        return view.kind, self._first_key(view), view

    def _first_key(self, view: Any) -> str:
        k = f"pt_s{view.index}_"
        if view.kind == "instructions":
            return k + "ok"
        if view.kind in ("quiz", "attention"):
            return k + "choice"
        if view.kind == "questionnaire":
            return k + "submit"
        c = view.content
        if self.protocol == "forward_simulation" and not c["confidence_scale"]:
            return k + ("yes" if c["task"] == "match" else "pick_0")
        return k + "submit"

    def answer(self, kind: str, view: Any) -> None:
        """Answer the step on screen through the page."""
        if kind == "consent":
            self.click("pt_consent_yes")
            return
        k = f"pt_s{view.index}_"
        c = view.content
        key = _answer_keys(self.rt.db, self.rt.resume(self.token).participant_id)[view.index]
        if kind == "instructions":
            self.click(k + "ok")
        elif kind in ("quiz", "attention"):
            self.pick(k + "choice", key["truth"])
            self.click(k + "submit")
        elif kind == "questionnaire":
            for q in c["items"]:
                if q["type"] == "likert":
                    self.pick(k + f"q_{q['id']}", str(min(4, q["scale"])))
                elif q["type"] == "choice":
                    self.pick(k + f"q_{q['id']}", q["options"][0])
                else:
                    self.el(k + f"q_{q['id']}").locator("textarea").fill("All clear, thanks.")
            self.click(k + "submit")
        else:
            self._trial(k, c)

    def _trial(self, k: str, c: dict[str, Any]) -> None:
        p = self.protocol
        if p == "forward_simulation" and c["task"] == "match":
            if c["confidence_scale"]:
                self.pick(k + "match", "Yes")
                self.pick(k + "confidence", "1")
                self.click(k + "submit")
            else:
                self.click(k + "yes")
        elif p == "forward_simulation" and not c["confidence_scale"]:
            self.click(k + "pick_0")
        elif p in ("forward_simulation", "distinction"):
            self.pick(k + "choice", describe(c["candidates"][0]).name)
            self.pick(k + "confidence", "1")
            self.click(k + "submit")
        elif p == "pairwise_preference":
            self.pick(k + "side", "Left map")
            if c["strength_scale"] > 1:
                self.pick(k + "strength", "1")
            self.click(k + "submit")
        elif p == "rating":
            for item in c["items"]:
                self.pick(k + f"r_{item}", "3")
            self.click(k + "submit")
        else:
            raise AssertionError(f"no browser driver for protocol {p}")

    def step(self) -> str:
        """Wait for the current step on screen, screenshot it (first of its kind), answer it."""
        kind, key, view = self.step_key()
        if kind == "done":
            return kind
        feedback = self.el("pt_feedback_done")
        self.page.locator(f".st-key-pt_feedback_done, .st-key-{key}").first.wait_for(timeout=self.timeout)
        if feedback.count():
            self.shot("feedback")
            self.seen["feedback"] = self.seen.get("feedback", 0) + 1
            self.click("pt_feedback_done")
            feedback.wait_for(state="detached", timeout=self.timeout)
            return "feedback"
        self.wait_for(key)
        if self.on_screen is not None:
            self.on_screen(kind, view)
        self.shot(kind)
        self.seen[kind] = self.seen.get(kind, 0) + 1
        self.answer(kind, view)
        self._wait_advanced(view)
        return kind

    def _wait_advanced(self, view: Any, timeout_s: float = 60) -> None:
        """Until the database has the answer and the page no longer shows that step."""
        deadline = time.time() + timeout_s
        old = f".st-key-pt_s{view.index}_" if view is not None else ".st-key-pt_consent_yes"
        while time.time() < deadline:
            gone = self.page.locator(f"[class*='{old[1:]}']").count() == 0 if view is not None \
                else self.page.locator(old).count() == 0
            if gone:
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"the page did not advance past {old}")

    def advance_to(self, target: str, max_steps: int = 300) -> tuple[str, str, Any]:
        """Answer steps until a step of kind `target` is on screen; returns its (kind, key, view)."""
        for _ in range(max_steps):
            kind, key, view = self.step_key()
            if kind == target:
                self.page.locator(f".st-key-pt_feedback_done, .st-key-{key}").first.wait_for(timeout=self.timeout)
                if not self.el("pt_feedback_done").count():
                    self.wait_for(key)
                    return kind, key, view
            if self.step() == "done":
                break
        raise AssertionError(f"no {target} step reached")

    def run(self, max_steps: int = 300) -> dict[str, int]:
        for _ in range(max_steps):
            if self.step() == "done":
                self.page.get_by_text("completion code", exact=False).first.wait_for(timeout=self.timeout)
                self.shot("completion")
                return self.seen
        raise AssertionError("the study did not end")

"""Participant page benchmark: concurrent headless browsers through a study, the runtime under 50
threads on PostgreSQL, and the same browser measure on an oTree survey as the anchor, in one run.

    .venv/bin/python bench/bench_participants.py [--n 10] [--trials 16] [--rounds 2] [--think-ms 1000]
        [--threads 50] [--per-thread 4] [--runtime-think-ms 0 1000] [--db sqlite|postgres]
        [--quiet 0.25] [--no-otree] [--json PATH]

1. Ours: the synthetic example study `examples/studies/forward_simulation.yaml` (stimuli made by the
   launch) is launched into a scratch database (a SQLite file, or a scratch PostgreSQL database with
   `--db postgres`), the app is started (`streamlit run app.py`), and N participants take the study
   at once, each in its own browser context of one headless Chromium, driven by
   `tests/app/browser_participant.Participant` (worker threads drive blocking proxies of one async
   Playwright connection). Each participant waits `--think-ms` (uniform 0.5x..1.5x, seeded) before
   every answer, as a person looks at the screen before clicking (0: no pause, a saturated machine).
2. The measure, for every answer to a main trial whose next step is also a main trial: from the
   answer click to the next trial's screen ready, both timestamps taken in the page
   (`performance.timeOrigin + performance.now()`): the click by a capture listener on the
   document; "ready" by a watcher armed before the click that checks every animation frame that
   the next step's answer button (`.st-key-pt_s{i+1}_pick_0`) is laid out, no element is stale
   (`[data-stale=true]`, a Streamlit rerun still in progress), and exactly the step's images are in
   the page, each `complete`, decoded (`naturalWidth > 0`) and laid out.
   `--rounds` rounds (default 2), each of N fresh participants, alternate with the anchor's rounds
   so that both sides see the same machine (other jobs on a shared machine come and go).
3. oTree anchor, same run: `otree==OTREE_VERSION` in its own venv `bench/.otree-venv` (created on
   first use), the project `bench/otree_anchor/` served by `otree devserver` (its in-memory SQLite)
   on a free port; N participants of one session (REST API), participant i shown the same pictures,
   concept names and definitions as our participant i's main trials, one page per trial with one
   submit button per concept (form POST, redirect, full page load). Same think time, same watcher
   (marker `#bench-round[data-round=r+1]`, button `#pick_0`, images `img.bench-img`; the watcher is
   re-armed in the new document by the init script).
4. Runtime: `--threads` threads x `--per-thread` participants through `study.runtime.Runtime` on a
   scratch PostgreSQL database; per answer the time of `submit` + the next `current_step`
   (once per `--runtime-think-ms` value, default 0 and 1000: back to back, i.e. the machine
   saturated, and with a pause of 0.5-1.5 s between a participant's answers).

The load is reported with the figures: over each phase the machine's CPU busy share (all cores),
split into this bench's own process tree (browser, Playwright driver, servers), PostgreSQL and
other people's processes, and the CPU seconds per process name. Before each phase the bench waits
(up to `--quiet-wait-s`) for the machine to be quiet (`--quiet`, busy share over 3 s). Prints a
table; `--json PATH` keeps everything, every sample included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.assets import asset_paths  # noqa: E402
from study.bots import BotProfile, _answer_keys, _bot_answer  # noqa: E402
from study.config import pg_admin_url  # noqa: E402
from study.db import Database, connect, forget, scratch_postgres  # noqa: E402
from study.labels import describe  # noqa: E402
from study.models import Step  # noqa: E402
from study.runtime import Runtime  # noqa: E402
from tests.app.browser_participant import ARGS, CHROMIUM, Participant, app_process, free_port  # noqa: E402
from tests.app.studies import launch_example, prolific_pid  # noqa: E402

EXAMPLE = "forward_simulation"
OTREE_VERSION = "6.0.15"
OTREE_DIR = ROOT / "bench" / "otree_anchor"
OTREE_VENV = ROOT / "bench" / ".otree-venv"
VIEWPORT = {"width": 1366, "height": 768}
TARGET_PAGE_P95_MS = 400.0
TARGET_RUNTIME_P95_MS = 25.0

# Runs in every document of every bench page before the page's own scripts.
INIT_JS = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const store = window.sessionStorage;
  document.addEventListener('click', () => { try { store.setItem('__bench_click', String(now())); } catch (e) {} },
                            true);
  // a = [marker selector, answer widget selector, image selector, number of images]
  const ready = (a) => {
    if (!document.querySelector(a[0])) return false;
    const w = document.querySelector(a[1]);
    if (!w) return false;
    const r = w.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return false;
    if (document.querySelector('[data-stale="true"]')) return false;
    const imgs = Array.from(document.querySelectorAll(a[2]));
    if (imgs.length !== a[3]) return false;
    for (const im of imgs) {
      if (!im.complete || im.naturalWidth === 0) return false;
      const b = im.getBoundingClientRect();
      if (b.width === 0 || b.height === 0) return false;
    }
    return now();
  };
  window.__benchWatch = () => {
    const raw = store.getItem('__bench_watch');
    if (!raw || store.getItem('__bench_ready')) return;
    const a = JSON.parse(raw);
    const tick = () => {
      if (store.getItem('__bench_watch') !== raw || store.getItem('__bench_ready')) return;
      const t = ready(a);
      if (t) store.setItem('__bench_ready', String(t)); else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  };
  window.__benchWatch();
})();
"""
ARM_JS = """a => { const s = window.sessionStorage; s.removeItem('__bench_ready'); s.removeItem('__bench_click');
  s.setItem('__bench_watch', JSON.stringify(a)); window.__benchWatch(); }"""
READY_JS = "() => window.sessionStorage.getItem('__bench_ready') !== null"
READ_JS = """() => { const s = window.sessionStorage; const out = [Number(s.getItem('__bench_click') || 'NaN'),
  Number(s.getItem('__bench_ready') || 'NaN')]; s.removeItem('__bench_watch'); return out; }"""


# ---------------------------------------------------------------- one Chromium, blocking views
class Loop:
    """An asyncio loop in a thread, running one async Playwright connection."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="playwright-loop")
        self.thread.start()

    def run(self, awaitable: Any) -> Any:
        async def wrap() -> Any:
            return await awaitable
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


class Blocking:
    """A blocking view of an async Playwright object (page, locator, ...) for a worker thread, so
    that the sync driver in `tests/app/browser_participant.py` runs unchanged while every page lives
    in one browser: awaitables are run on the loop, Playwright objects come back wrapped."""

    def __init__(self, obj: Any, loop: Loop) -> None:
        self._obj, self._loop = obj, loop

    def _wrap(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            value = self._loop.run(value)
        if type(value).__module__.startswith("playwright.async_api"):
            return Blocking(value, self._loop)
        return value

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        if callable(value) and not type(value).__module__.startswith("playwright.async_api"):
            return lambda *a, **kw: self._wrap(value(*a, **kw))
        return self._wrap(value)


class Browser:
    """One headless Chromium (Debian's) and its async Playwright connection."""

    def __init__(self) -> None:
        from playwright.async_api import async_playwright

        self.loop = Loop()
        self._pw = self.loop.run(async_playwright().start())
        self.browser = self.loop.run(self._pw.chromium.launch(executable_path=CHROMIUM, args=ARGS))

    def page(self) -> Blocking:
        """A new browser context (own cookies and storage) with one page."""
        ctx = self.loop.run(self.browser.new_context(viewport=VIEWPORT))
        self.loop.run(ctx.add_init_script(INIT_JS))
        return Blocking(self.loop.run(ctx.new_page()), self.loop)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run(self.browser.close())
        with contextlib.suppress(Exception):
            self.loop.run(self._pw.stop())
        self.loop.close()


def timed_click(page: Blocking, watch: list[Any], click: Callable[[], None], timeout_ms: float = 60_000) -> dict:
    """Arm the in-page watcher for the screen `watch` describes, click, wait until it is ready;
    returns the in-page click -> ready time and the driver-side time (ms)."""
    page.evaluate(ARM_JS, watch)
    t0 = time.perf_counter()
    click()
    page.wait_for_function(READY_JS, polling=20, timeout=timeout_ms)
    driver_ms = (time.perf_counter() - t0) * 1000
    clicked, ready = page.evaluate(READ_JS)
    return {"ms": ready - clicked, "driver_ms": driver_ms}


class Thinker:
    def __init__(self, think_ms: float, seed: int) -> None:
        self.think_ms, self.rng = think_ms, np.random.default_rng(seed)

    def __call__(self) -> None:
        if self.think_ms > 0:
            time.sleep(self.think_ms * float(self.rng.uniform(0.5, 1.5)) / 1000)


# ---------------------------------------------------------------- our page
class BenchParticipant(Participant):
    """The browser driver plus a think time before each answer, and the timing of every answer to
    a main trial that is followed by a main trial (the hook is `answer`, which clicks)."""

    def __init__(self, page: Any, rt: Runtime, think: Thinker) -> None:
        super().__init__(page, rt, EXAMPLE)
        self.think = think
        self.samples: list[dict] = []
        self.screens: list[dict] = []       # every main trial's content, in order (for the anchor)
        self._plan: dict[int, tuple[str, int]] | None = None

    def plan(self) -> dict[int, tuple[str, int]]:
        """Step index -> (kind, number of images on its screen), from the stored schedule."""
        if self._plan is None:
            pid = self.rt.resume(self.token).participant_id
            with self.rt.db.session() as s:
                rows = s.execute(Step.__table__.select().where(Step.participant_id == pid)).mappings().all()
            self._plan = {r["index"]: (r["kind"], len(asset_paths(r["payload"]["content"]))) for r in rows}
        return self._plan

    def answer(self, kind: str, view: Any) -> None:
        self.think()
        nxt = self.plan().get(view.index + 1) if view is not None else None
        if kind != "trial" or nxt is None or nxt[0] != "trial":
            if kind == "trial":
                self.screens.append(view.content)
            super().answer(kind, view)
            return
        self.screens.append(view.content)
        key = f".st-key-pt_s{view.index + 1}_pick_0"
        if view.content["task"] != "top1" or view.content["confidence_scale"]:
            raise SystemExit("the bench expects the example's one-click top-1 trials")
        sample = timed_click(self.page, [key, key, "[data-testid=stImage] img", nxt[1]],
                             lambda: super(BenchParticipant, self).answer(kind, view))
        self.samples.append({**sample, "step": view.index})


# ---------------------------------------------------------------- load accounting
def _cpu_ticks() -> tuple[int, int]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(parts), parts[3] + parts[4]


def _procs() -> dict[int, tuple[int, int, float, str]]:
    """pid -> (parent pid, process group, CPU seconds incl. reaped children, name) of every process."""
    out, tck = {}, os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                head, tail = (d / "stat").read_text().rsplit(")", 1)
                f = tail.split()
                out[int(d.name)] = (int(f[1]), int(f[2]), sum(int(x) for x in f[11:15]) / tck,
                                    head.split("(", 1)[1])
    return out


def _tree(procs: dict[int, tuple[int, int, float, str]], root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, *_) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(kids.get(pid, []))
    return seen


def busy_share(seconds: float) -> float:
    """The machine's CPU busy share (all cores) over `seconds`."""
    (t0, i0) = _cpu_ticks()
    time.sleep(seconds)
    (t1, i1) = _cpu_ticks()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(limit: float, max_wait_s: float) -> dict[str, float]:
    """Wait (up to `max_wait_s`) until the machine is quiet: busy share under `limit` over 3 s
    (other people's jobs on a shared 2-core machine would otherwise be measured with us)."""
    t0 = time.time()
    share = busy_share(3)
    while share > limit and time.time() - t0 < max_wait_s:
        print(f"  machine busy {share:.0%} (other processes); waiting for it to be quiet ...", flush=True)
        share = busy_share(10)
    return {"busy_share_before": round(share, 3), "waited_s": round(time.time() - t0, 1)}


class Load:
    """Over a phase: the machine's CPU busy share, the share of it used by this bench's own process
    tree (driver, browser, servers), and the CPU seconds of the server under test."""

    def __init__(self, server_pids: Callable[[dict], set[int]]) -> None:
        self.server_pids = server_pids
        self.t0, self.c0, self.p0 = time.perf_counter(), _cpu_ticks(), _procs()

    def done(self) -> dict[str, float]:
        (tot, idle), (tot0, idle0) = _cpu_ticks(), self.c0
        wall = time.perf_counter() - self.t0
        p1 = _procs()
        mine = _tree(p1, os.getpid())

        def cpu(pids: set[int]) -> float:
            return sum(p1[p][2] - (self.p0[p][2] if p in self.p0 else 0.0) for p in pids if p in p1)

        cores = os.cpu_count() or 1
        ticks_per_s = (tot - tot0) / max(1e-9, wall)  # all cores
        busy = 1 - (idle - idle0) / max(1, tot - tot0)
        own = cpu(mine) / max(1e-9, wall) / cores
        pg = cpu({p for p, v in p1.items() if v[3] == "postgres"}) / max(1e-9, wall) / cores
        server = self.server_pids(p1)
        names: dict[str, float] = {}
        for pid in mine - server - {os.getpid()}:
            names[p1[pid][3]] = names.get(p1[pid][3], 0.0) + cpu({pid})
        split = {"bench_driver": cpu({os.getpid()}), "server": cpu(server), **names}
        return {"wall_s": round(wall, 1), "cores": cores, "cpu_busy_share": round(busy, 3),
                "bench_tree_cpu_s": {k: round(v, 1) for k, v in sorted(split.items(), key=lambda kv: -kv[1]) if v >= 0.05},
                "bench_tree_share": round(min(own, busy), 3), "postgres_share": round(pg, 3),
                "other_share": round(max(0.0, busy - own - pg), 3),
                "server_cpu_s": round(cpu(server), 1), "loadavg_1min_end": round(os.getloadavg()[0], 2),
                "ticks_per_s": round(ticks_per_s, 1)}


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, float)
    return {"n": len(a), "p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "max": round(float(a.max()), 1), "mean": round(float(a.mean()), 1)}


def run_threads(n: int, fn: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


# ---------------------------------------------------------------- phases
def link(base: str, slug: str) -> str:
    return f"{base}/?study={slug}&PROLIFIC_PID={prolific_pid()}&STUDY_ID={'a' * 24}&SESSION_ID={secrets.token_hex(12)}"


def ours_round(a: argparse.Namespace, browser: Browser, base: str, app: subprocess.Popen, db: Database,
               spec: dict, r: int) -> dict:
    """N browser participants through our study at once (round r: fresh sessions)."""
    quiet = wait_quiet(a.quiet, a.quiet_wait_s)
    load = Load(lambda procs: _tree(procs, app.pid))
    print(f"ours, round {r + 1}: {a.n} browsers through {spec['id']} ({spec['trials']} trials) ...", flush=True)

    def one(i: int) -> BenchParticipant:
        who = BenchParticipant(browser.page(), Runtime(db), Thinker(a.think_ms, 1000 * (r + 1) + i))
        who.open(link(base, spec["id"]))
        who.run()
        who.page.context.close()
        return who

    people = run_threads(a.n, one)
    samples = [s for p in people for s in p.samples]
    return {"load": {**load.done(), **quiet}, "samples": samples, "screens": [p.screens for p in people]}


def otree_bin() -> Path:
    """`otree` from `bench/.otree-venv`, installed there (pinned) on first use."""
    exe = OTREE_VENV / "bin" / "otree"
    py = OTREE_VENV / "bin" / "python"
    if exe.exists():
        have = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('otree'))"],
                              capture_output=True, text=True).stdout.strip()
        if have == OTREE_VERSION:
            return exe
    print(f"installing otree=={OTREE_VERSION} into {OTREE_VENV} ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(OTREE_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"otree=={OTREE_VERSION}"], check=True)
    return exe


def write_anchor(screens: list[list[dict]], stimuli: Path) -> int:
    """trials.json and the pictures for the oTree project: participant i sees our participant i's
    main-trial screens (same files, concept names and definitions). Returns the number of rounds."""
    static = OTREE_DIR / "_static" / "anchor_run"
    shutil.rmtree(static, ignore_errors=True)
    static.mkdir(parents=True)
    people = []
    for person in screens:
        rounds = []
        for c in person:
            names = {x: describe(x) for x in c["candidates"]}
            files = [(c["image_file"], "The image")] + [(c["maps"][x], names[x].name) for x in c["candidates"]
                                                       if c.get("maps")]
            for rel, _ in files:
                (static / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(stimuli / rel, static / rel)
            rounds.append({"images": [{"src": f"/static/anchor_run/{rel}", "caption": cap} for rel, cap in files],
                           "candidates": [{"id": x, "name": names[x].name, "definition": names[x].definition or ""}
                                          for x in c["candidates"]]})
        people.append(rounds)
    n_rounds = min(len(p) for p in people)
    (OTREE_DIR / "trials.json").write_text(json.dumps({"rounds": n_rounds, "participants": people}))
    return n_rounds


def _post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def otree_server(exe: Path, log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for k in ("OTREE_PRODUCTION", "OTREE_AUTH_LEVEL", "DATABASE_URL"):
        env.pop(k, None)
    fh = open(log, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(exe), "devserver", str(port)], cwd=OTREE_DIR, env=env, stdout=fh,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"otree devserver did not start: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        yield proc, base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)   # the devserver and its inner server (our own group)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        fh.close()


def otree_round(a: argparse.Namespace, browser: Browser, base: str, server: subprocess.Popen, r: int) -> dict:
    """N browser participants through a new session of the oTree anchor at once."""
    anchor_trials = json.loads((OTREE_DIR / "trials.json").read_text())
    people, rounds = anchor_trials["participants"], anchor_trials["rounds"]
    session = _post(base + "/api/sessions", {"session_config_name": "anchor", "num_participants": a.n})
    info = _post(base + f"/api/get_session/{session['code']}", {})
    codes = [p["code"] for p in sorted(info["participants"], key=lambda p: p["id_in_session"])]
    quiet = wait_quiet(a.quiet, a.quiet_wait_s)
    load = Load(lambda procs: {p for p, v in procs.items() if v[1] == server.pid})
    print(f"oTree, round {r + 1}: {a.n} browsers through {rounds} pages (otree devserver {OTREE_VERSION}) ...",
          flush=True)

    def one(i: int) -> list[dict]:
        page, think, out = browser.page(), Thinker(a.think_ms, 1000 * (r + 1) + i), []

        def watch(k: int) -> list[Any]:
            n_img = len(people[i][(k - 1) % len(people[i])]["images"])
            return [f'#bench-round[data-round="{k}"]', "#pick_0", "img.bench-img", n_img]

        page.goto(f"{base}/InitializeParticipant/{codes[i]}")
        page.evaluate(ARM_JS, watch(1))
        page.wait_for_function(READY_JS, polling=20, timeout=60_000)
        for k in range(1, rounds + 1):
            think()
            if k < rounds:
                s = timed_click(page, watch(k + 1), lambda: page.locator("#pick_0").click(timeout=60_000))
                out.append({**s, "round": k})
            else:
                page.locator("#pick_0").click(timeout=60_000)
                page.locator("#bench-done").wait_for(timeout=60_000)
        page.context.close()
        return out

    samples = [s for p in run_threads(a.n, one) for s in p]
    return {"load": {**load.done(), **quiet}, "samples": samples}


def summary(rounds: list[dict]) -> dict:
    """Pooled figures over rounds, each round's own p50/p95 and load."""
    samples = [s for r in rounds for s in r["samples"]]
    return {**stats([s["ms"] for s in samples]), "driver": stats([s["driver_ms"] for s in samples]),
            "rounds": [{**{k: v for k, v in stats([s["ms"] for s in r["samples"]]).items() if k in ("n", "p50", "p95")},
                        "load": r["load"]} for r in rounds],
            "load": pooled_load([r["load"] for r in rounds]),
            "samples_ms": [round(s["ms"], 1) for s in samples]}


def pooled_load(loads: list[dict]) -> dict:
    wall = sum(ld["wall_s"] for ld in loads)
    out: dict[str, Any] = {"wall_s": round(wall, 1), "cores": loads[0]["cores"]}
    for k in ("cpu_busy_share", "bench_tree_share", "postgres_share", "other_share"):
        out[k] = round(sum(ld[k] * ld["wall_s"] for ld in loads) / max(1e-9, wall), 3)
    out["busy_share_before"] = max(ld["busy_share_before"] for ld in loads)
    cpu: dict[str, float] = {}
    for ld in loads:
        for k, v in ld["bench_tree_cpu_s"].items():
            cpu[k] = round(cpu.get(k, 0.0) + v, 1)
    out["bench_tree_cpu_s"] = dict(sorted(cpu.items(), key=lambda kv: -kv[1]))
    return out


def runtime_bench(a: argparse.Namespace, db: Database, slug: str, think_ms: float) -> dict:
    """`--threads` threads x `--per-thread` participants, `think_ms` (0.5x..1.5x) between answers;
    per answer: submit + the next current_step."""
    rt = Runtime(db)
    profile = BotProfile(quiz_pass=1.0, attention_pass=1.0)
    barrier = threading.Barrier(a.threads)
    print(f"runtime: {a.threads} threads x {a.per_thread} participants on PostgreSQL, pause {think_ms:g} ms ...",
          flush=True)

    def one(i: int) -> list[float]:
        rng, out = np.random.default_rng(2000 + i), []
        barrier.wait()
        for _ in range(a.per_thread):
            info = rt.start(slug, prolific_pid=prolific_pid(), study_id="a" * 24, session_id=secrets.token_hex(12))
            rt.consent(info.token, True)
            keys = _answer_keys(db, info.participant_id)
            view = rt.current_step(info.token)
            while view is not None:
                answer = _bot_answer(rt, view, keys[view.index], profile, EXAMPLE, rng)
                if think_ms > 0:
                    time.sleep(think_ms * float(rng.uniform(0.5, 1.5)) / 1000)
                t0 = time.perf_counter()
                rt.submit(info.token, view.index, answer)
                view = rt.current_step(info.token)
                out.append((time.perf_counter() - t0) * 1000)
            rt.finish(info.token)
        return out

    quiet = wait_quiet(a.quiet, a.quiet_wait_s)
    load = Load(lambda procs: set())
    t0 = time.perf_counter()
    samples = [x for xs in run_threads(a.threads, one) for x in xs]
    wall = time.perf_counter() - t0
    return {**stats(samples), "threads": a.threads, "per_thread": a.per_thread, "think_ms": think_ms,
            "answers_per_s": round(len(samples) / wall, 1), "load": {**load.done(), **quiet}}


# ---------------------------------------------------------------- databases
@contextlib.contextmanager
def scratch_pg() -> Iterator[str]:
    """A scratch PostgreSQL database (SQLAlchemy URL), dropped at the end."""
    with scratch_postgres(pg_admin_url(), "convis_bench") as url:
        yield url


def launch(db: Database, folder: Path, trials: int) -> dict:
    return launch_example(db, EXAMPLE, folder, trials=trials,
                          recruitment={"target_per_condition": 100_000, "max_starts_per_client": None})


# ---------------------------------------------------------------- report
def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}"


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return f"{'met' if value <= target else 'missed'} (target <= {target:g} ms)"


def table(r: dict) -> str:
    o, t, rts = r["ours"], r.get("otree") or {}, r["runtime"]

    def row(name: str, s: dict) -> str:
        if not s.get("n"):
            return f"| {name} | - | - | - | 0 |"
        return f"| {name} | {s['p50']:.0f} | {s['p95']:.0f} | {s['max']:.0f} | {s['n']} |"

    lines = [
        f"N = {r['args']['n']} browsers at once (one headless Chromium, a context each), {r['args']['rounds']} "
        f"round(s) each side alternating, think {r['args']['think_ms']:g} ms (0.5x..1.5x) before each answer; "
        f"{r['machine']}",
        "",
        "| click -> next trial's images visible (ms) | p50 | p95 | max | n |",
        "|---|---|---|---|---|",
        row(f"ConVis participant page (Streamlit, {r['args']['db']})", o),
    ]
    if t.get("n"):
        lines.append(row(f"oTree {t['version']} survey pages (devserver)", t))
        lines.append(f"| ratio ours / oTree | {o['p50'] / t['p50']:.2f}x | {o['p95'] / t['p95']:.2f}x | | |")
    else:
        lines.append(f"| oTree anchor | not run: {r.get('otree_error', 'skipped')} | | | |")

    def per_round(s: dict) -> str:
        return ", ".join(f"{x['p50']:.0f}/{x['p95']:.0f}" for x in s.get("rounds", []) if x.get("n"))

    lines.append("")
    lines.append(f"p50/p95 per round: ours {per_round(o)}" + (f"; oTree {per_round(t)}" if t.get("n") else ""))
    lines += [
        "",
        *(["| runtime submit + next current_step (PostgreSQL) | p50 | p95 | max | n |",
           "|---|---|---|---|---|"] if rts else []),
        *[f"| {rt['threads']} threads x {rt['per_thread']} participants, pause {rt['think_ms']:g} ms "
          f"({rt['answers_per_s']:.0f} answers/s) | {rt['p50']:.1f} | {rt['p95']:.1f} | {rt['max']:.1f} | {rt['n']} |"
          for rt in rts],
        "",
    ]

    def load(name: str, ld: dict) -> str:
        return (f"load, {name}: {ld['wall_s']:.0f} s; CPU busy {ld['cpu_busy_share']:.0%} of {ld['cores']} cores "
                f"(this bench's processes {ld['bench_tree_share']:.0%}, PostgreSQL {ld['postgres_share']:.0%}, "
                f"others {ld['other_share']:.0%}; {ld['busy_share_before']:.0%} busy just before)"
                + "; CPU s: " + ", ".join(f"{k} {v:.0f}" for k, v in ld["bench_tree_cpu_s"].items() if v >= 0.5))

    lines.append(load("ours", o["load"]))
    if t.get("n"):
        lines.append(load("oTree", t["load"]))
    for rt in rts:
        lines.append(load(f"runtime, pause {rt['think_ms']:g} ms", rt["load"]))
    lines += ["", f"page p95: {verdict(o.get('p95'), TARGET_PAGE_P95_MS)}"]
    lines += [f"runtime p95, {rt['threads']} threads, pause {rt['think_ms']:g} ms: "
              f"{verdict(rt.get('p95'), TARGET_RUNTIME_P95_MS)}" for rt in rts]
    if o.get("tracebacks_in_server_log"):
        lines.append(f"WARNING: {o['tracebacks_in_server_log']} traceback(s) in the app's log")
    return "\n".join(lines)


def browsers(a: argparse.Namespace, browser: Browser, url: str, db: Database, spec: dict, stimuli: Path,
             work: Path, result: dict) -> None:
    """`--rounds` rounds of N browsers on our page, each followed by N browsers on the oTree anchor
    (alternating, so that both see the same machine); the anchor shows round 1's screens."""
    env = {"DATABASE_URL": url, "CONVIS_PID_KEY": os.environ["CONVIS_PID_KEY"]}
    ours, theirs = [], []
    with app_process(env, work / "streamlit.log") as (app, base), contextlib.ExitStack() as stack:
        ot = None
        for r in range(a.rounds):
            ours.append(ours_round(a, browser, base, app, db, spec, r))
            if r == 0 and not a.no_otree:
                try:
                    exe = otree_bin()
                    write_anchor(ours[0]["screens"], stimuli)
                    ot = stack.enter_context(otree_server(exe, work / "otree.log"))
                except Exception as exc:  # say why; never a made-up anchor
                    result["otree_error"] = f"{type(exc).__name__}: {exc}"[:500]
                    print(f"oTree anchor not run: {result['otree_error']}", flush=True)
            if ot is not None:
                try:
                    theirs.append(otree_round(a, browser, ot[1], ot[0], r))
                except Exception as exc:
                    result["otree_error"] = f"{type(exc).__name__}: {exc}"[:500]
                    print(f"oTree anchor failed: {result['otree_error']}", flush=True)
                    ot = None
                    theirs.clear()
    log = (work / "streamlit.log").read_text(errors="replace")
    result["ours"] = {**summary(ours), "tracebacks_in_server_log": log.count("Traceback")}
    if theirs:
        result["otree"] = {**summary(theirs), "server": "otree devserver", "version": OTREE_VERSION,
                           "pages": json.loads((OTREE_DIR / "trials.json").read_text())["rounds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="browser participants at once (ours, then oTree)")
    ap.add_argument("--trials", type=int, default=16, help="main trials of the study (the example has 16)")
    ap.add_argument("--threads", type=int, default=50, help="runtime bench threads")
    ap.add_argument("--per-thread", type=int, default=4, help="runtime bench participants per thread")
    ap.add_argument("--think-ms", type=float, default=1000.0,
                    help="browser participants' pause before each answer (0.5x..1.5x); 0 = none")
    ap.add_argument("--runtime-think-ms", type=float, nargs="+", default=[0.0, 1000.0],
                    help="runtime threads' pause between answers (0.5x..1.5x); one runtime phase per value "
                         "(0: back to back, the machine saturated)")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite", help="database of the app (browsers)")
    ap.add_argument("--quiet", type=float, default=0.25,
                    help="before each phase, wait until the machine's CPU busy share is under this (other jobs)")
    ap.add_argument("--quiet-wait-s", type=float, default=900, help="longest wait for a quiet machine per phase")
    ap.add_argument("--rounds", type=int, default=2,
                    help="browser rounds (ours then oTree, alternating; fresh participants each round)")
    ap.add_argument("--no-otree", action="store_true", help="skip the oTree anchor")
    ap.add_argument("--no-runtime", action="store_true", help="skip the runtime threads bench")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    os.environ.setdefault("CONVIS_PID_KEY", secrets.token_hex(32))

    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine(), "args": vars(a), "example": EXAMPLE}
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-participants-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    try:
        with scratch_pg() as pg:
            pg_db = connect(pg)
            if a.db == "postgres":
                url, db, spec = pg, pg_db, launch(pg_db, work, a.trials)
            else:
                url = f"sqlite:///{work / 'studies.sqlite'}"
                db = connect(url)
                spec = launch(db, work, a.trials)
            stimuli = Path(spec["stimuli"]["dir"])
            browser = Browser()
            try:
                browsers(a, browser, url, db, spec, stimuli, work, result)
            finally:
                browser.close()
            if a.db != "postgres":
                (work / "pg").mkdir()
            rt_spec = spec if a.db == "postgres" else launch(pg_db, work / "pg", a.trials)
            result["runtime"] = [] if a.no_runtime else [runtime_bench(a, pg_db, rt_spec["id"], ms)
                                                         for ms in a.runtime_think_ms]
            if a.db != "postgres":
                forget(url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if result.get("otree", {}).get("n"):
        result["ratio_p50"] = round(result["ours"]["p50"] / result["otree"]["p50"], 2)
        result["ratio_p95"] = round(result["ours"]["p95"] / result["otree"]["p95"], 2)
    result["targets"] = {"page_p95_ms": TARGET_PAGE_P95_MS, "page_met": result["ours"].get("p95", 1e9) <= TARGET_PAGE_P95_MS,
                         "runtime_p95_ms": TARGET_RUNTIME_P95_MS,
                         "runtime_met": {f"pause_{r['think_ms']:g}ms": r.get("p95", 1e9) <= TARGET_RUNTIME_P95_MS
                                         for r in result["runtime"]}}
    text = table(result)
    result["table"] = text
    print("\n" + text, flush=True)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

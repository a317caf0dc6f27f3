"""Run folders: where a run's files and its state live, and background runs that outlive a page.

A run folder holds ``config.json`` (what was asked), ``state.json`` (``running``/``done``/
``failed``, done/total, pid and its start time, a heartbeat), ``cache/`` (per-item records),
``log.txt`` (a background run's output) and the results (``per_image.csv``, ``summary.json``,
``table.txt``, PNG plots). A run is *alive* while its state says running, its process still runs
(pid and process start time, so a reused pid does not count) and its heartbeat is fresh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import PROJECT_ROOT, atomic_write_bytes, data_dir

STALE_S = 120.0  # a running state not written for this long (and no process) is dead
_children: list[subprocess.Popen] = []


def runs_root() -> Path:
    """``<data dir>/evaluations``: the default home of runs (the app lists it)."""
    return data_dir() / "evaluations"


def _proc_start(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X", "x") else fields[19]


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=str).encode())


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class StateWriter:
    """Writes a run's ``state.json`` as it goes (at most every ``every_s`` seconds for progress)."""

    def __init__(self, folder: Path, every_s: float = 0.5) -> None:
        self.path, self.every_s, self.last = Path(folder) / "state.json", every_s, 0.0
        self.state: dict[str, Any] = {"state": "running", "pid": os.getpid(), "proc_start": _proc_start(os.getpid()),
                                      "started": time.time(), "done": 0, "total": 0, "stage": "starting"}
        self.write()

    def write(self, **changes: Any) -> None:
        self.state.update(changes, heartbeat=time.time())
        write_json(self.path, self.state)
        self.last = time.time()

    def progress(self, done: int, total: int, stage: str) -> None:
        self.state.update(done=done, total=total, stage=stage)
        if time.time() - self.last >= self.every_s or done == total:
            self.write()


@dataclass(frozen=True)
class RunInfo:
    """A run as a page sees it."""

    folder: Path
    kind: str
    state: str  # running | done | failed | dead | unknown
    done: int
    total: int
    stage: str
    error: str
    config: dict[str, Any]
    summary: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else (1.0 if self.state == "done" else 0.0)

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            with open(self.folder / "log.txt", "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


def _alive(st: dict[str, Any]) -> bool:
    pid = st.get("pid")
    if not pid:
        return False
    start = _proc_start(int(pid))
    if Path("/proc").is_dir():  # the process itself (a reused pid has another start time)
        return start is not None and (not st.get("proc_start") or start == st["proc_start"])
    return time.time() - float(st.get("heartbeat", 0)) < STALE_S


def run_info(folder: Path) -> RunInfo:
    """Read a run folder; a run whose state says running but whose process is gone is ``dead``."""
    folder = Path(folder)
    st = read_json(folder / "state.json") or {}
    cfg = read_json(folder / "config.json") or {}
    state = st.get("state", "unknown")
    if state == "running" and not _alive(st):
        state = "dead"
    return RunInfo(folder, cfg.get("kind", "?"), state, int(st.get("done", 0)), int(st.get("total", 0)),
                   str(st.get("stage", "")), str(st.get("error", "")), cfg, read_json(folder / "summary.json"))


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run folder under ``root`` (default :func:`runs_root`), newest first."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    return [run_info(p) for p in sorted(folders, key=lambda p: (p / "config.json").stat().st_mtime, reverse=True)]


def start_background(argv: list[str], folder: Path) -> subprocess.Popen:
    """Start ``python -m convis_core eval ARGV --run-dir FOLDER`` detached from this process (its
    own session, output appended to ``FOLDER/log.txt``); ``launch.json`` keeps ``argv`` so that
    :func:`resume` can start it again. The run writes its own state into the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "launch.json", {"argv": list(argv)})
    _reap()
    log = open(folder / "log.txt", "ab")  # noqa: SIM115 - handed to the child
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "convis_core", "eval", *argv, "--run-dir", str(folder)],
                            cwd=str(PROJECT_ROOT), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    log.close()
    _children.append(proc)
    # the state exists before the child writes its own, so a page shows the run at once
    write_json(folder / "state.json", {"state": "running", "pid": proc.pid, "proc_start": _proc_start(proc.pid),
                                       "started": time.time(), "heartbeat": time.time(), "done": 0, "total": 0,
                                       "stage": "starting"})
    return proc


def resume(folder: Path) -> subprocess.Popen:
    """Start a stopped background run again in its folder (cached items are kept)."""
    launch = read_json(Path(folder) / "launch.json")
    if not launch:
        raise FileNotFoundError(f"{folder} was not started in the background (no launch.json)")
    return start_background(launch["argv"], folder)


def _reap() -> None:
    """Collect finished children so they do not linger as zombies."""
    for p in list(_children):
        if p.poll() is not None:
            _children.remove(p)

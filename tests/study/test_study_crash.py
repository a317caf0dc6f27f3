"""Proof: SIGKILL a bot process mid-run; committed answers survive and the participant resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from study.bots import _answer_keys
from study.models import Participant, Response
from study.runtime import Runtime
from study.versions import launch

ROOT = Path(__file__).resolve().parents[2]


def test_kill_mid_run_then_resume(sqlite_db, write_spec) -> None:
    launch(sqlite_db, write_spec(trials=20))
    proc = subprocess.Popen(
        [sys.executable, "-m", "study", "--db", sqlite_db.url, "bots", "demo", "-n", "1", "--delay-ms", "40"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("STARTED"), line + proc.stderr.read()
    _, participant_id, token = line.split()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite_db.session() as s:
            n = s.scalar(select(func.count()).select_from(Response).where(Response.participant_id == participant_id))
        if n >= 5:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    with sqlite_db.session() as s:
        rows = s.scalars(select(Response).where(Response.participant_id == participant_id)
                         .order_by(Response.step_index)).all()
        p = s.get(Participant, participant_id)
    assert len(rows) >= 5 and [r.step_index for r in rows] == list(range(len(rows)))
    assert p.current_step == len(rows) < p.n_steps and p.status == "active"
    rt = Runtime(sqlite_db)
    assert rt.current_step(token).index == len(rows)   # resumes at the next step
    keys = _answer_keys(sqlite_db, participant_id)
    while (step := rt.current_step(token)) is not None:
        rt.submit(token, step.index, {"choice": keys[step.index]["truth"]} if "truth" in keys[step.index] else {"ok": True})
    assert rt.finish(token).status == "completed"

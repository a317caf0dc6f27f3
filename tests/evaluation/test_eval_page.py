"""The Evaluation page (AppTest, as the other researcher pages: the page file itself, without the
app's login) and background runs as real detached processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from convis_core.evaluation import runs
from convis_core.evaluation.runner import RunConfig, run_wsol

PAGE = Path(__file__).resolve().parents[2] / "app_pages" / "evaluation.py"
TINY_ARGV = ["--model", "convis-tiny", "--methods", "centre,random", "--bank", "subtree=bird.n.01", "--no-plots",
             "--no-progress"]


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    d = tmp_path / "data"
    # only the runs folder moves: WordNet and the engine's caches stay in the real data dir
    monkeypatch.setattr(runs, "runs_root", lambda: d / "evaluations")
    return d


def text_of(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("markdown", "caption", "info", "warning", "error", "success", "code", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(parts + [df.value.to_csv() for df in at.dataframe])


def wait_state(folder: Path, states: set[str], timeout: float = 120) -> runs.RunInfo:
    deadline = time.time() + timeout
    while (info := runs.run_info(folder)).state not in states:
        assert time.time() < deadline, (info, info.log_tail())
        time.sleep(0.5)
    return info


def test_page_without_runs(data_dir: Path) -> None:
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    assert "No evaluation runs yet" in text_of(at)


def test_page_shows_a_saved_run_and_a_stopped_one(data_dir: Path, cub_dir: Path) -> None:
    root = data_dir / "evaluations"
    run_wsol(RunConfig(kind="wsol", data=str(cub_dir), out=str(root / "wsol-done"), model="convis-tiny",
                       pretrained="none", concept="bird.n.01", methods=["centre"], bank="subtree=bird.n.01", gallery=1),
             show_progress=False)
    dead = root / "wsol-dead"
    dead.mkdir(parents=True)
    (dead / "config.json").write_text(json.dumps({"kind": "wsol", "methods": ["centre"]}))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    (dead / "state.json").write_text(json.dumps({"state": "running", "pid": proc.pid, "done": 2, "total": 8,
                                                 "heartbeat": time.time()}))
    (dead / "launch.json").write_text(json.dumps({"argv": ["wsol", str(cub_dir), *TINY_ARGV]}))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    txt = text_of(at)
    assert "wsol-done" in txt and "stopped (process gone)" in txt and "MaxBoxAcc: centre" in txt
    at.selectbox(key="eval_pick").select("wsol-done").run()
    txt = text_of(at)
    assert "MaxBoxAccV2" in txt and "RANDOM weights" in txt
    assert len(at.get("image")) >= 2  # the box-accuracy plot and the gallery
    at.selectbox(key="eval_pick").select("wsol-dead").run()
    assert "process is gone" in text_of(at)
    assert any(b.label == "Resume" for b in at.button)


def test_page_starts_a_shapes_run_in_the_background(data_dir: Path, monkeypatch) -> None:
    started = []
    monkeypatch.setattr(runs, "start_background", lambda argv, folder: started.append((argv, Path(folder))))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.radio(key="eval_kind").set_value("OOD detection (shapes-imagenet, polygons vs digits)")
    at.number_input(key="eval_sample").set_value(30)
    submit = next(b for b in at.button if b.label == "Start in the background")
    submit.click().run()
    assert not at.exception, at.exception
    (argv, folder), = started
    assert argv[:2] == ["ood", "shapes-imagenet"] and "--sample" in argv and "30" in argv
    assert folder.parent == data_dir / "evaluations" and folder.name.startswith("ood-shapes-")


def test_background_run_is_detached_killable_and_resumes(data_dir: Path, cub_dir: Path) -> None:
    folder = data_dir / "evaluations" / "bg"
    proc = runs.start_background(["wsol", str(cub_dir), *TINY_ARGV], folder)
    assert runs.run_info(folder).state == "running"  # shown at once, before the child writes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_state(folder, {"dead"}).state == "dead"
    runs.resume(folder)
    info = wait_state(folder, {"done", "failed"}, timeout=240)
    assert info.state == "done", info.log_tail()
    assert info.summary["methods"]["centre"]["n"] == 4 and (folder / "per_image.csv").is_file()


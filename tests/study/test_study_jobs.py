"""Drafts, uploads and the precompute job: a real detached worker process building a tiny engine
study (Shapes-world scenes, the seeded tiny ViT, ConVis + centre bias), progress in the database,
SIGKILL in the middle and a resumed run whose manifest equals an uninterrupted build's, cancel
and resume, clear failures; job state on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from sqlalchemy import delete, update

from study import cli, jobs
from study import db as dbmod
from study.drafts import (
    UploadError,
    delete_draft,
    get_draft,
    list_drafts,
    safe_filename,
    save_draft,
    save_upload,
    save_zip,
    upload_dir,
)
from study.errors import NotFound, SpecError, StudyError
from study.models import PrecomputeJob, StudyDraft
from study.stimuli import MANIFEST, load_manifest
from study.versions import launch

ROOT = Path(__file__).resolve().parents[2]
REAL_DATA = ROOT / ".data"
DEADLINE_S = 240


def _data_dir(path: Path) -> Path:
    """A fresh data folder sharing only WordNet (files and graph cache) with the real one."""
    (path / "cache").mkdir(parents=True)
    (path / "nltk_data").symlink_to(REAL_DATA / "nltk_data")
    (path / "cache" / "wordnet").symlink_to(REAL_DATA / "cache" / "wordnet")
    return path


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = _data_dir(tmp_path / "data")
    monkeypatch.setenv("CONVIS_DATA_DIR", str(folder))
    return folder


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dbmod.Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
        yield dbmod.connect(url)
        dbmod.forget(url)
    else:
        db = request.getfixturevalue("pg_db")
        with db.session() as s:
            s.execute(delete(PrecomputeJob))
            s.execute(delete(StudyDraft))
        yield db


def tiny_spec(slug: str = "tiny-jobs", **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": slug, "title": "Tiny jobs", "consent": "I agree.", "instructions": "Predict the model.",
        "stimuli": {"source": "engine", "model": "convis-tiny", "pretrained": "none",
                    "bank": "subtree=plane_figure.n.01", "params": {"convis": {"stride": 32}}},
        "images": {"shapes": 3},
        "concepts": ["circle.n.01", "square.n.01"], "methods": ["convis", "centre"],
        "protocol": {"name": "forward_simulation", "options": {"n_candidates": 2}},
        "trials": 2, "recruitment": {"completion_code": "TINY1"},
    }
    spec.update(over)
    return spec


def _yaml(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=False)


def wait_for(db: dbmod.Database, slug: str, until: Callable[[jobs.JobInfo], bool],
             seen: list[tuple[str, int]] | None = None, timeout: float = DEADLINE_S) -> jobs.JobInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = jobs.status(db, slug)
        if info is not None:
            if seen is not None:
                seen.append((info.state, info.done))
            if until(info):
                return info
        time.sleep(0.05)
    info = jobs.status(db, slug)
    raise AssertionError(f"timed out; last status {info}; log:\n{info.log_tail() if info else ''}")


def ended(info: jobs.JobInfo) -> bool:
    return info.state in ("done", "failed", "cancelled")


def _png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


# ---------------------------------------------------------------------------------- drafts
def test_drafts_save_get_list_delete(any_db, data) -> None:
    d = save_draft(any_db, _yaml(tiny_spec()))
    assert d.slug == "tiny-jobs" and d.title == "Tiny jobs"
    assert Path(d.base_dir) == (data / "drafts" / "tiny-jobs").resolve() and Path(d.base_dir).is_dir()
    assert get_draft(any_db, "tiny-jobs") == d and get_draft(any_db, "nope") is None
    spec = d.spec()
    folder = spec.stimuli_dir()
    assert folder.parent == (data / "stimuli").resolve() and folder.name.startswith("tiny-jobs.")

    time.sleep(0.01)
    d2 = save_draft(any_db, _yaml(tiny_spec(title="Tiny, renamed", consent="Still agreed.")))
    assert d2.updated_at > d.updated_at and d2.created_at == d.created_at and d2.title == "Tiny, renamed"
    assert d2.spec().stimuli_dir() == folder  # texts do not change the stimuli: same folder
    other = save_draft(any_db, _yaml(tiny_spec(concepts=["circle.n.01", "triangle.n.01"])))
    assert other.spec().stimuli_dir() != folder  # a concept does
    save_draft(any_db, _yaml(tiny_spec("second")))
    assert [x.slug for x in list_drafts(any_db)] == ["second", "tiny-jobs"]
    delete_draft(any_db, "second")
    assert [x.slug for x in list_drafts(any_db)] == ["tiny-jobs"]
    with pytest.raises(NotFound):
        delete_draft(any_db, "second")


def test_invalid_draft_lists_every_problem_and_stores_nothing(sqlite_db, data) -> None:
    bad = tiny_spec(concepts=["circle.n.01", "cirle.n.01", "square.n.99"], trials=0,
                    protocol={"name": "forward_simulaton"})
    bad["stimuli"]["styel"] = "raw"
    with pytest.raises(SpecError) as err:
        save_draft(sqlite_db, _yaml(bad))
    problems = err.value.problems
    assert len(problems) >= 3, problems
    assert any("forward_simulaton" in p and "did you mean 'forward_simulation'" in p for p in problems)
    assert any("styel" in p and "line" in p for p in problems)
    assert any("trials" in p for p in problems)
    with pytest.raises(SpecError) as err:
        save_draft(sqlite_db, "id: [unclosed\n")
    assert "malformed YAML" in err.value.problems[0]
    files = tiny_spec("files", images=[{"file": "images/a.png"}, {"file": "images/b.png"}])
    with pytest.raises(SpecError, match=r"images\.0\.file: no file 'images/a.png'") as err:
        save_draft(sqlite_db, _yaml(files))
    assert len(err.value.problems) == 2
    assert list_drafts(sqlite_db) == []


# ---------------------------------------------------------------------------------- uploads
def test_upload_sanitises_names_and_refuses_non_images(data, monkeypatch) -> None:
    assert save_upload("up", "../../etc/My Photo (1).PNG", _png((200, 0, 0))) == "images/My_Photo_1_.png"
    assert (upload_dir("up") / "My_Photo_1_.png").is_file()
    assert not (data / "etc").exists()
    assert save_upload("up", "C:\\Users\\x\\cat.png", _png((0, 200, 0), fmt="JPEG")) == "images/cat.jpg"  # real format
    assert safe_filename("..hidden.png") == "hidden.png" and safe_filename("a/b/ümlaut é.webp") == "mlaut_.webp"
    assert len(safe_filename("x" * 500 + ".png")) == 100
    with pytest.raises(UploadError, match="not an image file"):
        save_upload("up", "notes.png", b"hello, not an image")
    with pytest.raises(UploadError, match="GIF images are not accepted"):
        save_upload("up", "anim.gif", _png((1, 2, 3), fmt="GIF"))
    with pytest.raises(UploadError, match="empty"):
        save_upload("up", "empty.png", b"")
    with pytest.raises(UploadError, match="too small"):
        save_upload("up", "tiny.png", _png((1, 2, 3), size=(4, 4)))
    monkeypatch.setattr("study.drafts.MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(UploadError, match="over the limit"):
        save_upload("up", "big.png", np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(StudyError, match="not a study id"):
        save_upload("../evil", "x.png", _png((1, 2, 3)))
    assert sorted(p.name for p in upload_dir("up").iterdir()) == ["My_Photo_1_.png", "cat.jpg"]


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in entries:
            zf.writestr(name, body)
    return buf.getvalue()


def test_zip_upload_guards(data, monkeypatch) -> None:
    ok = _zip([("set/a.png", _png((10, 10, 10))), ("set/sub/b.jpg", _png((20, 20, 20), fmt="JPEG")),
               ("__MACOSX/set/._a.png", b"junk"), (".DS_Store", b"junk"), ("set/", b"")])
    assert save_zip("z", ok) == ["images/a.png", "images/b.jpg"]
    before = sorted(p.name for p in upload_dir("z").iterdir())

    def refused(data_: bytes, match: str) -> None:
        with pytest.raises(UploadError, match=match):
            save_zip("z", data_)
        assert sorted(p.name for p in upload_dir("z").iterdir()) == before  # nothing written
        assert not list((data / "drafts").rglob(".zip-*"))

    refused(_zip([("c.png", _png((1, 1, 1))), ("../../escape.png", _png((2, 2, 2)))]), "points outside the folder")
    refused(_zip([("/abs.png", _png((1, 1, 1)))]), "points outside the folder")
    link = zipfile.ZipInfo("link.png")
    link.external_attr = (0o120777 << 16)
    refused(_zip([(link, b"/etc/passwd")]), "is a link")
    refused(_zip([("c.png", _png((1, 1, 1))), ("readme.txt", b"hi")]), "not a .png")
    refused(_zip([("x/c.png", _png((1, 1, 1))), ("y/c.png", _png((2, 2, 2)))]), "same name")
    refused(_zip([("c.png", b"not really a png")]), "not an image file")
    refused(b"PK\x03\x04 broken", "not a readable zip")
    # a zip bomb: 300 MB of zeros in a few hundred KB, its header lying about the size
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open("bomb.png", "w", force_zip64=True) as fh:
        block = bytes(1 << 20)
        for _ in range(300):
            fh.write(block)
    raw = bomb.getvalue()
    assert len(raw) < 2_000_000
    t0 = time.perf_counter()
    refused(raw, "over 20 MB|expands beyond")
    # 30 MB of zeros whose headers (local and central) claim 1,000 bytes: reading stops at the
    # claimed size and the CRC check refuses the entry
    small = _zip([("liar.png", bytes(30 << 20))])
    forged = small.replace((30 << 20).to_bytes(4, "little"), (1000).to_bytes(4, "little"))
    assert forged.count((1000).to_bytes(4, "little")) >= 2
    refused(forged, "cannot be read|expands beyond")
    assert time.perf_counter() - t0 < 30
    monkeypatch.setattr("study.drafts.MAX_ZIP_FILES", 3)
    refused(_zip([(f"i{i}.png", _png((i, i, i))) for i in range(4)]), "at most 3")


# ---------------------------------------------------------------------------------- the worker
def test_worker_builds_with_progress_and_launch_uses_it(sqlite_db, data) -> None:
    draft = save_draft(sqlite_db, _yaml(tiny_spec()))
    est = jobs.estimate(draft.spec())
    assert (est.n_images, est.n_concepts, est.n_methods, est.n_maps) == (3, 2, 2, 12)
    assert est.seconds > 0 and set(est.per_method_seconds) == {"convis", "centre"}
    assert all(b.startswith("calibrated now") for b in est.basis.values())
    assert est.per_method_seconds["convis"] > est.per_method_seconds["centre"]

    info = jobs.start(sqlite_db, "tiny-jobs", throttle=0.15)
    assert info.state in ("queued", "running") and info.alive and info.pid
    assert jobs.start(sqlite_db, "tiny-jobs").id == info.id  # one worker per study
    assert cli.main(["--db", sqlite_db.url, "precompute", "tiny-jobs"]) == 2  # by hand: refused while it runs
    seen: list[tuple[str, int]] = []
    done = wait_for(sqlite_db, "tiny-jobs", ended, seen)
    assert done.state == "done", (done.error, done.log_tail())
    assert done.done == done.total == 12 and done.skipped == 0 and done.eta_seconds == 0.0
    counts = [n for state, n in seen if state == "running"]
    assert counts == sorted(counts) and any(0 < n < 12 for n in counts), seen  # progress, step by step
    assert set(done.maps_per_second) == {"convis", "centre"}
    assert done.timings["methods"]["convis"]["first_n"] == 3  # one crop encoding per image ...
    assert done.timings["methods"]["convis"]["next_n"] == 3   # ... served the second concept
    assert not done.alive and done.finished_at is not None and "started" in done.log_tail()
    folder = Path(done.stimuli_dir)
    manifest = load_manifest(folder)  # every file checked against its sha256
    assert manifest.sha256() == done.manifest_sha256 and len(manifest.stimuli) == 12
    assert manifest.random_weights and manifest.methods == ["centre", "convis"]

    # figures stored by the job serve the next estimate
    est2 = jobs.estimate(draft.spec(), sqlite_db, calibrate=False)
    assert all(b.startswith("measured by an earlier job") for b in est2.basis.values())

    # launching uses the precomputed folder: nothing is rebuilt
    mtime = (folder / MANIFEST).stat().st_mtime_ns
    version = launch(sqlite_db, draft.spec())
    assert Path(version.stimuli_dir) == folder and (folder / MANIFEST).stat().st_mtime_ns == mtime
    # a job of the launched study (its draft still there) finds everything stored
    again = jobs.run_worker(sqlite_db, "tiny-jobs")
    assert again.state == "done" and again.skipped == again.total == 12 and again.manifest_sha256 == done.manifest_sha256
    assert (folder / MANIFEST).stat().st_mtime_ns == mtime
    # without a draft, the active version's folder is checked, never rebuilt
    delete_draft(sqlite_db, "tiny-jobs")
    checked = jobs.run_worker(sqlite_db, "tiny-jobs")
    assert checked.state == "done" and checked.source == "version 1" and checked.manifest_sha256 == done.manifest_sha256
    with pytest.raises(NotFound):
        jobs.start(sqlite_db, "never-saved")


def test_kill_mid_build_then_resume_equals_uninterrupted_build(sqlite_db, data, tmp_path) -> None:
    save_draft(sqlite_db, _yaml(tiny_spec()))
    first = jobs.start(sqlite_db, "tiny-jobs", throttle=0.4)
    mid = wait_for(sqlite_db, "tiny-jobs", lambda i: i.done >= 1 or ended(i))
    assert mid.state == "running" and 1 <= mid.done < mid.total, mid
    os.kill(first.pid, signal.SIGKILL)
    lost = wait_for(sqlite_db, "tiny-jobs", lambda i: not i.alive, timeout=10)
    assert lost.id == first.id and lost.state == "running" and not lost.active
    assert "stopped without finishing" in lost.error and "Start again to resume" in lost.error
    killed_at = lost.done
    assert killed_at < lost.total

    second = jobs.start(sqlite_db, "tiny-jobs")
    assert second.id != first.id
    done = wait_for(sqlite_db, "tiny-jobs", ended)
    assert done.id == second.id and done.state == "done", (done.error, done.log_tail())
    assert done.skipped >= killed_at and done.done == done.total == 12
    assert jobs.get_job(sqlite_db, first.id).state == "failed"  # the lost job, closed by the new start
    assert sum(t["first_n"] + t["next_n"] for t in done.timings["methods"].values()) == 12 - done.skipped

    # an uninterrupted build of the same spec in another folder, another process and a cold cache
    ref_spec = tiny_spec()
    ref_spec["stimuli"]["dir"] = str(tmp_path / "reference")
    ref_yaml = tmp_path / "ref.yaml"
    ref_yaml.write_text(_yaml(ref_spec))
    env = {**os.environ, "CONVIS_DATA_DIR": str(_data_dir(tmp_path / "ref-data")), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "study", "--db", f"sqlite:///{tmp_path / 'ref.sqlite'}",
                          "build-stimuli", str(ref_yaml)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=DEADLINE_S)
    assert out.returncode == 0, out.stderr
    ref = load_manifest(tmp_path / "reference")
    resumed = load_manifest(done.stimuli_dir)
    assert resumed.sha256() == ref.sha256() == json.loads(out.stdout)["manifest_sha256"]
    assert (Path(done.stimuli_dir) / MANIFEST).read_bytes() == (tmp_path / "reference" / MANIFEST).read_bytes()


def test_cancel_then_resume(any_db, data) -> None:
    save_draft(any_db, _yaml(tiny_spec()))
    first = jobs.start(any_db, "tiny-jobs", throttle=0.4)
    wait_for(any_db, "tiny-jobs", lambda i: i.done >= 1 or ended(i))
    asked = jobs.cancel(any_db, "tiny-jobs")
    assert asked.id == first.id and asked.cancel_requested
    cancelled = wait_for(any_db, "tiny-jobs", ended)
    assert cancelled.state == "cancelled" and not cancelled.alive and cancelled.error is None
    assert 1 <= cancelled.done < cancelled.total
    assert not (Path(cancelled.stimuli_dir) / MANIFEST).exists()  # written only at the end
    assert jobs.cancel(any_db, "tiny-jobs").state == "cancelled"  # nothing running: nothing changes

    jobs.start(any_db, "tiny-jobs")
    done = wait_for(any_db, "tiny-jobs", ended)
    assert done.state == "done" and done.skipped >= cancelled.done and done.done == 12, done.error
    load_manifest(done.stimuli_dir)


def test_lost_worker_is_seen_and_replaced(any_db, data) -> None:
    """Job state rules without a worker: a queued job whose worker never came is not alive once
    its heartbeat is stale; `start` closes it and queues a new one; one active job per study."""
    save_draft(any_db, _yaml(tiny_spec()))
    info, created = jobs._new_job(any_db, "tiny-jobs")
    assert created and jobs.status(any_db, "tiny-jobs").alive  # fresh heartbeat, no process known
    again, created = jobs._new_job(any_db, "tiny-jobs")
    assert not created and again.id == info.id
    with any_db.session() as s:
        s.execute(update(PrecomputeJob).where(PrecomputeJob.id == info.id)
                  .values(heartbeat_at=jobs.utcnow() - timedelta(seconds=jobs.STALE_S + 5)))
    lost = jobs.status(any_db, "tiny-jobs")
    assert lost.state == "queued" and not lost.alive and "did not start" in lost.error
    new, created = jobs._new_job(any_db, "tiny-jobs")
    assert created and new.id != info.id
    old = jobs.get_job(any_db, info.id)
    assert old.state == "failed" and "did not start" in old.error and old.finished_at is not None
    with any_db.session() as s:  # a dead pid on this host is seen at once, whatever the heartbeat
        s.execute(update(PrecomputeJob).where(PrecomputeJob.id == new.id)
                  .values(pid=2**22 + 12345, host=jobs.HOST, proc_start="1"))
    assert not jobs.status(any_db, "tiny-jobs").alive
    assert jobs.cancel(any_db, "tiny-jobs").state == "cancelled"
    with any_db.session() as s:
        assert s.query(PrecomputeJob).filter(PrecomputeJob.active_slug.is_not(None)).count() == 0


def test_failed_build_reports_a_clear_error(sqlite_db, data) -> None:
    paths = [save_upload("files", f"{c}.png", _png((60 * i, 90, 200 - 50 * i), size=(64, 48)))
             for i, c in enumerate("abc")]
    spec = tiny_spec("files", images=[{"file": p} for p in paths])
    save_draft(sqlite_db, _yaml(spec))
    (upload_dir("files") / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # corrupted after validation
    jobs.start(sqlite_db, "files")
    failed = wait_for(sqlite_db, "files", ended)
    assert failed.state == "failed" and not failed.alive
    assert failed.error.startswith("image 'b': cannot read image"), failed.error
    (upload_dir("files") / "b.png").unlink()  # deleted: refused before any worker starts
    with pytest.raises(SpecError, match=r"images\.1\.file: no file 'images/b.png'"):
        jobs.start(sqlite_db, "files")


def test_launched_folder_is_never_rebuilt(sqlite_db, data, tmp_path) -> None:
    spec = tiny_spec(images={"shapes": 2}, methods=["centre"])
    spec["stimuli"]["dir"] = str(tmp_path / "fixed")  # an explicit folder, kept across edits
    spec["stimuli"].pop("params")
    save_draft(sqlite_db, _yaml(spec))
    assert jobs.run_worker(sqlite_db, "tiny-jobs").state == "done"
    launch(sqlite_db, get_draft(sqlite_db, "tiny-jobs").spec())
    before = {p: p.read_bytes() for p in (tmp_path / "fixed").rglob("*") if p.is_file()}
    spec["stimuli"]["style"] = "heatmap"  # other maps, same folder
    save_draft(sqlite_db, _yaml(spec))
    failed = jobs.run_worker(sqlite_db, "tiny-jobs")
    assert failed.state == "failed" and "holds the stimuli of launched study 'tiny-jobs' version 1" in failed.error
    assert {p: p.read_bytes() for p in (tmp_path / "fixed").rglob("*") if p.is_file()} == before

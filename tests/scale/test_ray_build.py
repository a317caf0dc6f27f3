"""Precompute on Ray: a local Ray with 2 CPU workers builds a tiny engine study (Shapes-world
scenes, the seeded random tiny ViT, ConVis + centre bias). Its manifest equals the local
executor's bit for bit; a worker killed in the middle of an image is restarted and the result is
still identical; a cancelled Ray job stops at once and leaves a store that a second run completes
to the same manifest; the bank's sharded text encoding gives identical embeddings."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from convis_core import bank as bankmod
from convis_core.executors import LocalExecutor, RayExecutor, get_executor
from convis_core.shapes import TEST_ID_START, render_scene
from study import db as dbmod
from study import jobs
from study.drafts import save_draft
from study.stimuli import MANIFEST, BuildObserver, EngineBuild, load_manifest
from tests.scale.conftest import ROOT, fresh_data_dir

CONCEPTS = ["circle.n.01", "square.n.01"]
BANK = "subtree=plane_figure.n.01"
METHODS = ["convis", "centre"]
PARAMS = {"convis": {"stride": 32}}
N_IMAGES = 4


def _images() -> dict[str, dict[str, Any]]:
    return {f"scene{TEST_ID_START + i}": {"image": render_scene(TEST_ID_START + i, n_objects=2, pool=CONCEPTS).image}
            for i in range(N_IMAGES)}


def _build(folder: Path) -> EngineBuild:
    return EngineBuild(folder, _images(), CONCEPTS, METHODS, "convis-tiny", "none", bank=BANK, params=PARAMS)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and ".build" not in p.parts}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, bytes]]:
    """The local executor's build from empty caches: manifest bytes and every file."""
    base = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVIS_DATA_DIR", str(fresh_data_dir(base / "data")))
        bankmod._MEMO.clear()
        _build(base / "stim").run(executor=LocalExecutor())
        bankmod._MEMO.clear()
    return (base / "stim" / MANIFEST).read_bytes(), _files(base / "stim")


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = fresh_data_dir(tmp_path / "data")
    monkeypatch.setenv("CONVIS_DATA_DIR", str(folder))
    bankmod._MEMO.clear()
    return folder


def test_ray_manifest_equals_local_bit_for_bit(ray_cluster, reference, data, tmp_path) -> None:
    executor = get_executor("auto")
    assert isinstance(executor, RayExecutor) and executor.workers == 2
    events: list[tuple[str, int]] = []

    class Watch(BuildObserver):
        def image_scored(self, image_id: str, seconds: float) -> None:
            events.append(("image", 0))

        def map_done(self, done: int, total: int, event: Any) -> None:
            events.append(("map", done))

    _build(tmp_path / "stim").run(Watch(), executor=executor)
    manifest, files = reference
    assert (tmp_path / "stim" / MANIFEST).read_bytes() == manifest
    assert _files(tmp_path / "stim") == files             # every image, map and meta file, byte for byte
    assert len(set(executor.actor_pids)) == 2             # two worker processes did the images
    n_maps = N_IMAGES * len(CONCEPTS) * len(METHODS)
    assert [d for k, d in events if k == "map"] == list(range(1, n_maps + 1))   # same progress as local
    assert sum(k == "image" for k, _ in events) == N_IMAGES


def test_worker_killed_mid_image_is_retried_and_result_identical(ray_cluster, reference, data, tmp_path,
                                                                monkeypatch) -> None:
    flag = tmp_path / "kill-once"
    flag.write_text("the first Ray worker to delete this file kills itself after its next map")
    monkeypatch.setenv("CONVIS_FAULT_KILL_FILE", str(flag))
    executor = RayExecutor()
    _build(tmp_path / "stim").run(executor=executor)
    assert not flag.exists()                                # a worker claimed it and died (SIGKILL)
    assert (tmp_path / "stim" / MANIFEST).read_bytes() == reference[0]
    assert _files(tmp_path / "stim") == reference[1]


def _stored(folder: Path) -> int:
    return len(list((folder / ".build").glob("*.json"))) if (folder / ".build").is_dir() else 0


def test_precompute_job_on_ray_cancels_and_resumes_to_same_manifest(ray_cluster, reference, data, tmp_path) -> None:
    """The dashboard's job (`study.jobs`) with the Ray executor: cancel stops the workers at once;
    the store it leaves is resumed by a second job to the reference manifest."""
    db = dbmod.connect(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    spec = {"id": "ray-job", "title": "Ray job", "consent": "I agree.", "instructions": "Predict the model.",
            "stimuli": {"source": "engine", "model": "convis-tiny", "pretrained": "none", "bank": BANK,
                        "params": PARAMS},
            "images": {"shapes": 6, "n_objects": 2}, "concepts": CONCEPTS, "methods": METHODS,
            "protocol": {"name": "forward_simulation", "options": {"n_candidates": 2}},
            "trials": 2, "recruitment": {"completion_code": "RAY1"}}
    save_draft(db, yaml.safe_dump(spec, sort_keys=False))
    folder = jobs.target(db, "ray-job").folder
    result: dict[str, jobs.JobInfo] = {}

    def work() -> None:
        # throttled (the driver pauses 0.3 s per finished map): on a fast machine the tiny job
        # could otherwise finish before the cancel below reaches it
        result["first"] = jobs.run_worker(db, "ray-job", ray="auto", throttle=0.3)

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        info = jobs.status(db, "ray-job")
        if info is not None and info.state == "running" and info.done >= 1:
            break
        time.sleep(0.05)
    jobs.cancel(db, "ray-job")
    thread.join(timeout=30)
    first = result["first"]
    assert first.state == "cancelled" and 1 <= first.done < first.total == 6 * 4
    assert first.timings["executor"] == "ray (2 CPU workers)"
    assert not (folder / MANIFEST).exists()
    left = _stored(folder)
    time.sleep(1.5)
    assert _stored(folder) == left                          # the workers are gone: nothing more is written

    second = jobs.run_worker(db, "ray-job", ray="auto")
    assert second.state == "done" and second.skipped >= first.done and second.done == second.total
    assert load_manifest(folder).sha256() == second.manifest_sha256
    local = tmp_path / "local"                              # the same spec built locally from scratch
    build = jobs.engine_build(jobs.target(db, "ray-job").spec, local)
    assert build.run(executor=LocalExecutor()).sha256() == second.manifest_sha256
    assert (local / MANIFEST).read_bytes() == (folder / MANIFEST).read_bytes()
    dbmod.forget(db.url)


def test_sharded_bank_encoding_is_identical(ray_cluster, data, monkeypatch) -> None:
    from convis_core import get_bank, load_model

    model = load_model("convis-tiny", "none", device="cpu", seed=0)
    bank = get_bank(BANK)
    monkeypatch.setattr(bankmod, "CHUNK", 16)               # several chunks from a small bank
    assert len(bank) > 3 * 16
    local = bankmod.bank_embeddings(model, bank, use_cache=False)
    executor = RayExecutor()
    sharded = bankmod.bank_embeddings(model, bank, executor=executor)
    assert len(executor.actor_pids) == 2                    # the chunks went to the Ray workers
    assert np.array_equal(local, sharded)
    cached = bankmod._bank_dir(model, bank)
    assert (cached / "embeddings.npy").is_file() and not list(cached.glob("chunk-*.npy"))
    # the command line's door: `bank build --ray auto` (the Ray already running in this process)
    import shutil

    from convis_core.cli import main

    shutil.rmtree(cached)
    monkeypatch.setattr(bankmod, "_MEMO", type(bankmod._MEMO)())   # nothing built in memory either
    assert main(["bank", "build", "--model", "convis-tiny", "--device", "cpu", "--bank", BANK, "--ray", "auto"]) == 0
    assert np.array_equal(np.load(cached / "embeddings.npy"), local)


def test_files_a_worker_wrote_elsewhere_fail_the_build_clearly(tmp_path) -> None:
    """A worker whose node does not share the store: its files are not where the driver looks."""
    from study.errors import StimulusError
    from study.stimuli import _ImageDone

    build = _build(tmp_path / "stim")
    (tmp_path / "stim" / "maps").mkdir(parents=True)
    (tmp_path / "stim" / "maps" / "x.png").write_bytes(b"other bytes")
    entry = {"map": "maps/x.png", "map_sha256": "0" * 64, "meta": "meta/x.json", "meta_sha256": "0" * 64}
    with pytest.raises(StimulusError, match="node-7 wrote 'maps/x.png'.*filesystem every worker shares"):
        build._verify("scene1", _ImageDone(None, [("key", entry)], "node-7"))


def _inverse(x: float) -> float:
    return 1 / x


def test_mapper_is_a_drop_in_for_map(ray_cluster) -> None:
    """The seam for map-shaped callers (the evaluation runner): same results, in order."""
    items = [-3, 1, -2, 5, -8]
    assert list(LocalExecutor().mapper()(abs, items)) == list(map(abs, items)) == list(RayExecutor().mapper()(abs, items))
    with pytest.raises(ZeroDivisionError):     # an item's error reaches the caller as it was
        list(RayExecutor().mapper()(_inverse, [1, 0, 2]))


def test_evaluation_on_ray_equals_local(ray_cluster, cub_dir, data, tmp_path) -> None:
    """`python -m convis_core eval wsol --ray auto`: the per-image records equal a local run's."""
    import csv

    from convis_core.cli import main as cli_main

    def run(folder: Path, *extra: str) -> list[dict[str, str]]:
        argv = ["eval", "wsol", str(cub_dir), "--model", "convis-tiny", "--pretrained", "none", "--concept",
                "bird.n.01", "--methods", "convis_grid,centre", "--param", "convis_grid.stride=64", "--bank",
                "subtree=bird.n.01", "--sample", "3", "--run-dir", str(folder), "--no-plots", "--no-progress", *extra]
        assert cli_main(argv) == 0
        with open(folder / "per_image.csv", newline="") as fh:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]  # not wall time

    local = run(tmp_path / "local", "--ray", "local")
    remote = run(tmp_path / "ray", "--ray", "auto")
    assert len(local) == 3 * 2 and remote == local


def test_executor_choice_flag_then_convis_ray_then_ray_address(monkeypatch) -> None:
    from convis_core.executors import resolve

    monkeypatch.delenv("CONVIS_RAY", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve(None) is None and resolve("auto") == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert resolve(None) == "10.0.0.5:6379" and resolve("local") is None
    monkeypatch.setenv("CONVIS_RAY", "off")
    assert resolve(None) is None and resolve("head:6379") == "head:6379"


def test_unreachable_or_malformed_ray_address_fails_at_once() -> None:
    from convis_core import ConvisError
    from convis_core.executors import _reachable

    with pytest.raises(ConvisError, match="nothing answers at the Ray address 127.0.0.1:1"):
        _reachable("127.0.0.1:1")
    with pytest.raises(ConvisError, match="use 'auto', HOST:PORT"):
        _reachable("nonsense")


def test_bad_worker_count_is_a_clear_error(monkeypatch) -> None:
    from convis_core import ConvisError

    monkeypatch.setenv("CONVIS_RAY_WORKERS", "two")
    with pytest.raises(ConvisError, match="CONVIS_RAY_WORKERS must be a positive whole number"):
        get_executor("auto")


def test_local_paths_never_import_ray(tmp_path) -> None:
    code = ("import sys, study, study.jobs, study.cli, study.stimuli, convis_core, convis_core.executors, "
            "convis_core.bank\n"
            "from convis_core.executors import LocalExecutor, get_executor\n"
            "assert isinstance(get_executor(None), LocalExecutor)\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    env = {"PATH": "/usr/bin:/bin", "CONVIS_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr

"""The harness end to end on tiny generated sets with the tiny random model (maps carry no
meaning: these tests check files, caching, resumption and messages, not figures)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convis_core.cli import main as cli_main
from convis_core.errors import ConvisError
from convis_core.evaluation.datasets import (
    boxes_in_frame,
    read_box_csv,
    read_cub,
    read_wnid_folders,
    subsample,
)
from convis_core.evaluation.runner import RunConfig, run_ood, run_wsol
from convis_core.evaluation.runs import list_runs, run_info
from convis_core.images import ImageFrame

FAST = {"convis_grid": {"stride": 64}}  # a coarse grid: few crops, same code path
TINY = {"model": "convis-tiny", "pretrained": "none"}
METRIC_COLUMNS = ("image_id", "method", "pointing_hit", "iou_at_best_threshold", "pred_box_at_best_threshold",
                  "best_iou_any_threshold", "v2_best_iou_any_threshold")


def wsol_cfg(data: Path, out: Path, **kw) -> RunConfig:
    base = dict(kind="wsol", data=str(data), out=str(out), concept="bird.n.01", methods=["convis_grid", "centre"],
                params=FAST, bank="subtree=bird.n.01", gallery=1, **TINY)
    return RunConfig(**{**base, **kw})


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "per_image.csv", newline="") as fh:
        return [{k: r[k] for k in METRIC_COLUMNS} for r in csv.DictReader(fh)]


def test_boxes_move_through_the_centre_crop() -> None:
    f = ImageFrame.for_size(300, 200)  # square 200 at left 50, scaled by 224/200
    assert boxes_in_frame([(50, 0, 250, 200)], f) == [(0.0, 0.0, 224.0, 224.0)]
    assert boxes_in_frame([(100, 50, 150, 100)], f) == [pytest.approx((56.0, 56.0, 112.0, 112.0))]
    assert boxes_in_frame([(0, 0, 40, 40)], f) == []  # wholly in the cropped-off margin
    assert boxes_in_frame([(0, 0, 60, 40)], f) == [pytest.approx((0.0, 0.0, 11.2, 44.8))]  # clipped


def test_readers(cub_dir: Path, box_csv: Path, wnid_dir: Path) -> None:
    test = read_cub(cub_dir)
    assert [s.id for s in test] == ["3", "4", "5", "6"] and test[0].boxes == ((13.0, 12.0, 43.0, 50.0),)
    assert len(read_cub(cub_dir, "all")) == 6
    samples = read_box_csv(box_csv)
    assert [len(s.boxes) for s in samples] == [1, 2, 1] and samples[1].path.is_file()
    ood, folders = read_wnid_folders(wnid_dir, "finch.n.01", "hound.n.01")
    assert sorted({s.label for s in ood}) == ["in", "out"] and len(ood) == 12
    assert folders["skipped"]["n02958343"]["synset"] == "car.n.01"
    picked = subsample(ood, 6, seed=3, stratify=True)
    assert [s.label for s in picked].count("in") == 3 and subsample(ood, 6, seed=3, stratify=True) == picked


def test_bad_input_gets_clear_messages(tmp_path: Path, cub_dir: Path, capsys) -> None:
    (cub_dir / "bounding_boxes.txt").write_text("3 1 2\n")
    with pytest.raises(ConvisError, match="bounding_boxes.txt:1: expected 5 fields"):
        read_cub(cub_dir)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,x,y\na.png,1,2\n")
    with pytest.raises(ConvisError, match="expected a CSV with a header"):
        read_box_csv(bad)
    bad.write_text("path,x0,y0,x1,y1\na.png,5,5,2,9\n")
    with pytest.raises(ConvisError, match="bad.csv:2: empty box"):
        read_box_csv(bad)
    for argv, msg in [(["eval", "wsol", str(tmp_path / "nowhere")], "data not found"),
                      (["eval", "wsol", str(tmp_path), "--model", "convis-tiny"], "cannot tell the format"),
                      (["eval", "ood", str(tmp_path)], "--in and --out"),
                      (["eval", "ood", str(tmp_path), "--preset", "cats"], "unknown preset"),
                      (["eval", "ood", str(tmp_path), "--preset", "bird-hunting_dog", "--model", "convis-tiny"],
                       "need image folders"),
                      (["eval", "wsol", str(bad), "--concept", "birdd.n.01", "--model", "convis-tiny"], "birdd"),
                      (["eval", "wsol", str(bad), "--methods", "nope", "--model", "convis-tiny"], "unknown method")]:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)


def test_wsol_run_writes_the_documented_files(cub_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = run_wsol(wsol_cfg(cub_dir, out), show_progress=False)
    for f in ("config.json", "state.json", "per_image.csv", "summary.json", "table.txt", "box_acc.png",
              "gallery_convis_grid.png", "gallery_centre.png"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    assert s == json.loads(json.dumps(summary, default=str))
    assert s["model"]["random_weights"] is True and s["n_images"] == 4
    assert {"python", "torch", "numpy"} <= set(s["software"])
    r = s["methods"]["convis_grid"]
    assert r["n"] == 4 and 0 <= r["max_box_acc"] <= 1 and len(r["box_acc_curve"]) == 100
    assert r["max_box_acc_ci_bootstrap"][0] <= r["max_box_acc"] <= r["max_box_acc_ci_bootstrap"][1]
    assert set(r["max_box_acc_v2_per_iou"]) == {"0.3", "0.5", "0.7"}
    assert len(rows(out)) == 8 and "MaxBoxAcc" in (out / "table.txt").read_text()
    info = run_info(out)
    assert info.state == "done" and info.kind == "wsol" and info.summary is not None
    assert [i.name for i in list_runs(tmp_path)] == ["run"]


def test_a_stopped_run_resumes_to_identical_results(cub_dir: Path, tmp_path: Path) -> None:
    calls = []

    def stopping_map(fn, items):  # a plain map that is killed after three items
        for i, item in enumerate(items):
            if i == 3:
                raise KeyboardInterrupt
            calls.append(item)
            yield fn(item)

    cfg = wsol_cfg(cub_dir, tmp_path / "resumed", plots=False)
    with pytest.raises(KeyboardInterrupt):
        run_wsol(cfg, mapper=stopping_map, show_progress=False)
    assert run_info(tmp_path / "resumed").state == "failed"
    assert len(list((tmp_path / "resumed" / "cache").glob("*.npz"))) == 3

    seen = []

    def counting_map(fn, items):
        for item in items:
            cached = Path(item.cache_path).is_file()
            seen.append(cached)
            yield fn(item)

    run_wsol(cfg, mapper=counting_map, show_progress=False)
    assert seen.count(True) == 3 and seen.count(False) == 5  # only the missing items were computed
    run_wsol(wsol_cfg(cub_dir, tmp_path / "straight", plots=False), show_progress=False)
    assert rows(tmp_path / "resumed") == rows(tmp_path / "straight")
    a = json.loads((tmp_path / "resumed" / "summary.json").read_text())["methods"]
    b = json.loads((tmp_path / "straight" / "summary.json").read_text())["methods"]
    for m in a:
        for k in ("max_box_acc", "max_box_acc_v2", "pointing", "max_box_acc_ci_bootstrap", "box_acc_curve"):
            assert a[m][k] == b[m][k], (m, k)
    with pytest.raises(ConvisError, match="another configuration"):
        run_wsol(wsol_cfg(cub_dir, tmp_path / "straight", concept="dog.n.01"), show_progress=False)


def test_wsol_from_a_csv_through_the_cli(box_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "csvrun"
    rc = cli_main(["eval", "wsol", str(box_csv), "--concept", "bird.n.01", "--methods", "random,convis_grid",
                   "--param", "convis_grid.stride=64", "--bank", "subtree=bird.n.01", "--model", "convis-tiny",
                   "--sample", "2", "--seed", "1", "--run-dir", str(out), "--no-progress", "--gallery", "1"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "MaxBoxAccV2" in printed.out and "random" in printed.out and str(out) in printed.out
    assert "RANDOM weights" in printed.err
    s = json.loads((out / "summary.json").read_text())
    assert s["n_images"] == 2 and s["config"]["sample"] == 2
    assert {r["method"] for r in rows(out)} == {"random", "convis_grid"}


def test_ood_run_with_a_resnet50_file(wnid_dir: Path, tmp_path: Path, capsys) -> None:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    weights = tmp_path / "rn50.pth"
    torch.save(resnet50(weights=None).state_dict(), weights)  # randomly initialised: checks plumbing only
    out = tmp_path / "ood"
    rc = cli_main(["eval", "ood", str(wnid_dir), "--in", "finch.n.01", "--out", "hound.n.01", "--model", "convis-tiny",
                   "--resnet50", str(weights), "--run-dir", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    s = json.loads((out / "summary.json").read_text())
    assert set(s["scores"]) == {"naive", "hierarchy", "lemmas", "resnet50_max_logit"}
    assert s["n_in"] == 6 and s["n_out"] == 6 and s["folders"]["skipped"]
    assert s["n_texts"]["naive"] == 1 and s["n_texts"]["hierarchy"] == 47  # finch.n.01's subtree
    for d in s["scores"].values():
        assert 0 <= d["auroc"] <= 1 and 0 <= d["fpr_at_95_tpr"] <= 1
    assert (out / "roc.png").is_file() and "AUROC" in printed.out
    with open(out / "per_image.csv", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == 12 and all(np.isfinite(float(r["resnet50_max_logit"])) for r in got)
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    assert cli_main(["eval", "ood", str(wnid_dir), "--in", "finch.n.01", "--out", "hound.n.01", "--model", "convis-tiny",
                     "--resnet50", str(bad), "--run-dir", str(tmp_path / "ood2"), "--no-progress"]) == 2
    assert "not a torchvision ResNet-50 state dict" in capsys.readouterr().err
    again = run_ood(RunConfig(**json.loads((out / "config.json").read_text())), show_progress=False)
    assert again["scores"] == s["scores"]  # resumed from the cache: same figures

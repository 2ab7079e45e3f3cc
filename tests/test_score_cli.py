"""``tinyseg score`` end to end through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_maps, run_tinyseg, shared_dataset, write_json, write_map

from tinyseg_cli.metrics.counts import confusion_matrix, one_vs_rest


def expected_counts(truth_dir: Path, pred_dir: Path, n_classes: int = 3):
    truths, preds = load_maps(truth_dir), load_maps(pred_dir)
    total = sum(confusion_matrix(truths[k], preds[k], n_classes) for k in truths)
    return one_vs_rest(total)


def test_score_json_matches_hand_example(cli, tmp_path: Path):
    write_map(tmp_path / "t" / "a.png", np.array([[0, 1, 1], [2, 0, 255]], np.uint8))
    write_map(tmp_path / "p" / "a.png", np.array([[0, 1, 0], [2, 2, 1]], np.uint8))
    result = cli(
        "score",
        "--truth",
        tmp_path / "t",
        "--pred",
        tmp_path / "p",
        "--classes",
        "bg,crack,pore",
        "--json",
        "--beta",
        "0.5",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"]["crack"] == {
        "tp": 1,
        "fp": 0,
        "fn": 1,
        "tn": 3,
        "recall": 0.5,
        "precision": 1.0,
        "fpr": 0.0,
        "iou": 0.5,
        "f1": pytest.approx(2 / 3),
        "f2": pytest.approx(5 / 9),
        "f0.5": pytest.approx(1.25 / 1.5),
        "rw_f1": pytest.approx(1 / 3),
        "rw_iou": 0.25,
        "oii": 1.0,
    }
    assert report["micro"]["tp"] == 2 and report["micro"]["f2"] == pytest.approx(2 / 3)
    assert report["macro"]["n_classes"] == 2
    assert report["macro"]["f2"] == pytest.approx((5 / 9 + 5 / 6) / 2)
    assert report["oa"] == pytest.approx(0.6)
    assert report["miou"] == pytest.approx((1 / 3 + 0.5 + 0.5) / 3)
    assert report["n_samples"] == 1 and report["empty"] == "null"
    assert "scores over 1 sample" in result.stderr


def test_include_background_and_empty_policy(cli, tmp_path: Path):
    write_map(tmp_path / "t.png", np.array([[0, 0], [0, 1]], np.uint8))
    write_map(tmp_path / "p.png", np.array([[0, 0], [0, 0]], np.uint8))
    args = (
        "score",
        "--truth",
        tmp_path / "t.png",
        "--pred",
        tmp_path / "p.png",
        "--classes",
        "bg,fg,rare",
        "--json",
        "-q",
    )
    report = json.loads(cli(*args).stdout)
    assert report["classes"]["rare"]["recall"] is None  # 0/0 is null, never 0
    assert report["classes"]["fg"]["precision"] is None
    assert report["macro"]["n_defined"]["recall"] == 1
    report = json.loads(cli(*args, "--empty", "1").stdout)
    assert report["classes"]["rare"]["recall"] == 1.0 and report["empty"] == "1"
    report = json.loads(cli(*args, "--include-background").stdout)
    assert report["macro"]["n_classes"] == 3
    assert report["micro"]["tp"] == 3  # background TP counted with --include-background


def test_counts_pipe_and_reduce_equal_direct(pair_dirs, tmp_path: Path):
    truth, pred = pair_dirs
    first = run_tinyseg("score", "--truth", truth, "--pred", pred, "--counts-out", "-", "-q")
    assert first.returncode == 0, first.stderr
    reduced = run_tinyseg("score", "--counts", "-", "--json", "-q", input=first.stdout)
    assert reduced.returncode == 0, reduced.stderr
    direct = run_tinyseg("score", "--truth", truth, "--pred", pred, "--json", "-q")
    assert json.loads(reduced.stdout) == json.loads(direct.stdout)
    tp, fp, fn, _ = expected_counts(truth, pred)
    report = json.loads(direct.stdout)
    assert [report["classes"][str(c)]["tp"] for c in range(3)] == tp.tolist()
    assert [report["classes"][str(c)]["fn"] for c in range(3)] == fn.tolist()
    assert [report["classes"][str(c)]["fp"] for c in range(3)] == fp.tolist()


def test_shards_reduce_to_the_whole(cli, pair_dirs, tmp_path: Path):
    truth, pred = pair_dirs
    for k in range(3):
        result = cli(
            "score",
            "--truth",
            truth,
            "--pred",
            pred,
            "--shard",
            f"{k}/3",
            "-q",
            "--counts-out",
            tmp_path / f"c{k}.parquet",
            "--jobs",
            "2",
        )
        assert result.exit_code == 0, result.output
    tables = [tmp_path / f"c{k}.parquet" for k in range(3)]
    merged = json.loads(cli("score", "--counts", *tables, "--json", "-q").stdout)
    whole = json.loads(cli("score", "--truth", truth, "--pred", pred, "--json", "-q").stdout)
    assert merged == whole
    assert pq.read_table(tables[0]).column_names == [
        "sample_id",
        "class_index",
        "tp",
        "fp",
        "fn",
        "tn",
    ]
    twice = cli("score", "--counts", tables[0], tables[0], "-q")
    assert twice.exit_code == 1 and "counted twice" in twice.stderr


def test_jobs_do_not_change_results(cli, pair_dirs):
    truth, pred = pair_dirs
    one = cli("score", "--truth", truth, "--pred", pred, "--json", "-q", "--jobs", "1")
    two = cli("score", "--truth", truth, "--pred", pred, "--json", "-q", "--jobs", "2")
    assert json.loads(one.stdout) == json.loads(two.stdout)


def test_scores_table_and_per_sample(cli, pair_dirs, tmp_path: Path):
    truth, pred = pair_dirs
    out = tmp_path / "scores.parquet"
    result = cli(
        "score",
        "--truth",
        truth,
        "--pred",
        pred,
        "--per-sample",
        "-o",
        out,
        "--classes",
        "bg,a,b",
        "-q",
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    rows = table.to_pylist()
    overall = [r for r in rows if r["sample_id"] is None]
    assert [r["level"] for r in overall] == ["class"] * 3 + ["micro", "macro", "summary"]
    assert {r["sample_id"] for r in rows} == {None, "s0", "s1", "s2", "s3"}
    meta = json.loads(table.schema.metadata[b"tinyseg.provenance"])
    assert meta["command"].startswith("tinyseg score --truth")
    assert json.loads(table.schema.metadata[b"tinyseg.classes"]) == ["bg", "a", "b"]
    again = cli("score", "--truth", truth, "--pred", pred, "-o", out, "-q")
    assert again.exit_code == 1 and "--force" in again.stderr
    assert cli("score", "--truth", truth, "--pred", pred, "-o", out, "-q", "--force").exit_code == 0


def test_runs_mean_and_std(cli, tmp_path: Path):
    truth = np.array([[0, 1, 1, 1]], np.uint8)
    write_map(tmp_path / "t" / "a.png", truth)
    write_map(tmp_path / "r1" / "a.png", np.array([[0, 1, 1, 0]], np.uint8))  # recall 2/3
    write_map(tmp_path / "r2" / "a.png", np.array([[0, 1, 1, 1]], np.uint8))  # recall 1
    result = cli(
        "score",
        "--truth",
        tmp_path / "t",
        "--run",
        f"one={tmp_path / 'r1'}",
        "--run",
        f"two={tmp_path / 'r2'}",
        "--json",
        "-q",
        "--counts-out",
        tmp_path / "runs.parquet",
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert runs["n_runs"] == 2
    assert runs["mean"]["micro"]["recall"] == pytest.approx(5 / 6)
    assert runs["std"]["micro"]["recall"] == pytest.approx(np.std([2 / 3, 1], ddof=1))
    assert runs["by_run"]["one"]["classes"]["1"]["fn"] == 1
    # the counts table of both runs scores the same through --counts
    again = json.loads(cli("score", "--counts", tmp_path / "runs.parquet", "--json", "-q").stdout)
    assert again["runs"]["mean"] == runs["mean"]
    # a counts table can stand for a run too
    mixed = cli(
        "score",
        "--truth",
        tmp_path / "t",
        "--run",
        f"one={tmp_path / 'r1'}",
        "--run",
        f"two={tmp_path / 'runs.parquet'}",
        "-q",
    )
    assert mixed.exit_code == 1 and "one run" in mixed.stderr


def test_palette_rgb_truth(cli, tmp_path: Path):
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)
    write_map(tmp_path / "t" / "a.png", colours[labels])
    write_map(tmp_path / "p" / "a.tif", labels)
    palette = write_json(tmp_path / "palette.json", {"#000000": 0, "#ff0000": 1, "#00ff00": 2})
    result = cli(
        "score",
        "--truth",
        tmp_path / "t",
        "--pred",
        tmp_path / "p",
        "--palette",
        palette,
        "--json",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["micro"]["iou"] == 1.0


def test_binary_probability_threshold(cli, tmp_path: Path):
    write_map(tmp_path / "t.png", np.array([[0, 1, 1, 0]], np.uint8))
    write_map(tmp_path / "p.npy", np.array([[0.2, 0.9, 0.4, 0.6]], np.float32))
    args = ("score", "--truth", tmp_path / "t.png", "--pred", tmp_path / "p.npy", "--json", "-q")
    default = json.loads(cli(*args).stdout)["classes"]["1"]
    assert (default["tp"], default["fp"], default["fn"]) == (1, 1, 1)
    low = json.loads(cli(*args, "--threshold", "0.3").stdout)["classes"]["1"]
    assert (low["tp"], low["fp"], low["fn"]) == (2, 1, 0)


def test_manifest_truth_with_roi_and_split(cli, tmp_path: Path):
    mask = np.zeros((6, 6), np.uint8)
    mask[4, 4] = 1
    write_map(tmp_path / "m" / "a.png", mask)
    pq.write_table(
        pa.table(
            {
                "sample_id": ["a"],
                "image": ["i/a.png"],
                "mask": ["m/a.png"],
                "split": ["val"],
                "y0": [3],
                "x0": [3],
                "y1": [6],
                "x1": [6],
            }
        ),
        tmp_path / "manifest.parquet",
    )
    write_map(tmp_path / "p" / "a.png", np.ones((3, 3), np.uint8))  # ROI-sized prediction
    result = cli(
        "score",
        "--truth",
        tmp_path / "manifest.parquet",
        "--split",
        "val",
        "--pred",
        tmp_path / "p",
        "--json",
        "-q",
    )
    assert result.exit_code == 0, result.output
    crack = json.loads(result.stdout)["classes"]["1"]
    assert (crack["tp"], crack["fp"], crack["tn"]) == (1, 8, 0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t, p: write_map(p / "a.png", np.zeros((3, 5), np.uint8)), "shape mismatch"),
        (
            lambda t, p: write_map(p / "a.png", np.full((4, 4), 7, np.uint8)),
            r"a.png: pixel \(y=0, x=0\): prediction label 7 is outside the class map",
        ),
        (lambda t, p: (p / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken"), "unreadable PNG"),
        (
            lambda t, p: write_map(p / "b.png", np.zeros((4, 4), np.uint8)),
            "no prediction for 1 sample",
        ),
    ],
)
def test_error_paths_are_one_line_exit_1(cli, tmp_path: Path, make, message):
    truth, pred = tmp_path / "t", tmp_path / "p"
    write_map(truth / "a.png", np.zeros((4, 4), np.uint8))
    pred.mkdir()
    make(truth, pred)
    out = tmp_path / "out.parquet"
    result = cli("score", "--truth", truth, "--pred", pred, "--classes", "bg,fg", "-o", out)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) <= 2
    assert "Traceback" not in result.stderr
    import re

    assert re.search(message, " ".join(result.stderr.split())), result.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.is_file()] == []


def test_missing_skip_scores_the_rest(cli, tmp_path: Path):
    write_map(tmp_path / "t" / "a.png", np.ones((2, 2), np.uint8))
    write_map(tmp_path / "t" / "b.png", np.ones((2, 2), np.uint8))
    write_map(tmp_path / "p" / "a.png", np.ones((2, 2), np.uint8))
    result = cli(
        "score", "--truth", tmp_path / "t", "--pred", tmp_path / "p", "--missing", "skip", "--json"
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["n_samples"] == 1
    assert "skipped 1 sample(s) with no prediction: b" in result.stderr


def test_zero_255_prediction_is_explained(cli, tmp_path: Path):
    write_map(tmp_path / "t.png", np.array([[0, 1]], np.uint8))
    write_map(tmp_path / "p.png", np.array([[0, 255]], np.uint8))
    result = cli("score", "--truth", tmp_path / "t.png", "--pred", tmp_path / "p.png")
    assert result.exit_code == 1 and "--palette" in result.stderr


def test_usage_errors_exit_2(cli, pair_dirs):
    truth, pred = pair_dirs
    assert cli("score", "--truth", truth).exit_code == 2
    assert cli("score", truth, pred).exit_code == 2  # maps are never positional
    assert cli("score", "--truth", truth, "--pred", pred, "--json", "-o", "-").exit_code == 2
    assert cli("score", "--truth", truth, "--pred", pred, "--shard", "3/2").exit_code == 2
    assert cli("score", "--counts").exit_code == 2


def test_version_and_verbose_traceback(cli, tmp_path: Path):
    assert cli("--version").stdout.startswith("tinyseg ")
    result = cli("score", "--truth", tmp_path / "none", "--pred", tmp_path / "none", "-v")
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_python_dash_m_entry_point(pair_dirs):
    truth, pred = pair_dirs
    result = run_tinyseg("score", "--truth", truth, "--pred", pred, "--json", "-q")
    assert result.returncode == 0 and json.loads(result.stdout)["n_samples"] == 4


def test_crackforest_real_data(cli, tmp_path: Path):
    """A shifted copy of the CrackForest masks scores like a hand count of the shift says."""
    masks = shared_dataset("crackforest") / "mask"
    pred = tmp_path / "pred"
    tp = fp = fn = 0
    for path in sorted(masks.glob("*.png"))[:20]:
        from PIL import Image

        truth = np.asarray(Image.open(path))
        shifted = np.zeros_like(truth)
        shifted[:, 1:] = truth[:, :-1]
        write_map(pred / path.name, shifted)
        tp += int(((truth == 1) & (shifted == 1)).sum())
        fp += int(((truth == 0) & (shifted == 1)).sum())
        fn += int(((truth == 1) & (shifted == 0)).sum())
    result = cli(
        "score",
        "--truth",
        masks,
        "--pred",
        pred,
        "--missing",
        "skip",
        "--json",
        "-q",
        "--classes",
        "background,crack",
    )
    assert result.exit_code == 0, result.output
    crack = json.loads(result.stdout)["classes"]["crack"]
    assert (crack["tp"], crack["fp"], crack["fn"]) == (tp, fp, fn)


def test_class_map_travels_with_the_truth_manifest(cli, tmp_path: Path):
    """Class names come from the manifest's metadata when --classes is not given."""
    write_map(tmp_path / "m" / "a.png", np.array([[0, 1], [2, 2]], np.uint8))
    write_map(tmp_path / "p" / "a.png", np.array([[0, 1], [2, 0]], np.uint8))
    table = pa.table({"sample_id": ["a"], "mask": ["m/a.png"]}).replace_schema_metadata(
        {"tinyseg.classes": json.dumps(["bg", "crack", "pore"])}
    )
    pq.write_table(table, tmp_path / "manifest.parquet")
    result = cli(
        "score", "--truth", tmp_path / "manifest.parquet", "--pred", tmp_path / "p", "--json", "-q"
    )
    assert result.exit_code == 0, result.output
    classes = json.loads(result.stdout)["classes"]
    assert list(classes) == ["bg", "crack", "pore"]
    assert classes["pore"]["tp"] == 1 and classes["pore"]["fn"] == 1


def test_score_loads_only_its_own_command():
    # Start-up is paid on every call: `score` must not import the other commands,
    # the training stack, or pydantic (typer >= 0.29 coerces options through it).
    code = (
        "import sys; from tinyseg_cli.cli.main import load_command; load_command('score'); "
        "heavy = ['torch', 'segmentation_models_pytorch', 'pydantic', "
        "'tinyseg_cli.commands.resample.run', 'tinyseg_cli.commands.split.run', "
        "'tinyseg_cli.commands.train.cli']; "
        "print([name for name in heavy if name in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_anti_aliased_magnetic_tile_masks_through_a_grey_palette(cli, tmp_path: Path):
    """Magnetic-tile masks hold every grey level (anti-aliased edges); a 256-entry grey
    palette binarises them at 128. Its SOURCE.md counts the copied set at that threshold:
    3,539,881 defect and 47,119,051 background pixels. --palette is the truth's only: the
    same masks as predictions need --pred-palette."""
    root = shared_dataset("magnetic_tile")
    palette = write_json(tmp_path / "half.json", {str(v): int(v >= 128) for v in range(256)})
    masks = str(root / "*" / "Imgs" / "*.png")
    result = cli(
        "score", "--truth", masks, "--pred", masks, "--palette", palette,
        "--pred-palette", palette, "--classes", "background,defect", "--json", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["n_samples"] == 492
    defect, background = scores["classes"]["defect"], scores["classes"]["background"]
    assert (defect["tp"], defect["fp"], defect["fn"]) == (3_539_881, 0, 0)
    assert (background["tp"], defect["tn"]) == (47_119_051, 47_119_051)

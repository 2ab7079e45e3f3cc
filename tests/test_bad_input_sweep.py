"""Issue 20's bad-input sweep of the newer commands, by kind, and the smaller cases met on
the way: each is refused in one line with the right exit status and nothing changed on disk
(tests/badinput.py), or now says what it did not say."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tifffile
from badinput import assert_refused, snapshot

from tests.conftest import write_map
from tests.test_help_examples import write_checkpoint
from tests.test_train import TINY, write_split
from tests.test_voxelize import HAND_CLASS, HAND_XYZ, write_las


@pytest.fixture
def voxels(cli, tmp_path: Path) -> Path:
    """A voxelize OUT_DIR of the hand-made LAS (codes 2, 6), tiles of one row."""
    scan = write_las(tmp_path / "hand.las", HAND_XYZ, HAND_CLASS)
    out = tmp_path / "vox"
    result = cli(
        "voxelize", scan, "--voxel", "1", "--tile", "10", "--split", "train", "-q", "-o", out
    )
    assert result.exit_code == 0, result.output
    return out


def train_one_step(cli, voxels: Path, run: Path) -> None:
    """A sparse U-Net run of one step on the voxel table."""
    args = ("--channels", "4,8", "--no-aspp", "-b", "1", "--iterations", "1", "-q")
    trained = cli("train", voxels, *args, "-o", run)
    assert trained.exit_code == 0, trained.output


# -- kind 1: an output on one of the command's own inputs, even with --force ----------------


def test_classweights_never_overwrites_the_voxel_table_it_reads(cli, voxels: Path, tmp_path):
    before = snapshot(tmp_path)
    result = cli(
        "classweights", voxels, "--scheme", "icf", "-o", voxels / "voxels.parquet", "--force"
    )
    assert_refused(result, 2, "is read as part of the input INPUT", root=tmp_path, before=before)


def test_score_never_overwrites_the_predictions_table_it_reads(cli, tmp_path: Path):
    for side in ("truth", "pred"):
        write_map(tmp_path / side / "a.png", np.eye(4, dtype=np.uint8))
    pq.write_table(
        pa.table({"sample_id": ["a"], "prediction": ["a.png"]}),
        tmp_path / "pred" / "predictions.parquet",
    )
    before = snapshot(tmp_path)
    result = cli(
        "score", "--truth", tmp_path / "truth", "--pred", tmp_path / "pred",
        "-o", tmp_path / "pred" / "predictions.parquet", "--force",
    )  # fmt: skip
    assert_refused(result, 2, "is read as part of the input --pred", root=tmp_path, before=before)


# -- kind 2: bad values that used to pass with exit 0 --------------------------------------------


def test_a_voxel_larger_than_its_tile_is_a_usage_error(cli, tmp_path: Path):
    scan = write_las(tmp_path / "hand.las", HAND_XYZ, HAND_CLASS)
    before = snapshot(tmp_path)
    result = cli("voxelize", scan, "--voxel", "30", "--tile", "20", "-o", tmp_path / "v")
    assert_refused(result, 2, "30 > --tile 20", root=tmp_path, before=before)


def test_negative_codes_in_a_label_map_are_usage_errors(cli, tmp_path: Path):
    scan = write_las(tmp_path / "hand.las", HAND_XYZ, HAND_CLASS)
    before = snapshot(tmp_path)
    result = cli("voxelize", scan, "--label-map", "-3:ground", "-o", tmp_path / "v")
    assert_refused(result, 2, "code -3 is negative", root=tmp_path, before=before)


def test_voxel_indices_stored_as_floats_are_refused(cli, voxels: Path, tmp_path: Path):
    table = pq.read_table(voxels / "voxels.parquet")
    at = table.column_names.index("vx")
    floats = tmp_path / "floats.parquet"
    pq.write_table(table.set_column(at, "vx", pc.cast(table["vx"], pa.float64())), floats)
    before = snapshot(tmp_path)
    result = cli(
        "train", floats, "--channels", "4,8", "-b", "1", "--iterations", "1", "-o", tmp_path / "r"
    )
    assert_refused(
        result, 1, "not a voxel table: column 'vx' holds double, expected integers",
        root=tmp_path, before=before,
    )  # fmt: skip


def test_resume_refuses_a_run_of_the_other_modality(cli, voxels: Path, tmp_path: Path):
    run = tmp_path / "run3d"
    train_one_step(cli, voxels, run)
    split = write_split(tmp_path / "images")
    before = snapshot(tmp_path)
    result = cli("train", split, *TINY, "--resume", "-o", run)
    assert_refused(
        result, 2, "holds a 3D run (a voxel table), but MANIFEST", root=tmp_path, before=before
    )


def test_plot_refuses_a_log_without_rows(cli, tmp_path: Path):
    split = write_split(tmp_path / "data")
    run = tmp_path / "run"
    assert cli("train", split, *TINY, "--iterations", "1", "-q", "-o", run).exit_code == 0
    log = pq.read_table(run / "log.parquet")
    empty = tmp_path / "empty.parquet"
    pq.write_table(log.slice(0, 0), empty)
    before = snapshot(tmp_path)
    result = cli("plot", empty, "-o", tmp_path / "f.png")
    assert_refused(result, 1, "the table has no rows", root=tmp_path, before=before)


# -- kind 3: generic KeyError/UnicodeDecodeError lines ----------------------------------------


def test_sparse_unet_on_an_image_manifest_says_so(cli, tmp_path: Path):
    split = write_split(tmp_path)
    before = snapshot(tmp_path)
    result = cli(
        "train", split, "--arch", "sparse-unet", "--patch-size", "32", "-o", tmp_path / "r"
    )
    assert_refused(result, 2, "sparse-unet trains on voxel tables", root=tmp_path, before=before)


def test_a_points_table_that_is_not_a_point_map(cli, voxels: Path, tmp_path: Path):
    run = tmp_path / "run"
    train_one_step(cli, voxels, run)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"scene": ["hand"], "x": [1]}), other)
    before = snapshot(tmp_path)
    result = cli(
        "infer", "--checkpoint", run / "best.pt", voxels, "--points", other, "-o", tmp_path / "p"
    )
    assert_refused(
        result, 1, "not a point map (no column 'point_index'", root=tmp_path, before=before
    )


def test_binary_bytes_piped_to_plot(tmp_path: Path):
    before = snapshot(tmp_path)
    noise = np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
    result = subprocess.run(
        [sys.executable, "-m", "tinyseg_cli", "plot", "-", "-o", str(tmp_path / "f.png")],
        input=noise, capture_output=True, check=False,
    )  # fmt: skip
    assert_refused(
        result, 1, "<stdin>: not a Parquet, Arrow or CSV table (binary data", root=tmp_path,
        before=before,
    )  # fmt: skip


# -- kind 4: terminal escapes from input written into a document ------------------------------


def test_report_escapes_control_characters_of_class_names(cli, tmp_path: Path):
    for side in ("t", "p"):
        write_map(tmp_path / side / "a.png", np.eye(4, dtype=np.uint8))
    scores = tmp_path / "s.parquet"
    named = cli(
        "score", "--truth", tmp_path / "t", "--pred", tmp_path / "p", "--classes",
        "bg,\x1b]0;owned\x07crack", "-o", scores, "-q",
    )  # fmt: skip
    assert named.exit_code == 0, named.output
    report = cli("report", scores, "--classes", "1")
    assert report.exit_code == 0, report.output
    assert "\x1b" not in report.stdout and "\x07" not in report.stdout
    assert "\\x1b]0;owned\\x07crack" in report.stdout


# -- the smaller cases ----------------------------------------------------------------------


def test_an_output_table_not_named_parquet_is_refused(cli, tmp_path: Path):
    for side in ("t", "p"):
        write_map(tmp_path / side / "a.png", np.eye(4, dtype=np.uint8))
    before = snapshot(tmp_path)
    result = cli(
        "score", "--truth", tmp_path / "t", "--pred", tmp_path / "p", "-o", tmp_path / "x.csv"
    )
    assert_refused(result, 2, "tables are written as Parquet", root=tmp_path, before=before)


def test_a_missing_split_names_the_splits_there_are(cli, tmp_path: Path):
    split = write_split(tmp_path)
    write_checkpoint(tmp_path / "model.pt")
    before = snapshot(tmp_path)
    result = cli(
        "infer",
        "--checkpoint",
        tmp_path / "model.pt",
        split,
        "--split",
        "valid",
        "-o",
        tmp_path / "p",
    )
    assert_refused(
        result, 1, "no rows with split == 'valid' (the table's splits: train, val)",
        root=tmp_path, before=before,
    )  # fmt: skip


def test_an_image_holding_nan_leaves_no_output_folder(cli, tmp_path: Path):
    write_checkpoint(tmp_path / "model.pt")
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    image[5, 5, 1] = np.nan
    tifffile.imwrite(tmp_path / "img.tif", image, photometric="rgb")
    before = snapshot(tmp_path)
    result = cli(
        "infer", "--checkpoint", tmp_path / "model.pt", tmp_path / "img.tif", "-o", tmp_path / "out"
    )
    assert_refused(result, 1, "pixel (y=5, x=5) is NaN", root=tmp_path, before=before)


def test_dry_run_of_a_seed_network_reports_no_encoder(cli, tmp_path: Path):
    split = write_split(tmp_path)
    summary = json.loads(cli("train", split, *TINY, "--dry-run", "--json", "-q").stdout)
    assert summary["arch"] == "half-unet" and summary["encoder"] is None


def test_ctrl_c_in_infer_says_how_to_continue(tmp_path: Path):
    """SIGINT once the first band of a tiled image is staged: exit 130 and one line."""
    write_checkpoint(tmp_path / "model.pt")
    write_map(tmp_path / "big.png", np.zeros((1024, 1024, 3), np.uint8))
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "tinyseg_cli", "infer", "--checkpoint", str(tmp_path / "model.pt"),
        str(tmp_path / "big.png"), "--max-pixels", "4096", "--tile", "64", "--overlap", "8",
        "-o", str(out),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"}
    )
    deadline = time.monotonic() + 120
    while not (out / ".partial").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "infer never started staging"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: the finished predictions in" in err.decode()
    assert "run the same command again to continue" in err.decode()


def test_three_d_report_keeps_ground_and_never_prints_0_9996_as_one(cli, voxels, tmp_path):
    """A 3D scores table averages every class: report shows ground by default, and an OA
    short of 1 is never rounded to 1.000."""
    from tinyseg_cli.plots.markdown import number

    assert number(0.9996, 3) == "0.9996" and number(1.0, 3) == "1.000"
    assert number(0.0004, 3) == "0.0004" and number(0.5, 3) == "0.500"
    table = tmp_path / "pts.parquet"
    truth = np.array([0, 0, 0, 1, 1], np.int16)
    pred = np.array([0, 0, 1, 1, 1], np.int16)
    metadata = {b"tinyseg.classes": json.dumps(["ground", "building"]).encode()}
    for name, labels in (("truth", truth), ("pred", pred)):
        columns = {"scene": ["s"] * 5, "point_index": np.arange(5), "label": labels}
        pq.write_table(
            pa.table(columns).replace_schema_metadata(metadata), tmp_path / f"{name}.parquet"
        )
    scored = cli(
        "score",
        "--truth",
        tmp_path / "truth.parquet",
        "--pred",
        tmp_path / "pred.parquet",
        "-o",
        table,
        "-q",
    )
    assert scored.exit_code == 0, scored.output
    report = cli("report", table, "--metric", "iou")
    assert report.exit_code == 0, report.output
    header = report.stdout.splitlines()[0]
    assert "ground" in header and "building" in header


def test_csv_manifests_keep_zero_padded_sample_ids(cli, tmp_path: Path):
    """CSV type inference read sample id "042" as 42, so --test-ids 042 named no group."""
    rows = ["sample_id,image,mask"]
    for stem in ("001", "042", "118"):
        write_map(tmp_path / f"{stem}.png", np.eye(4, dtype=np.uint8))
        rows.append(f"{stem},{stem}.png,{stem}.png")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "s.parquet"
    result = cli(
        "split", tmp_path / "m.csv", "--test-ids", "042", "--ratios", "0.5,0.5", "-q", "-o", out
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert (
        dict(zip(table["sample_id"].to_pylist(), table["split"].to_pylist(), strict=True))["042"]
        == "test"
    )

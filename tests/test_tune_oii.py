"""``tinyseg tune-oii`` end to end on tiny real trainings: the log, step folders, the grid,
resume after Ctrl-C, and every error that must come before any training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_torchrun
from test_train import write_split

from tinyseg_cli.commands.tune_oii.search import OiiOf, scores_of

TINY = ("--arch", "half-unet", "--patch-size", "32", "--batch-size", "4", "--iterations", "3")
TVERSKY = ("--loss", "tversky", "--oii-of", "scratch")
LOG_COLUMNS = [
    "step",
    "alpha",
    "beta",
    "oii",
    "iou",
    "precision",
    "recall",
    "f1",
    "f2",
    "tp",
    "fp",
    "fn",
    "bracket_lo",
    "bracket_hi",
    "direction_expected",
    "direction_measured",
    "checkpoint",
    "seconds",
]


@pytest.fixture
def split(tmp_path: Path) -> Path:
    return write_split(tmp_path, n_train=4, n_val=2, size=32)


def log_rows(tune_dir: Path) -> list[dict]:
    return pq.read_table(tune_dir / "steps.parquet").to_pylist()


def test_two_steps_end_to_end(cli, split, tmp_path):
    tune = tmp_path / "tune"
    result = cli("tune-oii", split, *TINY, *TVERSKY, "--max-steps", "2", "-o", tune, "--json")
    assert result.exit_code == 0, result.output
    rows = log_rows(tune)
    assert pq.read_schema(tune / "steps.parquet").names[: len(LOG_COLUMNS)] == LOG_COLUMNS
    assert [r["step"] for r in rows] == [1, 2]
    first, second = rows
    assert first["alpha"] == 0.5 and first["beta"] == 0.5
    assert (first["bracket_lo"], first["bracket_hi"]) == (0.1, 0.9)
    # tversky α raises the OII (SPEC §6.4): above the band go down, below it go up
    assert second["alpha"] == pytest.approx(0.3 if first["oii"] >= 0.4 else 0.7)
    assert second["beta"] == pytest.approx(1 - second["alpha"])
    assert first["direction_expected"] == "raises" and first["direction_measured"] is None
    for number in (1, 2):
        step = tune / f"step-{number}"
        for name in ("run/best.pt", "run/last.pt", "run/log.parquet", "pred/predictions.parquet"):
            assert (step / name).is_file(), name
        assert sorted(p.name for p in (step / "pred").glob("*.tif")) == ["s4.tif", "s5.tif"]
        assert rows[number - 1]["checkpoint"] == f"step-{number}/run/best.pt"
    summary = json.loads(result.stdout)
    assert summary["trainings"] == 2 and summary["param"] == "alpha"
    assert summary["grid_equivalent"] == 5
    assert summary["value"] in (first["alpha"], second["alpha"])
    metadata = pq.read_schema(tune / "steps.parquet").metadata
    assert b"tinyseg.provenance" in metadata and b"tinyseg.tune" in metadata


def test_log_counts_are_what_score_reports(cli, split, tmp_path):
    tune = tmp_path / "tune"
    assert cli("tune-oii", split, *TINY, *TVERSKY, "--max-steps", "1", "-o", tune).exit_code == 0
    row = log_rows(tune)[0]
    scored = cli(
        "score", "--truth", split, "--split", "val", "--pred", tune / "step-1/pred", "--json", "-q"
    )
    assert scored.exit_code == 0, scored.output
    scratch = json.loads(scored.stdout)["classes"]["scratch"]
    assert (row["tp"], row["fp"], row["fn"]) == (scratch["tp"], scratch["fp"], scratch["fn"])
    counts = pq.read_table(tune / "step-1/counts.parquet")
    assert set(counts["sample_id"].to_pylist()) == {"s4", "s5"}
    assert row["oii"] == pytest.approx(scratch["oii"])


def test_binary_model_is_scored_one_vs_rest(cli, split, tmp_path):
    tune = tmp_path / "tune"
    args = ("--loss", "tversky", "--binary", "pit", "--max-steps", "1", "-o", tune)
    result = cli("tune-oii", split, *TINY, *args)
    assert result.exit_code == 0, result.output
    row = log_rows(tune)[0]
    truth_pixels = 0
    for sid in ("s4", "s5"):
        from PIL import Image

        truth_pixels += int((np.asarray(Image.open(split.parent / f"masks/{sid}.png")) == 2).sum())
    assert row["tp"] + row["fn"] == truth_pixels == 8  # one 2×2 pit per image


def test_grid_trains_k_plus_one_values(cli, split, tmp_path):
    tune = tmp_path / "grid"
    result = cli("tune-oii", split, *TINY, *TVERSKY, "--grid", "2", "-o", tune, "--json")
    assert result.exit_code == 0, result.output
    rows = log_rows(tune)
    assert [r["alpha"] for r in rows] == pytest.approx([0.1, 0.5, 0.9])
    assert all(r["bracket_lo"] is None for r in rows)
    assert json.loads(result.stdout)["trainings"] == 3


def test_warm_start_fine_tunes_from_the_previous_step(cli, split, tmp_path):
    from tinyseg_cli.io.checkpoint import load_checkpoint

    tune = tmp_path / "warm"
    args = ("--max-steps", "2", "--warm-start", "--warm-epochs", "1", "-o", tune)
    assert cli("tune-oii", split, *TINY, *TVERSKY, *args).exit_code == 0
    config = load_checkpoint(tune / "step-2/run/last.pt").config["train"]
    assert config["init_weights"] == str(tune / "step-1/run/best.pt")
    assert config["epochs"] == 1 and config["iterations"] is None
    assert load_checkpoint(tune / "step-1/run/last.pt").config["train"]["init_weights"] is None


def run_subprocess(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "tinyseg_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        **kwargs,
    )


def test_resume_after_ctrl_c_trains_no_finished_step_again(cli, split, tmp_path):
    args = (
        split,
        "--arch",
        "half-unet",
        "--patch-size",
        "32",
        "--batch-size",
        "4",
        "--iterations",
        "12",
        "--checkpoint-every",
        "1",
        *TVERSKY,
        "--max-steps",
        "2",
        "--workers",
        "0",
    )
    interrupted = tmp_path / "interrupted"
    process = run_subprocess("tune-oii", *args, "-o", interrupted)
    marker = interrupted / "step-2/run/last.pt"
    deadline = time.monotonic() + 240
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), process.communicate()[1].decode()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr.decode()
    assert [r["step"] for r in log_rows(interrupted)] == [1]
    first_best = (interrupted / "step-1/run/best.pt").stat().st_mtime_ns

    resumed = cli("tune-oii", *args, "-o", interrupted)
    assert resumed.exit_code == 0, resumed.output
    assert "1 finished step(s) kept" in resumed.output
    assert (interrupted / "step-1/run/best.pt").stat().st_mtime_ns == first_best

    straight = tmp_path / "straight"
    assert cli("tune-oii", *args, "-o", straight).exit_code == 0
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in log_rows(interrupted)] == [
        {k: v for k, v in r.items() if k not in drop} for r in log_rows(straight)
    ]


def test_same_command_again_trains_nothing(cli, split, tmp_path):
    tune = tmp_path / "tune"
    args = ("tune-oii", split, *TINY, *TVERSKY, "--max-steps", "1", "-o", tune)
    assert cli(*args).exit_code == 0
    stamp = (tune / "step-1/run/best.pt").stat().st_mtime_ns
    again = cli(*args)
    assert again.exit_code == 0 and "1 finished step(s) kept" in again.output
    assert (tune / "step-1/run/best.pt").stat().st_mtime_ns == stamp


def test_other_search_options_on_an_existing_dir_name_the_option(cli, split, tmp_path):
    tune = tmp_path / "tune"
    assert cli("tune-oii", split, *TINY, *TVERSKY, "--max-steps", "1", "-o", tune).exit_code == 0
    other = cli("tune-oii", split, *TINY, *TVERSKY, "--max-steps", "1", "--target", "0.2,0.3")
    assert other.exit_code == 2  # no -o: a usage error
    changed = cli(
        "tune-oii", split, *TINY, *TVERSKY, "--max-steps", "1", "--target", "0.2,0.3", "-o", tune
    )
    assert changed.exit_code == 1 and "--target" in changed.output
    lr = cli("tune-oii", split, *TINY, *TVERSKY, "--max-steps", "1", "--lr", "0.1", "-o", tune)
    assert lr.exit_code == 1 and "--lr" in lr.output
    forced = cli(
        "tune-oii", split, *TINY, *TVERSKY, "--max-steps", "1", "--lr", "0.1", "-o", tune, "--force"
    )
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--range", "0.1,1.5"), "--range"),  # β = 1 − α would be negative
        (("--range", "-0.2,0.5"), "--range"),
        (("--target", "0.3,1.2"), "--target"),
        (("--target", "0.4,0.3"), "--target"),
        (("--param", "gamma"), "no such parameter"),
        (("--alpha", "0.3"), "--alpha"),
        (("--beta", "0.3"), "--beta"),
        (("--oii-of", "dent"), "--oii-of"),
        (("--tol", "2"), "--tol"),
    ],
)
def test_bad_search_options_fail_before_training(cli, split, tmp_path, args, message):
    tune = tmp_path / "tune"
    result = cli("tune-oii", split, *TINY, *TVERSKY, *args, "-o", tune)
    assert result.exit_code == 2, result.output  # usage errors
    assert message in result.output and len(result.output.strip().splitlines()) <= 2
    assert not list(tune.glob("step-*"))


def test_loss_without_the_parameter_and_missing_oii_of(cli, split, tmp_path):
    ce = cli("tune-oii", split, *TINY, "--loss", "ce", "--oii-of", "pit", "-o", tmp_path / "a")
    assert ce.exit_code == 2 and "loss ce has no such parameter" in ce.output
    several = cli("tune-oii", split, *TINY, "--loss", "tversky", "-o", tmp_path / "b")
    assert several.exit_code == 2 and "--oii-of" in several.output
    assert not (tmp_path / "b" / "step-1").exists()


def test_empty_val_split_fails_before_training(cli, tmp_path):
    split = write_split(tmp_path, n_train=4, n_val=0, size=32)
    result = cli("tune-oii", split, *TINY, *TVERSKY, "-o", tmp_path / "tune")
    assert result.exit_code == 1 and "val" in result.output
    assert not (tmp_path / "tune" / "step-1").exists()


def test_no_tie_beta_keeps_beta_and_dibe_dis_lowers():
    from tinyseg_cli.commands.tune_oii.settings import expected_direction, searched_param

    assert searched_param("tversky", "alpha", False, {}).loss_params(0.2) == {"alpha": 0.2}
    assert searched_param("tversky", "alpha", True, {}).loss_params(0.25) == {
        "alpha": 0.25,
        "beta": 0.75,
    }
    assert searched_param("dibe", "alpha", True, {}).tie_beta is False  # dibe ties β itself
    assert expected_direction("dibe-dis", "alpha") == "lowers"
    assert expected_direction("tversky", "alpha") == "raises"
    assert expected_direction("focal", "gamma") is None


def test_macro_oii_of_two_classes():
    from tinyseg_cli.commands.tune_oii.search import Counts

    counts = Counts(np.array([0, 2, 6]), np.array([0, 3, 2]), np.array([0, 3, 2]))
    assert scores_of(counts, OiiOf("macro", (1, 2)))["oii"] == pytest.approx(
        (0.34404 + 0.08438) / 2, abs=1e-4
    )


def test_distributed_steps_under_torchrun(split, tmp_path):
    """Under torchrun every process trains each step (DDP); the main one predicts, scores
    and shares the counts, so all processes take the same next value."""
    tune = tmp_path / "ddp"
    done = run_torchrun(
        "tune-oii", split, *TINY, *TVERSKY, "--max-steps", "2", "--workers", "0",
        "--distributed", "--device", "cpu", "-o", tune, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["trainings"] == 2  # printed once, by the main process
    rows = log_rows(tune)
    assert [r["step"] for r in rows] == [1, 2]
    from tinyseg_cli.io.checkpoint import load_checkpoint

    assert load_checkpoint(tune / "step-2/run/last.pt").config["train"]["distributed"] is True


def test_voxel_tables_are_refused_before_training(cli, tmp_path):
    import pyarrow as pa

    columns = {name: pa.array([0], pa.int32()) for name in ("tile", "vx", "vy", "vz")}
    table = pa.table({"scene": ["a"], **columns, "label": pa.array([1], pa.int16())})
    pq.write_table(table, tmp_path / "voxels.parquet")
    result = cli("tune-oii", tmp_path / "voxels.parquet", "--loss", "tversky", "-o", tmp_path / "t")
    assert result.exit_code == 1 and "voxel tables are not supported" in result.output
    assert not (tmp_path / "t").exists()

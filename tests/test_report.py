"""``tinyseg report``: Markdown tables of scores tables (mean ± std over runs) and tune-oii
logs, with hand-computed numbers, through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from badinput import assert_refused, snapshot
from conftest import write_json, write_map
from test_plot import write_training_log, write_tune_log

from tinyseg_cli.plots.markdown import escape_cell, markdown_table, mean_std


def test_cells():
    assert escape_cell("a|b\nc") == "a\\|b c"
    assert mean_std(0.75396, 0.2806, 3) == "0.754 ± 0.281"
    assert mean_std(0.5, float("nan"), 2) == "0.50"
    assert mean_std(float("nan"), float("nan"), 3) == "–"
    assert markdown_table(["a", "b"], [["x|y", "1"]]) == "| a | b |\n| :--- | ---: |\n| x\\|y | 1 |"


@pytest.fixture
def two_runs(tmp_path: Path, cli) -> tuple[Path, Path]:
    """Scores of two runs on one 1×10 mask with 4 true pixels: run a finds 2 (TP 2, FN 2),
    run b finds all 4 and one false pixel (TP 4, FP 1); and run a alone."""
    truth = np.zeros((1, 10), np.uint8)
    truth[0, 0:4] = 1
    run_a, run_b = np.zeros_like(truth), np.zeros_like(truth)
    run_a[0, 0:2] = 1
    run_b[0, 0:5] = 1
    write_map(tmp_path / "truth" / "s.png", truth)
    write_map(tmp_path / "a" / "s.png", run_a)
    write_map(tmp_path / "b" / "s.png", run_b)
    both, alone = tmp_path / "both.parquet", tmp_path / "alone.parquet"
    common = ["score", "--truth", tmp_path / "truth", "--classes", "bg,defect", "-q"]
    runs = ["--run", f"a={tmp_path / 'a'}", "--run", f"b={tmp_path / 'b'}"]
    assert cli(*common, *runs, "-o", both).exit_code == 0
    assert cli(*common, "--pred", tmp_path / "a", "-o", alone).exit_code == 0
    return both, alone


def test_scores_tables_side_by_side(cli, two_runs):
    both, alone = two_runs
    result = cli("report", both, alone, "--metric", "f2,iou", "--label", "A+B", "--label", "A")
    assert result.exit_code == 0, result.output
    # F2: a 5·2/(5·2 + 4·2) = 5/9, b 5·4/(5·4 + 1) = 20/21; mean 95/126 = 0.753968,
    # std (20/21 − 5/9)/√2 = 0.280600. IoU: a 2/4, b 4/5; mean 0.65, std 0.3/√2 = 0.212132.
    assert result.stdout == (
        "| table | runs | f2 defect | iou defect |\n"
        "| :--- | ---: | ---: | ---: |\n"
        "| A+B | 2 | 0.754 ± 0.281 | 0.650 ± 0.212 |\n"
        "| A | 1 | 0.556 | 0.500 |\n"
    )


def test_classes_levels_digits_title_and_file(cli, two_runs, tmp_path):
    both, _ = two_runs
    out = tmp_path / "results.md"
    args = ["report", both, "--metric", "recall", "--classes", "defect,macro", "--digits", "2"]
    result = cli(*args, "--title", "Runs", "-o", out)
    assert result.exit_code == 0, result.output
    # recall: a 2/4, b 4/4; mean 0.75, std 0.5/√2 = 0.354; macro over the one class the same
    assert out.read_text() == (
        "## Runs\n\n"
        "| table | runs | recall defect | recall macro |\n"
        "| :--- | ---: | ---: | ---: |\n"
        "| both | 2 | 0.75 ± 0.35 | 0.75 ± 0.35 |\n"
    )
    before = snapshot(tmp_path)
    refused = cli(*args, "-o", out)
    assert_refused(refused, 1, "already exists", root=tmp_path, before=before)


def test_tune_log_steps(cli, tmp_path):
    write_tune_log(tmp_path / "tune")
    result = cli("report", tmp_path / "tune")
    assert result.exit_code == 0, result.output
    # steps α = 0.5, 0.7, 0.6 with (TP, FP, FN) = (2, 1, 1), (2, 0, 1), (2, 3, 3):
    # IoU 2/4, 2/3, 2/8; precision 2/3, 2/2, 2/5; OII 0.126, 1, 0.344 (band 0.3–0.4)
    lines = result.stdout.splitlines()
    assert lines[0] == "| step | alpha | oii | iou | precision | in [0.3, 0.4] |"
    assert lines[2].startswith("| 1 | 0.5 | ") and lines[2].endswith(" | 0.500 | 0.667 | no |")
    assert lines[3].startswith("| 2 | 0.7 | ") and lines[3].endswith(" | 0.667 | 1.000 | no |")
    assert lines[4].startswith("| 3 | 0.6 | ") and lines[4].endswith(" | 0.250 | 0.400 | yes |")
    assert lines[-1] == "3 training(s)."


def test_refusals(cli, two_runs, tmp_path):
    both, _ = two_runs
    write_training_log(tmp_path / "run" / "log.parquet", seed=0)
    before = snapshot(tmp_path)
    result = cli("report", tmp_path / "run")
    assert_refused(result, 2, "training log", "tinyseg plot", root=tmp_path, before=before)
    result = cli("report", both, "--metric", "nope")
    assert_refused(result, 2, "--metric nope", root=tmp_path, before=before)
    result = cli("report", both, "--classes", "cat")
    assert_refused(result, 2, "--classes", "'cat'", root=tmp_path, before=before)
    result = cli("report", both, "-o", both, "--force")
    assert_refused(result, 2, "input", root=tmp_path, before=before)


def test_each_run_rows_before_the_mean(cli, two_runs):
    both, _ = two_runs
    result = cli("report", both, "--metric", "f2", "--each-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2:] == [
        "| a | 1 | 0.556 |",  # 5/9
        "| b | 1 | 0.952 |",  # 20/21
        "| both | 2 | 0.754 ± 0.281 |",
    ]


def test_best_prints_the_winning_label(cli, two_runs):
    both, alone = two_runs
    # mean F2 of both runs 0.754 against run a alone 0.556; listed either way round
    result = cli("report", alone, both, "--metric", "f2", "--best")
    assert result.exit_code == 0, result.output
    assert result.stdout == "both\n"
    # fpr: a 0/6, b 1/6 -> both 1/12 against alone 0: the higher mean wins, as asked
    result = cli("report", alone, both, "--metric", "fpr", "--label", "x", "--label", "y", "--best")
    assert result.stdout == "y\n"


def test_oa_and_miou_of_the_summary_row(cli, two_runs):
    both, alone = two_runs
    result = cli("report", both, alone, "--metric", "oa,iou,miou", "--each-run")
    assert result.exit_code == 0, result.output
    # OA: a 8/10, b 9/10 -> 0.85 ± 0.1/√2. mIoU over both classes: a (6/8 + 2/4)/2 = 0.625,
    # b (5/6 + 4/5)/2 = 49/60 -> mean 0.720833, std (49/60 − 0.625)/√2 = 0.135530
    assert result.stdout.splitlines() == [
        "| table | runs | oa | iou defect | miou |",
        "| :--- | ---: | ---: | ---: | ---: |",
        "| both: a | 1 | 0.800 | 0.500 | 0.625 |",
        "| both: b | 1 | 0.900 | 0.800 | 0.817 |",
        "| both | 2 | 0.850 ± 0.071 | 0.650 ± 0.212 | 0.721 ± 0.136 |",
        "| alone | 1 | 0.800 | 0.500 | 0.625 |",
    ]
    assert cli("report", alone, both, "--metric", "oa", "--best").stdout == "both\n"
    assert cli("report", alone, both, "--metric", "miou", "--best").stdout == "both\n"


def test_network_summaries(cli, two_runs, tmp_path):
    both, _ = two_runs
    # as 'train --dry-run --json' writes them: a 2D network and a sparse one (no FLOPs)
    unet = {"arch": "unet-64", "parameters": 20_550_000, "flops": 364_149_999_999}
    sparse = {"arch": "sparse-unet", "parameters": 44_500}
    write_json(tmp_path / "unet.json", {**unet, "input_size": [512, 512]})
    write_json(tmp_path / "sparse.json", sparse)
    result = cli("report", tmp_path / "unet.json", tmp_path / "sparse.json", "--title", "Size")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "## Size\n\n"
        "| network | input | parameters (M) | FLOPs (B) |\n"
        "| :--- | :--- | ---: | ---: |\n"
        "| unet | 512×512 | 20.5500 | 364.1 |\n"
        "| sparse | – | 0.0445 | – |\n"
    )
    before = snapshot(tmp_path)
    mixed = cli("report", tmp_path / "unet.json", both)
    assert_refused(mixed, 2, "reported alone", root=tmp_path, before=before)
    (tmp_path / "bad.json").write_text("[1, 2]")
    before = snapshot(tmp_path)
    wrong = cli("report", tmp_path / "bad.json")
    assert_refused(
        wrong, 1, "not a summary of 'tinyseg train --dry-run --json'", root=tmp_path, before=before
    )
    chosen = cli("report", tmp_path / "unet.json", "--best")
    assert_refused(chosen, 2, "--best", root=tmp_path, before=snapshot(tmp_path))

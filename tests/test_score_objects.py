"""``score --objects``: components, one-to-one matching and object counts on hand-drawn masks,
with hand-computed expectations (SPEC §4.7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import write_map

from tinyseg_cli.metrics.objects import (
    MatchRule,
    ObjectOptions,
    _assign,
    match_objects,
    object_counts,
    parse_match,
    parse_size_bins,
)


def counts_of(truth, pred, rule=MatchRule(), connectivity=8, bins=(4, 16), ignore=None):
    matching = match_objects(
        np.asarray(truth, np.uint8),
        np.asarray(pred, np.uint8),
        ObjectOptions(connectivity, rule, bins),
        ignore,
    )
    return matching, object_counts(matching, 2, bins)


def test_split_defect_one_truth_two_predictions():
    truth = np.zeros((3, 10), np.uint8)
    truth[1, 0:10] = 1  # one 10-pixel crack
    pred = np.zeros_like(truth)
    pred[1, 0:3] = 1  # 3 px, IoU 0.3
    pred[1, 5:10] = 1  # 5 px, IoU 0.5: the match
    matching, counts = counts_of(truth, pred)
    assert counts.true[1] == 1 and counts.pred[1] == 2 and counts.matched[1] == 1
    assert matching.truth_match[1] == 2 and matching.pred_match.tolist() == [0, 0, 1]
    assert counts.iou_sum[1] == pytest.approx(0.5)


def test_merged_prediction_covers_two_truths():
    truth = np.zeros((3, 9), np.uint8)
    truth[1, 0:4] = 1  # 4 px
    truth[1, 5:7] = 1  # 2 px
    pred = np.zeros_like(truth)
    pred[1, 0:9] = 1  # one object over both
    matching, counts = counts_of(truth, pred)
    assert counts.true[1] == 2 and counts.pred[1] == 1 and counts.matched[1] == 1
    assert matching.truth_match.tolist() == [0, 1, 0]  # IoU 4/9 beats 2/9
    assert counts.iou_sum[1] == pytest.approx(4 / 9)


@pytest.mark.parametrize(
    ("rule", "matched"),
    [
        ("overlap", 1),
        ("iou:0.1", 1),  # IoU 1 / (4 + 4 - 1) = 1/7 ≈ 0.143
        ("iou:0.2", 0),
        ("cover:0.25", 1),  # 1 of the 4 true pixels covered
        ("cover:0.3", 0),
    ],
)
def test_prediction_touching_by_one_pixel(rule, matched):
    truth = np.zeros((5, 5), np.uint8)
    truth[0:2, 0:2] = 1
    pred = np.zeros_like(truth)
    pred[1:3, 1:3] = 1  # shares the pixel (1, 1)
    _, counts = counts_of(truth, pred, parse_match(rule))
    assert counts.matched[1] == matched
    assert counts.true[1] == 1 and counts.pred[1] == 1


def test_diagonal_crack_four_versus_eight_connectivity():
    crack = np.eye(5, dtype=np.uint8)
    _, eight = counts_of(crack, crack, connectivity=8)
    _, four = counts_of(crack, crack, connectivity=4)
    assert eight.true[1] == 1 and eight.matched[1] == 1
    assert four.true[1] == 5 and four.matched[1] == 5


def test_classes_do_not_match_each_other():
    truth = np.array([[1, 1, 0, 2]], np.uint8)
    pred = np.array([[2, 2, 0, 2]], np.uint8)
    matching = match_objects(truth, pred, ObjectOptions(), None)
    counts = object_counts(matching, 3, (4,))
    assert counts.true.tolist() == [0, 1, 1] and counts.pred.tolist() == [0, 0, 2]
    assert counts.matched.tolist() == [0, 0, 1]


def test_ignored_pixels_belong_to_no_object():
    truth = np.array([[1, 255, 0, 0]], np.uint8)
    pred = np.array([[1, 1, 0, 1]], np.uint8)
    matching, counts = counts_of(truth, pred, ignore=255)
    # the prediction over the ignored pixel is cut off: 1 px object (IoU 1), and a false one
    assert counts.pred[1] == 2 and counts.matched[1] == 1
    assert matching.pred.area[1:].tolist() == [1, 1] and counts.iou_sum[1] == 1.0


def test_size_bins_at_their_boundaries():
    truth = np.zeros((9, 40), np.uint8)
    truth[0, 0:4] = 1  # 4 px: <= 4
    truth[2, 0:5] = 1  # 5 px: 5-16
    truth[4, 0:16] = 1  # 16 px: 5-16
    truth[6, 0:17] = 1  # 17 px: > 16
    pred = np.zeros_like(truth)
    pred[2, 0:5] = 1
    pred[6, 0:17] = 1
    _, counts = counts_of(truth, pred, bins=(4, 16))
    assert counts.true_by_size[1].tolist() == [1, 2, 1]
    assert counts.matched_by_size[1].tolist() == [0, 1, 1]


def test_assignment_maximises_matches_before_iou():
    # T1 overlaps P1 (IoU 0.9) and P2 (0.05); T2 only P1 (0.05). Taking the best pair first
    # would match one object; the assignment matches both.
    chosen = _assign(np.array([1, 1, 2]), np.array([1, 2, 1]), np.array([0.9, 0.05, 0.05]))
    assert chosen.tolist() == [1, 2]


def test_record_geometry():
    truth = np.zeros((6, 6), np.uint8)
    truth[1:3, 2:5] = 1  # rows 1-2, columns 2-4
    matching, _ = counts_of(truth, np.zeros_like(truth))
    assert matching.truth.bbox[1].tolist() == [1, 2, 3, 5]
    assert matching.truth.centroid[1].tolist() == [1.5, 3.0]
    assert matching.truth_match.tolist() == [0, 0]


@pytest.mark.parametrize("text", ["iou", "iou:0", "iou:1.5", "cover:x", "any", "overlap:1"])
def test_bad_match_rules(text):
    with pytest.raises(Exception, match="--match"):
        parse_match(text)


@pytest.mark.parametrize("text", ["0,4", "4,4", "16,4", "a", ""])
def test_bad_size_bins(text):
    with pytest.raises(Exception, match="--size-bins"):
        parse_size_bins(text)


# Through the command line ------------------------------------------------------------------


@pytest.fixture
def maps(tmp_path: Path) -> Path:
    """Two samples. a: a 4-px defect found by 2 px (IoU 0.5), a 20-px crack split in 6 + 10
    px (the 10 px matches, IoU 0.5), a missed 1-px pore, a false 4-px blob, and an ignored
    pixel. b: empty truth and empty prediction."""
    truth = np.zeros((32, 32), np.uint8)
    pred = np.zeros_like(truth)
    truth[2:4, 2:4] = 1
    pred[2:4, 2:3] = 1
    truth[10:12, 10:20] = 1
    pred[10:12, 10:13] = 1
    pred[10:12, 15:20] = 1
    truth[20, 20] = 1
    pred[28:30, 28:30] = 1
    truth[5, 25] = 255
    write_map(tmp_path / "t" / "a.png", truth)
    write_map(tmp_path / "p" / "a.png", pred)
    write_map(tmp_path / "t" / "b.png", np.zeros_like(truth))
    write_map(tmp_path / "p" / "b.png", np.zeros_like(truth))
    return tmp_path


EXPECTED_MICRO = {
    "true_objects": 3,
    "pred_objects": 4,
    "detected": 2,
    "missed": 1,
    "false_detections": 2,
    "recall": 2 / 3,
    "precision": 0.5,
    "f1": 2 * 2 / (2 * 2 + 1 + 2),
    "f2": 5 * 2 / (5 * 2 + 4 * 1 + 2),
    "mean_iou": 0.5,
    "recall_le4": 0.5,  # the 4-px defect found, the 1-px pore missed
    "recall_le16": None,
    "recall_le64": 1.0,  # the 20-px crack
    "recall_le256": None,
    "recall_gt256": None,
}


def score_json(cli, *args) -> dict:
    result = cli("score", *args, "--json", "-q")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_object_scores_match_hand_counts(cli, maps):
    report = score_json(
        cli, "--truth", maps / "t", "--pred", maps / "p", "--objects", "--classes", "bg,defect",
        "--objects-out", maps / "objects.parquet",
    )  # fmt: skip
    assert report["objects"]["micro"] == pytest.approx(EXPECTED_MICRO)
    assert report["objects"]["classes"]["defect"]["missed"] == 1
    rows = pq.read_table(maps / "objects.parquet").to_pylist()
    missed = [r for r in rows if r["kind"] == "truth" and r["matched_id"] is None]
    assert [(r["sample_id"], r["area"], r["y0"], r["x0"]) for r in missed] == [("a", 1, 20, 20)]
    false = [r for r in rows if r["kind"] == "pred" and r["matched_id"] is None]
    assert sorted((r["area"], r["y0"]) for r in false) == [(4, 28), (6, 10)]
    assert len(rows) == 7


def test_cli_empty_truth_and_prediction_are_null(cli, maps):
    report = score_json(
        cli, "--truth", maps / "t" / "b.png", "--pred", maps / "p" / "b.png", "--objects",
        "--classes", "bg,defect",
    )  # fmt: skip
    micro = report["objects"]["micro"]
    assert micro["true_objects"] == 0 and micro["pred_objects"] == 0
    assert micro["recall"] is None and micro["precision"] is None and micro["f2"] is None


def test_cli_objects_additive_across_shards(cli, maps):
    parts = []
    for k in (0, 1):
        part = maps / f"c{k}.parquet"
        result = cli(
            "score", "--truth", maps / "t", "--pred", maps / "p", "--objects", "--shard",
            f"{k}/2", "--counts-out", part, "-q", "--classes", "bg,defect",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        parts.append(part)
    report = score_json(cli, "--counts", *parts)
    assert report["objects"]["micro"] == pytest.approx(EXPECTED_MICRO)
    assert report["micro"]["tp"] == 18  # the pixel counts reduce as before


def test_cli_runs_report_mean_and_std(cli, maps):
    report = score_json(
        cli, "--truth", maps / "t", "--run", f"x={maps / 'p'}", "--run", f"y={maps / 't'}",
        "--objects", "--classes", "bg,defect",
    )  # fmt: skip
    runs = report["runs"]
    assert runs["by_run"]["y"]["objects"]["micro"]["recall"] == 1.0
    assert runs["mean"]["objects"]["micro"]["recall"] == pytest.approx((2 / 3 + 1) / 2)
    assert runs["std"]["objects"]["micro"]["recall"] == pytest.approx(np.std([2 / 3, 1], ddof=1))


def test_cli_scores_table_has_object_columns(cli, maps):
    result = cli(
        "score", "--truth", maps / "t", "--pred", maps / "p", "--objects", "-o",
        maps / "s.parquet", "-q", "--classes", "bg,defect",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = pq.read_table(maps / "s.parquet").to_pylist()
    micro = next(r for r in rows if r["level"] == "micro")
    assert micro["objects_missed"] == 1 and micro["objects_recall"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--match", "iou:0.5"), "--match needs --objects"),
        (("--objects", "--match", "iou:2"), "--match iou:2"),
        (("--objects", "--connectivity", "6"), "--connectivity 6"),
        (("--objects", "--size-bins", "16,4"), "--size-bins 16,4"),
    ],
)
def test_cli_option_errors_are_usage_errors(cli, maps, args, needle):
    result = cli("score", "--truth", maps / "t", "--pred", maps / "p", *args)
    assert result.exit_code == 2
    assert needle in result.output


def test_cli_objects_over_counts_without_object_columns(cli, maps):
    table = maps / "plain.parquet"
    result = cli("score", "--truth", maps / "t", "--pred", maps / "p", "--counts-out", table)
    assert result.exit_code == 0, result.output
    result = cli("score", "--counts", table, "--objects")
    assert result.exit_code == 1
    assert "no object counts" in result.output


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (9, 15), (33, 33), (64, 65), (128, 128)])
@pytest.mark.parametrize("density", [0.0, 0.001, 0.02, 0.5])
def test_sparse_nonzero_is_flatnonzero(shape, density):
    from tinyseg_cli.metrics.objects import sparse_nonzero

    rng = np.random.default_rng(int(density * 1000) + shape[1])
    values = (rng.random(shape) < density).astype(np.uint8) * rng.integers(1, 255, shape)
    values = values.astype(np.uint8)
    values.reshape(-1)[-1] = 3  # the tail past the last whole word
    assert sparse_nonzero(values).tolist() == np.flatnonzero(values).tolist()

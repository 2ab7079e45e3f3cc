"""3D ``tinyseg score``: per-point tables and LAS files, paired by scene and point, against
hand-computed counts, OA and mIoU (SPEC §4.7, §5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_voxelize import write_las

from tinyseg_cli.commands.score.point_counts import PointOptions, count_scenes, pair_scenes
from tinyseg_cli.io.label_map import parse_label_map
from tinyseg_cli.io.points import open_points
from tinyseg_cli.io.tables import table_metadata

CLASSES = ["ground", "car", "pole"]
CODES = {0: 2, 1: 10, 2: 20, -100: 7}  # class -> LAS code; 7 is not in the label map
LABEL_MAP = "2:ground,10:car,20:pole"
TRUTH = {"a": [0, 0, 1, 1, 2, -100], "b": [0, 0, 0, 2]}
PRED = {"a": [0, 1, 1, 0, 2, 2], "b": [0, 0, 2, 2]}
# Confusion over both scenes (rows truth, columns prediction; a's last point is ignored):
# [[3, 1, 1], [1, 1, 0], [0, 0, 2]] -> TP (3, 1, 2), FP (1, 1, 1), FN (2, 1, 0), N = 9.
# OA = 6/9; IoU = (3/6, 1/3, 2/3), mIoU = 1/2. Per scene: a [[1,1,0],[1,1,0],[0,0,1]],
# b [[2,0,1],[0,0,0],[0,0,1]].
TP, FP, FN = [3, 1, 2], [1, 1, 1], [2, 1, 0]


def point_table(path: Path, labels: dict[str, list[int]], column: str, **metadata) -> Path:
    scenes = [scene for scene, values in labels.items() for _ in values]
    indices = [i for values in labels.values() for i in range(len(values))]
    values = [v for vs in labels.values() for v in vs]
    table = pa.table(
        {
            "scene": pa.array(scenes, pa.string()),
            "point_index": pa.array(indices, pa.int64()),
            column: pa.array(values, pa.int16()),
        }
    )
    meta = {f"tinyseg.{key}": json.dumps(value) for key, value in metadata.items()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def las_scene(path: Path, truth: list[int], pred: list[int] | None = None) -> Path:
    n = len(truth)
    xyz = np.column_stack([np.arange(n), np.zeros(n), np.zeros(n)]).astype(np.float64)
    extra = None
    if pred is not None:
        extra = {"prediction": np.array([CODES[c] for c in pred], np.uint8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_las(path, xyz, [CODES[c] for c in truth], extra=extra)


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    truth = point_table(tmp_path / "truth.parquet", TRUTH, "label")
    pred = point_table(tmp_path / "pred.parquet", PRED, "prediction", classes=CLASSES)
    return truth, pred


def report(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_hand_scores(scores: dict) -> None:
    classes = scores["classes"]
    assert list(classes) == CLASSES
    assert [classes[c]["tp"] for c in CLASSES] == TP
    assert [classes[c]["fp"] for c in CLASSES] == FP
    assert [classes[c]["fn"] for c in CLASSES] == FN
    assert [classes[c]["iou"] for c in CLASSES] == pytest.approx([1 / 2, 1 / 3, 2 / 3])
    assert scores["oa"] == pytest.approx(2 / 3)
    assert scores["miou"] == pytest.approx(1 / 2)
    assert scores["n_samples"] == 2
    assert scores["modality"] == "points" and "all classes" in scores["convention"]


def test_tables_by_hand(cli, tables, tmp_path: Path):
    truth, pred = tables
    counts = tmp_path / "counts.parquet"
    scores = report(
        cli("score", "--truth", truth, "--pred", pred, "--json", "--counts-out", counts)
    )
    check_hand_scores(scores)
    # 3D averages every class by default: micro TP 6, FP 3, FN 3.
    assert scores["macro"]["n_classes"] == 3 and scores["averaged_classes"] == CLASSES
    assert (scores["micro"]["tp"], scores["micro"]["fp"]) == (6, 3)
    rows = pq.read_table(counts).to_pylist()
    a_pole = next(r for r in rows if r["sample_id"] == "a" and r["class_index"] == 2)
    assert (a_pole["tp"], a_pole["fp"], a_pole["fn"], a_pole["tn"]) == (1, 0, 0, 4)
    b_ground = next(r for r in rows if r["sample_id"] == "b" and r["class_index"] == 0)
    assert (b_ground["tp"], b_ground["fp"], b_ground["fn"], b_ground["tn"]) == (2, 0, 1, 1)
    foreground = report(
        cli("score", "--truth", truth, "--pred", pred, "--json", "--foreground-only")
    )
    assert foreground["micro"]["tp"] == 3 and foreground["macro"]["n_classes"] == 2
    assert foreground["oa"] == pytest.approx(2 / 3)  # OA and mIoU stay over all classes


def test_las_truth_with_label_map_against_a_table(cli, tmp_path: Path, tables):
    _, pred = tables
    for scene, labels in TRUTH.items():
        las_scene(tmp_path / "las" / f"{scene}.las", labels)
    args = ["score", "--truth", tmp_path / "las", "--pred", pred, "--json"]
    check_hand_scores(report(cli(*args, "--label-map", LABEL_MAP)))
    # Without --label-map the codes would be the labels: code 10 is beyond the 3 classes.
    result = cli(*args)
    assert result.exit_code == 1
    assert "scene a: point 2: truth label 10 is outside the class map" in result.output
    assert "--label-map" in result.output


def test_label_map_recorded_with_the_predictions(cli, tmp_path: Path):
    voxelize = {"label_map": {"2": 0, "10": 1, "20": 2}, "label_dim": "classification"}
    pred = point_table(
        tmp_path / "pred.parquet", PRED, "prediction", classes=CLASSES, voxelize=voxelize
    )
    for scene, labels in TRUTH.items():
        las_scene(tmp_path / "las" / f"{scene}.las", labels)
    (tmp_path / "out").mkdir()
    pred.rename(tmp_path / "out" / "predictions.parquet")  # an infer OUT_DIR
    glob = str(tmp_path / "las" / "*.las")
    check_hand_scores(report(cli("score", "--truth", glob, "--pred", tmp_path / "out", "--json")))


def test_las_against_las(cli, tmp_path: Path):
    for scene in TRUTH:
        las_scene(tmp_path / "t" / f"{scene}.las", TRUTH[scene])
        las_scene(tmp_path / "p" / f"{scene}.laz", PRED[scene], PRED[scene])
        las_scene(tmp_path / "both" / f"{scene}.las", TRUTH[scene], PRED[scene])
    common = ["--label-map", LABEL_MAP, "--classes", ",".join(CLASSES), "--json"]
    two_files = cli("score", "--truth", tmp_path / "t", "--pred", tmp_path / "p", *common)
    check_hand_scores(report(two_files))
    # infer --las keeps the source's classification beside the prediction: one file, two dims.
    both = tmp_path / "both"
    check_hand_scores(report(cli("score", "--truth", both, "--pred", both, *common)))
    same_codes = cli(
        "score", "--truth", both, "--pred", both, "--truth-dim", "prediction", *common
    )  # fmt: skip
    assert report(same_codes)["oa"] == 1.0


@pytest.mark.parametrize("chunk", [1, 3, 4, 1 << 20])
def test_chunk_size_does_not_change_counts(tmp_path: Path, tables, chunk: int):
    _, pred_table = tables
    truth_las = {s: las_scene(tmp_path / "t" / f"{s}.las", v) for s, v in TRUTH.items()}
    for scene in PRED:
        las_scene(tmp_path / "p" / f"{scene}.las", PRED[scene], PRED[scene])
    label_map = parse_label_map(LABEL_MAP, None)
    options = PointOptions(n_classes=3, label_map=label_map, chunk_points=chunk)
    expected = {"a": [[1, 1, 0], [1, 1, 0], [0, 0, 1]], "b": [[2, 0, 1], [0, 0, 0], [0, 0, 1]]}
    truth_table = point_table(tmp_path / "truth.parquet", TRUTH, "label")
    for truth, pred in (
        (str(tmp_path / "t"), str(tmp_path / "p")),
        (str(tmp_path / "t"), str(pred_table)),
        (str(truth_table), str(tmp_path / "p")),
        (str(truth_table), str(pred_table)),
    ):
        pairing = pair_scenes(
            open_points(truth, None, "truth"), open_points(pred, None, "prediction"), "error"
        )
        scenes = count_scenes(pairing.pairs, options)
        assert {s.scene: s.matrix.tolist() for s in scenes} == expected, (truth, pred)
    assert sorted(truth_las) == ["a", "b"]


def test_missing_points_error_or_skip(cli, tmp_path: Path):
    truth = point_table(tmp_path / "truth.parquet", TRUTH, "label")
    pred = dict(PRED)
    pred["a"] = PRED["a"][:3]  # points 3, 4, 5 of scene a have no prediction
    pred_path = point_table(tmp_path / "pred.parquet", pred, "prediction", classes=CLASSES)
    args = ["score", "--truth", truth, "--pred", pred_path, "--json"]
    result = cli(*args, "-o", tmp_path / "scores.parquet")
    assert result.exit_code == 1
    assert "scene a: point 3 has no prediction" in result.output
    assert not (tmp_path / "scores.parquet").exists()
    scores = report(cli(*args, "--missing", "skip"))
    assert scores["skipped_points"] == {"without_prediction": 3, "without_truth": 0}
    # Left: a (0,0) (0,1) (1,1) and all of b: TP ground 1 + 2, car 1, pole 1.
    assert [scores["classes"][c]["tp"] for c in CLASSES] == [3, 1, 1]


def test_pairing_errors(cli, tmp_path: Path, tables):
    truth_table, _ = tables
    las_scene(tmp_path / "t" / "a.las", TRUTH["a"])
    las_scene(tmp_path / "p" / "a.las", PRED["a"][:5], PRED["a"][:5])
    common = ["--label-map", LABEL_MAP]

    def error(*args) -> str:
        result = cli("score", *args)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        return lines[0]

    assert "mismatched point counts" in error(
        "--truth", tmp_path / "t", "--pred", tmp_path / "p", *common
    )
    extra = point_table(tmp_path / "extra.parquet", {"a": [0] * 7}, "prediction")
    assert "point 6 is beyond the scene's 6 points" in error(
        "--truth", tmp_path / "t", "--pred", extra, *common
    )
    assert "no prediction for 1 scene(s): b" in error("--truth", truth_table, "--pred", extra)
    big = point_table(tmp_path / "big.parquet", {"a": [0, 0, 5, 0, 0, 0]}, "prediction")
    assert "scene a: point 2: prediction label 5 is outside the class map" in error(
        "--truth", tmp_path / "t", "--pred", big, *common
    )
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.table({"scene": ["a", "a"], "point_index": [1, 1], "label": [0, 0]}), twice)
    assert "point 1 appears twice" in error("--truth", twice, "--pred", extra)
    (tmp_path / "bad.las").write_bytes(b"not a point cloud at all")
    assert "not a readable LAS/LAZ file" in error("--truth", tmp_path / "bad.las", "--pred", big)
    assert "no dimension 'nosuch'" in error(
        "--truth", tmp_path / "t", "--pred", big, "--truth-dim", "nosuch"
    )
    las_scene(tmp_path / "q" / "a.las", TRUTH["a"], [-100, 0, 1, 1, 2, 2])  # code 7: unmapped
    assert "not in the label map" in error(
        "--truth", tmp_path / "q", "--pred", tmp_path / "q", *common
    )


def test_shards_reduce_to_the_whole(cli, tables, tmp_path: Path):
    truth, pred = tables
    whole = report(cli("score", "--truth", truth, "--pred", pred, "--json"))
    parts = []
    for k in range(2):
        part = tmp_path / f"part{k}.parquet"
        result = cli(
            "score", "--truth", truth, "--pred", pred, "--shard", f"{k}/2", "--counts-out", part
        )
        assert result.exit_code == 0, result.output
        parts.append(part)
    reduced = report(cli("score", "--counts", *parts, "--json"))
    assert table_metadata(pq.read_table(parts[0]))["modality"] == "points"
    for key in ("classes", "micro", "macro", "oa", "miou", "n_samples", "modality"):
        assert reduced[key] == whole[key], key


def test_runs_over_two_prediction_tables(cli, tables, tmp_path: Path):
    truth, pred = tables
    perfect = point_table(tmp_path / "perfect.parquet", TRUTH, "prediction", classes=CLASSES)
    scores = report(
        cli("score", "--truth", truth, "--run", f"x={pred}", "--run", f"y={perfect}", "--json")
    )
    runs = scores["runs"]
    assert runs["by_run"]["x"]["oa"] == pytest.approx(2 / 3)
    assert runs["by_run"]["y"]["oa"] == 1.0
    assert runs["mean"]["oa"] == pytest.approx(5 / 6)
    assert runs["std"]["oa"] == pytest.approx((1 / 3) / np.sqrt(2))
    assert runs["mean"]["miou"] == pytest.approx((1 / 2 + 1) / 2)
    assert scores["modality"] == "points"


def test_usage_errors_exit_2(cli, tables, pair_dirs):
    truth, pred = tables
    assert cli("score", "--truth", truth, "--pred", pred, "--threshold", "0.5").exit_code == 2
    truth_dir, pred_dir = pair_dirs
    assert (
        cli("score", "--truth", truth_dir, "--pred", pred_dir, "--label-map", "1:0").exit_code == 2
    )

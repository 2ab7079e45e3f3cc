"""Palettes and class maps that cannot lie (issue 20): --palette applies to the truth only,
a prediction whose class map differs from the truth's is refused (exit 2) unless
--pred-classes says how they correspond, and then the truth is scored in the prediction's
classes. Counts are worked out by hand on 2×4 maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_json, write_map
from tinyseg_cli.errors import UsageError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.scoring.class_maps import correspondence

SIX = ["background", "blowhole", "break", "crack", "fray", "uneven"]
# truth of one sample, six classes: 2 fray (4), 1 crack (3), 1 blowhole (1), 4 background
TRUTH = np.array([[4, 4, 3, 0], [1, 0, 0, 0]], np.uint8)


def predictions(folder: Path, labels: np.ndarray, classes: list[str]) -> Path:
    """A predictions folder as 'tinyseg infer' writes it: a.png and predictions.parquet
    whose metadata carries the model's class map."""
    write_map(folder / "a.png", labels)
    table = pa.table({"sample_id": ["a"], "prediction": ["a.png"]})
    metadata = {b"tinyseg.classes": json.dumps(classes).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), folder / "predictions.parquet")
    return folder


def truth_manifest(tmp_path: Path) -> Path:
    write_map(tmp_path / "truth" / "a.png", TRUTH)
    table = pa.table({"sample_id": ["a"], "mask": ["truth/a.png"]})
    metadata = {b"tinyseg.classes": json.dumps(SIX).encode()}
    path = tmp_path / "truth.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def test_palette_applies_to_the_truth_only(cli, tmp_path: Path):
    """A grey ramp palette binarises soft truth masks at 128; the prediction's label 1 is a
    class index, not grey level 1 (which the palette would turn into background)."""
    truth = write_map(tmp_path / "t" / "a.png", np.array([[0, 200, 255, 90]], np.uint8))
    pred = write_map(tmp_path / "p" / "a.png", np.array([[0, 1, 1, 1]], np.uint8))
    ramp = write_json(tmp_path / "ramp.json", {str(v): int(v >= 128) for v in range(256)})
    result = cli(
        "score", "--truth", truth, "--pred", pred, "--palette", ramp,
        "--classes", "background,defect", "--json", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    defect = json.loads(result.stdout)["classes"]["defect"]
    assert (defect["tp"], defect["fp"], defect["fn"], defect["recall"]) == (2, 1, 0, 1.0)
    coloured = write_map(tmp_path / "p2" / "a.png", np.array([[0, 255, 255, 0]], np.uint8))
    both = cli(
        "score", "--truth", truth, "--pred", coloured, "--palette", ramp, "--pred-palette",
        ramp, "--classes", "background,defect", "--json", "-q",
    )  # fmt: skip
    defect = json.loads(both.stdout)["classes"]["defect"]
    assert (defect["tp"], defect["fp"], defect["fn"]) == (2, 0, 0)


def test_a_binary_model_scored_against_a_six_class_truth_is_refused(cli, tmp_path: Path):
    """The silent-wrong case: [rest, fray] labels read as the truth's classes counted fray
    (1) as blowhole."""
    manifest = truth_manifest(tmp_path)
    pred = predictions(tmp_path / "pred", (TRUTH == 4).astype(np.uint8), ["rest", "fray"])
    for command in ("score", "overlay"):
        extra = ("--image", manifest, "-o", tmp_path / "review") if command == "overlay" else ()
        result = cli(command, "--truth", manifest, "--pred", pred, *extra)
        assert result.exit_code == 2, (command, result.output)
        assert "holds classes (background, blowhole, break, crack, fray, uneven)" in (result.stderr)
        assert "predicts (rest, fray)" in result.stderr
        assert "--pred-classes" in result.stderr


def test_pred_classes_scores_the_truth_in_the_prediction_classes(cli, tmp_path: Path):
    """--pred-classes rest,fray: truth fray (2 pixels) is class 1, every other truth class
    rest. The prediction marks one fray pixel and the crack pixel: TP 1, FP 1, FN 1."""
    manifest = truth_manifest(tmp_path)
    labels = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], np.uint8)
    pred = predictions(tmp_path / "pred", labels, ["rest", "fray"])
    result = cli(
        "score", "--truth", manifest, "--pred", pred, "--pred-classes", "rest,fray",
        "--json", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    classes = json.loads(result.stdout)["classes"]
    assert list(classes) == ["rest", "fray"]
    fray = classes["fray"]
    assert (fray["tp"], fray["fp"], fray["fn"], fray["tn"]) == (1, 1, 1, 5)


def test_the_same_class_map_in_another_order_needs_pred_classes(cli, tmp_path: Path):
    """A prediction of the same six classes in another order is refused until named; then
    the truth is scored in the prediction's order."""
    manifest = truth_manifest(tmp_path)
    order = ["background", "fray", "crack", "blowhole", "break", "uneven"]
    lookup = np.array([order.index(name) for name in SIX], np.uint8)
    pred = predictions(tmp_path / "pred", lookup[TRUTH], order)  # a perfect prediction
    assert cli("score", "--truth", manifest, "--pred", pred, "-q").exit_code == 2
    result = cli(
        "score", "--truth", manifest, "--pred", pred, "--pred-classes", ",".join(order),
        "--json", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    classes = json.loads(result.stdout)["classes"]
    assert list(classes) == order
    assert classes["fray"]["tp"] == 2 and classes["fray"]["fn"] == 0
    assert all(classes[name]["fp"] == classes[name]["fn"] == 0 for name in order)


def test_correspondence_by_name_with_one_class_for_the_rest():
    six = ClassMap(tuple(SIX))
    assert correspondence(six, six) is None
    assert correspondence(six, ClassMap(("rest", "fray"))).tolist() == [0, 0, 0, 0, 1, 0]
    with pytest.raises(UsageError, match="several prediction classes could"):
        correspondence(six, ClassMap(("bg", "crack", "fray", "other")))
    with pytest.raises(UsageError, match="no prediction class is left"):
        correspondence(six, ClassMap(tuple(SIX[:-1])))

"""``tinyseg classweights``: the weight formulas of SPEC §6.2, pixel counting over the
training rows (SPEC §6.1) and the command end to end."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import run_tinyseg, shared_dataset, write_json, write_map

from tinyseg_cli.metrics.counts import LabelOutOfRange, label_counts
from tinyseg_cli.metrics.weights import binary_weights, class_weights

# --- the formulas -------------------------------------------------------------------------

WORKED = [900, 90, 9, 1]  # SPEC §6.2


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        ("icf", [0.0040, 0.0396, 0.3956, 3.5608]),
        ("iscf", [0.0906, 0.2864, 0.9058, 2.7173]),
        ("max-ratio", [1, 10, 100, 900]),
        ("uniform", [1, 1, 1, 1]),
    ],
)
def test_spec_worked_example(scheme: str, expected: list[float]):
    weights = class_weights(WORKED, scheme)
    assert np.round(weights, 4).tolist() == expected
    if scheme in ("icf", "iscf", "uniform"):
        assert weights.sum() == pytest.approx(4)  # normalised: they sum to C


def test_spec_worked_binary_example():
    alpha_neg, alpha_pos = binary_weights(positive=9, negative=991, scheme="iscf")
    assert (round(alpha_neg, 4), round(alpha_pos, 4)) == (0.0870, 0.9130)


@pytest.mark.parametrize(
    ("pixels", "scheme", "expected"),
    [
        # f = (1/3, 1), Σf = 4/3, α = 2·f/Σf = (2/3 · 3/4, 2 · 3/4) = (0.5, 1.5)
        ([3, 1], "icf", [0.5, 1.5]),
        # f = (1/4, 1/2, 1), Σf = 7/4, α = 3·f·4/7 = (3/7, 6/7, 12/7)
        ([16, 4, 1], "iscf", [3 / 7, 6 / 7, 12 / 7]),
        # max = 200: (200/50, 200/200, 200/25) = (4, 1, 8)
        ([50, 200, 25], "max-ratio", [4, 1, 8]),
        # absent class: weight 0, out of the sums; C = 2 classes with pixels, as for (3, 1)
        ([3, 0, 1], "icf", [0.5, 0, 1.5]),
        ([5, 0, 7], "uniform", [1, 0, 1]),
        # max = 9: (1, 0, 9/3 = 3)
        ([9, 0, 3], "max-ratio", [1, 0, 3]),
    ],
)
def test_hand_computed_weights(pixels: list[int], scheme: str, expected: list[float]):
    assert class_weights(pixels, scheme).tolist() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("positive", "negative", "scheme", "expected"),
    [
        # f_pos = 1, f_neg = 1/3: α_pos = 1 / (4/3) = 0.75
        (1, 3, "icf", (0.25, 0.75)),
        # f_pos = 1/2, f_neg = 1/6: α_pos = (1/2) / (2/3) = 0.75
        (4, 36, "iscf", (0.25, 0.75)),
        (4, 36, "uniform", (0.5, 0.5)),
        # ratios, unnormalised: larger side 1, positive 991/9
        (9, 991, "max-ratio", (1.0, 991 / 9)),
        # an absent positive class: α_pos = 0, α_neg = f_neg / f_neg = 1
        (0, 5, "icf", (1.0, 0.0)),
    ],
)
def test_hand_computed_binary(positive, negative, scheme, expected):
    assert binary_weights(positive, negative, scheme) == pytest.approx(expected)


def test_formulas_reject_bad_input():
    with pytest.raises(ValueError, match="no class"):
        class_weights([0, 0], "icf")
    with pytest.raises(ValueError, match="unknown scheme"):
        class_weights([1, 2], "focal")


# --- the counting kernel ------------------------------------------------------------------


@pytest.mark.parametrize("block_pixels", [1, 3, 7, 1 << 20])
def test_label_counts_in_blocks_with_ignore(block_pixels: int):
    labels = np.array([[0, 1, 1], [2, 255, 0], [0, 0, 2]], np.uint8)
    # by hand: 0 -> 4, 1 -> 2, 2 -> 2; 255 ignored
    counts = label_counts(labels, 3, 255, block_pixels)
    assert counts.tolist() == [4, 2, 2]
    assert label_counts(labels, None, 255, block_pixels).tolist() == [4, 2, 2]


def test_label_counts_signed_ignore_and_out_of_range():
    labels = np.array([[-100, 1], [0, 1]], np.int16)
    assert label_counts(labels, 2, -100).tolist() == [1, 2]
    with pytest.raises(LabelOutOfRange) as caught:
        label_counts(labels, 2, 255)
    assert (caught.value.flat_index, caught.value.value) == (0, -100)
    with pytest.raises(LabelOutOfRange) as caught:
        label_counts(np.array([[0, 0], [0, 3]], np.uint64), 2, None, block_pixels=2)
    assert caught.value.flat_index == 3
    assert label_counts(np.array([3, 1], np.uint64), None, None).tolist() == [0, 1, 0, 1]


# --- the command --------------------------------------------------------------------------


@pytest.fixture
def cw(cli):
    """``tinyseg classweights ARGS`` in-process."""
    return lambda *args, **kwargs: cli("classweights", *args, **kwargs)


A = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 2, 255], [0, 0, 0, 0]], np.uint8)
B = np.array([[0, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0], [2, 2, 2, 2]], np.uint8)
# Training counts by hand: A whole (255 ignored): 0 -> 12, 1 -> 2, 2 -> 1; B inside the ROI
# rows 0:2, cols 0:2 = [[0, 1], [1, 1]]: 0 -> 1, 1 -> 3; C is a validation row.
# n = (13, 5, 1); samples holding each class: (2, 2, 1).
# ICF: f = (1/13, 1/5, 1), Σf = (5 + 13 + 65)/65 = 83/65, α = 3·f/Σf = (15, 39, 195)/83.
TRAIN_PIXELS = [13, 5, 1]
TRAIN_ICF = [15 / 83, 39 / 83, 195 / 83]


def write_manifest(folder: Path, split: bool = True, name: str = "manifest.parquet") -> Path:
    write_map(folder / "m" / "a.png", A)
    write_map(folder / "m" / "b.npy", B)
    write_map(folder / "m" / "c.tif", np.full((4, 4), 2, np.uint8))
    columns = {
        "sample_id": ["a", "b", "c"],
        "mask": ["m/a.png", "m/b.npy", "m/c.tif"],
        "y0": [None, 0, None],
        "x0": [None, 0, None],
        "y1": [None, 2, None],
        "x1": [None, 2, None],
    }
    if split:
        columns["split"] = ["train", "train", "val"]
    table = pa.table(columns)
    path = folder / name
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def json_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_manifest_training_rows_roi_and_ignore(cw, tmp_path: Path):
    manifest = write_manifest(tmp_path)
    out = tmp_path / "w.parquet"
    result = cw(manifest, "--scheme", "icf", "--classes", "bg,crack,pore", "-o", out, "--json")
    report = json_of(result)
    assert report["scheme"] == "icf" and "binary" not in report
    assert [c["pixels"] for c in report["classes"]] == TRAIN_PIXELS
    assert [c["samples"] for c in report["classes"]] == [2, 2, 1]
    assert [c["weight"] for c in report["classes"]] == pytest.approx(TRAIN_ICF)
    assert [c["name"] for c in report["classes"]] == ["bg", "crack", "pore"]
    table = pq.read_table(out)
    assert table.schema.names == ["class_index", "class_name", "pixels", "samples", "weight"]
    assert [str(t) for t in table.schema.types] == ["int32", "string", "int64", "int64", "double"]
    assert table["pixels"].to_pylist() == TRAIN_PIXELS
    meta = table.schema.metadata
    assert json.loads(meta[b"tinyseg.scheme"]) == "icf"
    assert json.loads(meta[b"tinyseg.classes"]) == ["bg", "crack", "pore"]
    assert json.loads(meta[b"tinyseg.ignore_index"]) == 255
    assert json.loads(meta[b"tinyseg.provenance"])["command"].startswith("tinyseg classweights")
    assert b"tinyseg.binary" not in meta
    assert "icf weights over 2 sample(s)" in result.stderr


def test_without_split_column_every_row_counts(cw, tmp_path: Path):
    manifest = write_manifest(tmp_path, split=False, name="all.csv")
    report = json_of(cw(manifest, "--scheme", "max-ratio", "--json", "-q"))
    # C adds 16 pixels of class 2: n = (13, 5, 17); max-ratio: (17/13, 17/5, 1)
    assert [c["pixels"] for c in report["classes"]] == [13, 5, 17]
    assert [c["weight"] for c in report["classes"]] == pytest.approx([17 / 13, 3.4, 1.0])
    assert [c["name"] for c in report["classes"]] == ["0", "1", "2"]  # numbered


def test_binary_by_name_and_index(cw, tmp_path: Path):
    manifest = write_manifest(tmp_path)
    args = (manifest, "--scheme", "iscf", "--classes", "bg,crack,pore", "-q")
    out = tmp_path / "b.parquet"
    report = json_of(cw(*args, "--binary", "pore", "--json", "-o", out))
    # rest = 13 + 5 = 18 pixels in 2 samples, pore 1 pixel in 1 sample
    # f_pos = 1/√1 = 1, f_rest = 1/√18: α_pos = 1 / (1 + 1/√18)
    alpha_pos = 1 / (1 + 1 / math.sqrt(18))
    assert report["binary"] == {"index": 2, "name": "pore"}
    assert [(c["index"], c["name"]) for c in report["classes"]] == [(0, "rest"), (1, "pore")]
    assert [c["pixels"] for c in report["classes"]] == [18, 1]
    assert [c["samples"] for c in report["classes"]] == [2, 1]
    assert [c["weight"] for c in report["classes"]] == pytest.approx([1 - alpha_pos, alpha_pos])
    meta = pq.read_table(out).schema.metadata
    assert json.loads(meta[b"tinyseg.binary"]) == {"index": 2, "name": "pore"}
    assert json.loads(meta[b"tinyseg.source_classes"]) == ["bg", "crack", "pore"]
    assert json.loads(meta[b"tinyseg.classes"]) == ["rest", "pore"]
    by_index = json_of(cw(*args, "--binary", "2", "--json"))
    assert by_index["classes"] == report["classes"]
    uniform = json_of(cw(manifest, "--scheme", "uniform", "--binary", "1", "--json", "-q"))
    assert [c["weight"] for c in uniform["classes"]] == [0.5, 0.5]
    assert cw(*args, "--binary", "scratch").exit_code == 2


def test_allow_missing(cw, tmp_path: Path):
    manifest = write_manifest(tmp_path)
    args = (manifest, "--scheme", "icf", "--classes", "bg,crack,pore,ghost")
    refused = cw(*args, "-o", tmp_path / "w.parquet")
    assert refused.exit_code == 1
    assert "class 'ghost' has no pixels" in refused.stderr and "--allow-missing" in refused.stderr
    assert not (tmp_path / "w.parquet").exists()
    allowed = cw(*args, "--allow-missing", "--json")
    report = json_of(allowed)
    # ghost left out: the other weights are those of three classes, ghost gets 0
    assert [c["weight"] for c in report["classes"]] == pytest.approx([*TRAIN_ICF, 0.0])
    assert "warning" in allowed.stderr and "ghost" in allowed.stderr


def test_rgb_masks_through_a_palette(cw, tmp_path: Path):
    colours = np.array([[0, 0, 0], [255, 0, 0]], np.uint8)
    write_map(tmp_path / "m" / "a.png", colours[np.array([[0, 1], [1, 1]])])
    palette = write_json(tmp_path / "palette.json", {"#000000": 0, "#ff0000": 1})
    report = json_of(cw(tmp_path / "m", "--palette", palette, "--scheme", "icf", "--json"))
    assert [c["pixels"] for c in report["classes"]] == [1, 3]  # a folder: every mask counts
    assert cw(tmp_path / "m", "--scheme", "icf").exit_code == 1  # RGB needs the palette


def counts_table(rows: list[tuple], run: list[str] | None = None) -> pa.Table:
    names = ["sample_id", "class_index", "tp", "fp", "fn", "tn"]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    return pa.table({**({"run": run} if run else {}), **columns})


def test_counts_table_input(cw, tmp_path: Path):
    # per sample tp+fp+fn+tn = 10; truth pixels n_c = Σ tp + fn
    rows = [("s1", 0, 6, 1, 1, 2), ("s1", 1, 2, 1, 1, 6), ("s2", 0, 10, 0, 0, 0)]
    pq.write_table(counts_table(rows), tmp_path / "c.parquet")
    report = json_of(cw(tmp_path / "c.parquet", "--scheme", "icf", "--json", "-q"))
    # n = (6+1+10, 2+1) = (17, 3); samples (2, 1); α = 2·(1/17, 1/3)/(1/17 + 1/3) = (6, 34)/20
    assert [c["pixels"] for c in report["classes"]] == [17, 3]
    assert [c["samples"] for c in report["classes"]] == [2, 1]
    assert [c["weight"] for c in report["classes"]] == pytest.approx([0.3, 1.7])
    pq.write_table(counts_table(rows, ["r1"] * 3), tmp_path / "one.parquet")
    assert json_of(cw(tmp_path / "one.parquet", "--scheme", "icf", "--json", "-q")) == report
    pq.write_table(counts_table(rows, ["r1", "r1", "r2"]), tmp_path / "two.parquet")
    two = cw(tmp_path / "two.parquet", "--scheme", "icf")
    assert two.exit_code == 1 and "2 runs" in two.stderr
    sharded = cw(tmp_path / "c.parquet", "--scheme", "icf", "--shard", "0/2")
    assert sharded.exit_code == 2


def test_pipe_from_score_counts(tmp_path: Path):
    write_map(tmp_path / "t" / "a.png", A)
    write_map(tmp_path / "t" / "b.png", B)
    counts = run_tinyseg(
        "score", "--truth", tmp_path / "t", "--pred", tmp_path / "t", "--counts-out", "-", "-q"
    )
    assert counts.returncode == 0, counts.stderr
    piped = run_tinyseg("classweights", "-", "--scheme", "iscf", "--json", input=counts.stdout)
    assert piped.returncode == 0, piped.stderr
    # A: (12, 2, 1) with 255 ignored; B whole: 0 -> 5, 1 -> 3, 2 -> 8; n = (17, 5, 9)
    classes = json.loads(piped.stdout)["classes"]
    assert [c["pixels"] for c in classes] == [17, 5, 9]
    direct = run_tinyseg("classweights", tmp_path / "t", "--scheme", "iscf", "--json", "-q")
    assert json.loads(direct.stdout)["classes"] == classes
    assert b"iscf weights" in piped.stderr  # the summary goes to stderr


def test_stdout_parquet_and_determinism(cw, tmp_path: Path):
    manifest = write_manifest(tmp_path)
    args = (manifest, "--scheme", "iscf", "-q", "-o")
    first, second = cw(*args, "-"), cw(*args, "-")
    assert first.exit_code == 0 and first.stdout_bytes[:4] == b"PAR1"
    assert first.stdout_bytes == second.stdout_bytes
    out = tmp_path / "w.parquet"
    assert cw(*args, out, "--force").exit_code == 0
    once = out.read_bytes()
    again = cw(*args, out)
    assert again.exit_code == 1 and "--force" in again.stderr
    assert cw(*args, out, "--force").exit_code == 0
    assert out.read_bytes() == once  # the same command line gives the same bytes
    one_job = cw(*args, "-", "--jobs", "1").stdout_bytes
    two_jobs = cw(*args, "-", "--jobs", "2").stdout_bytes
    read = [pq.read_table(pa.BufferReader(data)) for data in (one_job, two_jobs)]
    assert read[0].equals(read[1])


def test_shards_add_up(cw, tmp_path: Path):
    masks = tmp_path / "m"
    for i, mask in enumerate([A, B, A.T, B.T, A]):
        write_map(masks / f"s{i}.png", mask)
    args = (masks, "--scheme", "icf", "--classes", "bg,crack,pore", "-q")
    whole = json_of(cw(*args, "--json"))
    parts = []
    for k in range(2):
        out = tmp_path / f"w{k}.parquet"
        result = cw(*args, "--shard", f"{k}/2", "-o", out, "--jobs", "2")
        assert result.exit_code == 0, result.output
        parts.append(pq.read_table(out))
        assert json.loads(parts[-1].schema.metadata[b"tinyseg.shard"]) == f"{k}/2"
    pixels = np.add(*(part["pixels"].to_numpy() for part in parts))
    assert pixels.tolist() == [c["pixels"] for c in whole["classes"]]
    pq.write_table(pa.concat_tables(parts), tmp_path / "all.parquet")
    merged = json_of(cw(tmp_path / "all.parquet", "--scheme", "icf", "--json", "-q"))
    assert merged["classes"] == whole["classes"]


def _assert_one_line_error(result, message: str, tmp_path: Path) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not list(tmp_path.glob("*.parquet.*")) and not (tmp_path / "out.parquet").exists()


def with_label(array: np.ndarray, y: int, x: int, value: int) -> np.ndarray:
    out = array.copy()
    out[y, x] = value
    return out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m: (m / "a.png").unlink(), r"a\.png: no such file \(sample 'a'\)"),
        (lambda m: (m / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken"), "unreadable PNG"),
        (
            lambda m: write_map(m / "a.png", with_label(A, 3, 1, 9)),
            r"a\.png: pixel \(y=3, x=1\): mask label 9 is outside the class map "
            r"\(expected 0\.\.2\)",
        ),
        # outside b's ROI (rows 0:2, cols 0:2) a bad label is never read
        (lambda m: write_map(m / "b.npy", with_label(B, 3, 3, 9)), None),
    ],
)
def test_mask_errors_are_one_line(cw, tmp_path: Path, damage, message):
    manifest = write_manifest(tmp_path)
    damage(tmp_path / "m")
    out = tmp_path / "out.parquet"
    result = cw(manifest, "--scheme", "icf", "--classes", "bg,crack,pore", "-o", out)
    if message is None:
        assert result.exit_code == 0 and out.exists()
    else:
        _assert_one_line_error(result, message, tmp_path)


def test_label_error_names_the_image_pixel_inside_an_roi(cw, tmp_path: Path):
    write_map(tmp_path / "a.png", with_label(np.zeros((5, 5), np.uint8), 2, 3, 4))
    roi = {"y0": [1], "x0": [2], "y1": [4], "x1": [5]}
    pq.write_table(pa.table({"sample_id": ["a"], "mask": ["a.png"], **roi}), tmp_path / "m.pq")
    result = cw(tmp_path / "m.pq", "--scheme", "icf", "--classes", "bg,fg")
    _assert_one_line_error(result, r"pixel \(y=2, x=3\): mask label 4", tmp_path)


def test_input_errors_are_one_line(cw, tmp_path: Path):
    manifest = write_manifest(tmp_path)
    rows = pq.read_table(manifest).to_pylist()
    for row in rows:
        row["split"] = "val"
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "val.parquet")
    rows[1]["split"] = "train"  # b alone: no pore pixel inside its ROI
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "odd.parquet")
    pq.write_table(
        pa.table({"sample_id": pa.array([], pa.string()), "mask": []}), tmp_path / "e.pq"
    )
    cases = [
        ("val.parquet", r"val\.parquet: no rows with split == 'train'"),
        ("nothing.parquet", r"nothing\.parquet: no such file"),
        ("b.parquet", r"class 'pore' has no pixels in the training rows"),
        ("odd.parquet", r"expected a manifest \(sample_id, mask\)"),
        ("e.pq", "manifest has no rows"),
    ]
    for name, message in cases:
        out = tmp_path / "out.parquet"
        result = cw(tmp_path / name, "--scheme", "icf", "--classes", "bg,crack,pore", "-o", out)
        _assert_one_line_error(result, message, tmp_path)


def test_zero_255_masks_are_explained(cw, tmp_path: Path):
    write_map(tmp_path / "m" / "a.png", np.array([[0, 255], [0, 0]], np.uint8))
    result = cw(tmp_path / "m", "--scheme", "icf")
    assert result.exit_code == 1 and "--palette" in result.stderr


def test_usage_errors_exit_2(cw, tmp_path: Path):
    manifest = write_manifest(tmp_path)
    assert cw(manifest).exit_code == 2  # --scheme is required
    assert cw(manifest, "--scheme", "focal").exit_code == 2
    assert cw(manifest, "--scheme", "icf", "--json", "-o", "-").exit_code == 2
    assert cw(manifest, "--scheme", "icf", "--shard", "2/2").exit_code == 2


def test_crackforest_real_counts(cw, tmp_path: Path):
    """SOURCE.md: the derived masks hold 17,831,915 background and 292,885 crack pixels."""
    masks = sorted((shared_dataset("crackforest") / "mask").glob("*.png"))
    assert len(masks) == 118
    manifest = pa.table({"sample_id": [p.stem for p in masks], "mask": [str(p) for p in masks]})
    pq.write_table(manifest, tmp_path / "cfd.parquet")
    report = json_of(
        cw(tmp_path / "cfd.parquet", "--scheme", "icf", "--classes", "background,crack", "--json")
    )
    background, crack = report["classes"]
    assert (background["pixels"], crack["pixels"]) == (17_831_915, 292_885)
    assert (background["samples"], crack["samples"]) == (118, 118)  # every image has crack
    # ICF with two classes: α_crack = 2·(1/n_crack) / (1/n_bg + 1/n_crack) = 2·n_bg / N
    assert crack["weight"] == pytest.approx(2 * 17_831_915 / (17_831_915 + 292_885))

"""Bad values in tables and options (issue 11): ROI, count and patch columns validated when a
table is read, option values outside their range refused at parsing, and truth that holds no
scored pixel reported (SPEC §2, §9). Every refusal is checked by :func:`assert_refused`:
exit status, one line naming the file and row/column (or the option), no traceback, nothing
written and the inputs unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from badinput import assert_refused, snapshot
from conftest import write_map
from test_infer import SPEC, config_of
from test_voxels_train_infer import write_voxels

from tinyseg_cli.commands.resample.run import memory_needed, physical_memory
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.checkpoint import Checkpoint, save_checkpoint
from tinyseg_cli.io.tables import integer_column
from tinyseg_cli.models import build_model

CLASSES = ["background", "crack", "pore"]
SIZE = 24  # image side: larger than the 8-pixel patches below
SPLITS = ("train", "train", "val")
NET = ("--arch", "half-unet", "--patch-size", "8", "-b", "2", "--workers", "0")


def write_inputs(root: Path, ignored: tuple[int, ...] = ()) -> list[dict]:
    """Images and masks of three samples under ``root`` (the ``ignored`` ones entirely the
    ignore label 255); the manifest rows, with a whole-image ROI as floats."""
    rng = np.random.default_rng(0)
    rows = []
    for i, split in enumerate(SPLITS):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[3:6, 4:12] = 1
        mask[15:17, 15:17] = 2
        if i in ignored:
            mask[:] = 255
        image = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        write_map(root / "images" / f"s{i}.png", image)
        write_map(root / "masks" / f"s{i}.png", mask)
        rows.append(
            {
                "sample_id": f"s{i}",
                "image": f"images/s{i}.png",
                "mask": f"masks/s{i}.png",
                "split": split,
                "y0": 0.0,
                "x0": 0.0,
                "y1": float(SIZE),
                "x1": float(SIZE),
            }
        )
    return rows


def write_parquet(path: Path, rows: list[dict]) -> Path:
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {"tinyseg.classes": json.dumps(CLASSES)}
    )
    pq.write_table(table, path)
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    lines = [",".join(rows[0])] + [",".join(str(v) for v in row.values()) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def checkpoint(root: Path) -> Path:
    path = root / "model.pt"
    save_checkpoint(path, Checkpoint(config_of(SPEC, CLASSES), build_model(SPEC).state_dict()))
    return path


def command(name: str, table: Path, root: Path) -> list[str | Path]:
    """``name`` reading the manifest ``table``, writing under ``root``."""
    classes = ("--classes", ",".join(CLASSES))
    out = root / "o.parquet"
    return {
        "score": ["score", "--truth", table, "--pred", root / "masks", *classes, "-o", out],
        "classweights": ["classweights", table, "--scheme", "icf", *classes, "-o", out],
        "resample": ["resample", table, "--strategy", "random", "--size", "8", "-o", out],
        "split": ["split", table, "--ratios", "0.5,0.5", "-o", out],
        "infer": ["infer", "-c", root / "model.pt", table, "--split", "val", "-o", root / "out"],
        "train": ["train", table, *NET, *classes, "-o", root / "run"],
        "tune-oii": ["tune-oii", table, *NET, *classes, "--loss", "tversky", "-o", root / "tune"],
    }[name]


COMMANDS = ("score", "classweights", "resample", "split", "infer", "train", "tune-oii")


# --- cause 5: ROI columns -------------------------------------------------------------------

ROI_CASES = {  # (column, value, table format, what the message says)
    "nan": ("y1", math.nan, ".parquet", "row 1: y1 is NaN (expected an integer)"),
    "fraction": ("x0", 10.5, ".parquet", "row 1: x0 is 10.5 (expected an integer)"),
    "text": ("x0", "abc", ".csv", "row 1: x0 is 'abc' (expected an integer)"),
    "negative": ("y0", -1.0, ".parquet", "row 1: y0 is -1 (expected >= 0)"),
    "empty": ("y1", 0.0, ".parquet", "row 1: empty ROI (y0=0, x0=0, y1=0, x1=24)"),
}


@pytest.mark.parametrize("case", list(ROI_CASES))
@pytest.mark.parametrize("name", COMMANDS)
def test_bad_roi_value_names_file_row_and_column(cli, tmp_path: Path, name: str, case: str):
    column, value, suffix, message = ROI_CASES[case]
    rows = write_inputs(tmp_path)
    rows[1][column] = value
    table = (write_csv if suffix == ".csv" else write_parquet)(tmp_path / f"m{suffix}", rows)
    if name == "infer":
        checkpoint(tmp_path)
    before = snapshot(tmp_path)
    result = cli(*command(name, table, tmp_path))
    assert_refused(result, 1, f"{table}: {message}", root=tmp_path, before=before)


# --- cause 5: counts, class counts and patch tables ---------------------------------------


def counts_rows() -> list[dict]:
    """Counts of one sample over two classes, every class adding up to 20 pixels."""
    return [
        {"sample_id": "a", "class_index": 0, "tp": 12.0, "fp": 2.0, "fn": 1.0, "tn": 5.0},
        {"sample_id": "a", "class_index": 1, "tp": 5.0, "fp": 1.0, "fn": 2.0, "tn": 12.0},
    ]


COUNTS_CASES = {
    "nan": ("tp", math.nan, "row 1: tp is NaN (counts must be integers)"),
    "fraction": ("tp", 10.5, "row 1: tp is 10.5 (counts must be integers)"),
    "negative": ("fn", -3.0, "row 1: fn is -3 (counts must be >= 0)"),
    "inf": ("tn", math.inf, "row 1: tn is inf (counts must be integers)"),
    "class": ("class_index", 0.5, "row 1: class_index is 0.5 (expected an integer)"),
}


@pytest.mark.parametrize("case", list(COUNTS_CASES))
@pytest.mark.parametrize("name", ["score", "classweights"])
def test_bad_count_names_file_row_and_column(cli, tmp_path: Path, name: str, case: str):
    column, value, message = COUNTS_CASES[case]
    rows = counts_rows()
    rows[1][column] = value
    table = tmp_path / "counts.parquet"
    pq.write_table(pa.Table.from_pylist(rows), table)
    before = snapshot(tmp_path)
    if name == "score":
        result = cli("score", "--counts", table, "-o", tmp_path / "o.parquet")
    else:
        result = cli("classweights", table, "--scheme", "icf", "-o", tmp_path / "o.parquet")
    err = assert_refused(result, 1, f"{table}: {message}", root=tmp_path, before=before)
    assert "Warning" not in err and "-9223372036854775808" not in err


def test_count_as_text_in_a_csv_counts_table(cli, tmp_path: Path):
    rows = counts_rows()
    rows[0]["fp"] = "two"
    table = write_csv(tmp_path / "counts.csv", rows)
    before = snapshot(tmp_path)
    result = cli("score", "--counts", table)
    assert_refused(
        result, 1, f"{table}: row 0: fp is 'two' (counts must be integers)", root=tmp_path,
        before=before,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (100.5, "row 0: pixels is 100.5 (counts must be integers)"),
        (math.nan, "row 0: pixels is NaN (counts must be integers)"),
        (-4.0, "row 0: pixels is -4 (counts must be >= 0)"),
    ],
)
def test_bad_class_counts_pixels(cli, tmp_path: Path, value: float, message: str):
    table = tmp_path / "class_counts.parquet"
    pq.write_table(pa.table({"class_index": [0, 1], "pixels": [value, 3.0]}), table)
    before = snapshot(tmp_path)
    result = cli("classweights", table, "--scheme", "icf", "-o", tmp_path / "w.parquet")
    assert_refused(result, 1, f"{table}: {message}", root=tmp_path, before=before)


def test_bad_voxel_label_in_classweights(cli, tmp_path: Path):
    voxels = write_voxels(tmp_path / "vox")
    table = pq.read_table(voxels)
    labels = table["label"].to_numpy().astype(np.float64)
    labels[3] = math.nan
    index = table.column_names.index("label")
    pq.write_table(table.set_column(index, "label", pa.array(labels)), voxels)
    before = snapshot(tmp_path)
    result = cli("classweights", voxels, "--scheme", "icf", "-o", tmp_path / "w.parquet")
    assert_refused(result, 1, f"{voxels}: row 3: label is NaN", root=tmp_path, before=before)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("y", math.nan, "row 1: y is NaN (expected an integer)"),
        ("x", 2.5, "row 1: x is 2.5 (expected an integer)"),
        ("h", 0, "row 1: h is 0 (expected >= 1)"),
        ("draw", -1, "row 1: draw is -1 (expected >= 0)"),
    ],
)
def test_bad_patch_table_value_in_train(cli, tmp_path: Path, column, value, message):
    write_parquet(tmp_path / "m.parquet", write_inputs(tmp_path))
    rows = [{"sample_id": f"s{i}", "y": 0.0, "x": 0.0, "h": 8, "w": 8, "draw": 0} for i in range(2)]
    rows[1][column] = value
    patches = tmp_path / "patches.parquet"
    pq.write_table(pa.Table.from_pylist(rows), patches)
    before = snapshot(tmp_path)
    result = cli(
        "train", tmp_path / "m.parquet", *NET, "--patches", patches, "-o", tmp_path / "run"
    )
    assert_refused(result, 1, f"{patches}: {message}", root=tmp_path, before=before)


@pytest.mark.parametrize(
    ("index", "weight", "message"),
    [
        (1.0, math.nan, "row 1: weight is nan (expected a finite number >= 0)"),
        (1.0, -2.0, "row 1: weight is -2.0 (expected a finite number >= 0)"),
        (1.5, 1.0, "row 1: class_index is 1.5 (expected an integer)"),
    ],
)
def test_bad_class_weights_table_in_train(cli, tmp_path: Path, index, weight, message):
    table = write_parquet(tmp_path / "m.parquet", write_inputs(tmp_path))
    weights = tmp_path / "weights.parquet"
    pq.write_table(
        pa.table({"class_index": [0.0, index, 2.0], "weight": [0.5, weight, 2.0]}), weights
    )
    before = snapshot(tmp_path)
    args = ("--loss", "wce", "--class-weights", weights, "-o", tmp_path / "run")
    result = cli("train", table, *NET, *args)
    assert_refused(result, 1, f"{weights}: {message}", root=tmp_path, before=before)


def test_integer_column_accepts_integral_values_of_any_type():
    table = pa.table(
        {
            "ints": pa.array([3, None, 0], pa.int16()),
            "floats": [3.0, None, 0.0],
            "text": ["3", None, " 0 "],
        }
    )
    for column in table.column_names:
        values, present = integer_column(table, column, "t", minimum=0, nullable=True)
        assert values.tolist() == [3, 0, 0] and present.tolist() == [True, False, True]
        with pytest.raises(TinysegError, match=f"^t: row 1: {column} is empty"):
            integer_column(table, column, "t")
    with pytest.raises(TinysegError, match=r"t: row 0: b is 1e\+20 \(expected an integer\)"):
        integer_column(pa.table({"b": [1e20]}), "b", "t")
    with pytest.raises(TinysegError, match="holds bool values"):
        integer_column(pa.table({"b": [True]}), "b", "t")


# --- cause 6: option ranges -----------------------------------------------------------------

OPTION_CASES = [
    ("train", ("--lr", "nan"), "--lr", "> 0, found nan"),
    ("train", ("--lr", "-1"), "--lr", "> 0, found -1"),
    ("train", ("--resize", "0", "0"), "--resize", ">= 8, found 0"),
    ("train", ("--max-pixels", "-1"), "--max-pixels", "x>=1"),
    ("train", ("--momentum", "1"), "--momentum", "in [0, 1), found 1"),
    ("train", ("--lr-decay", "0"), "--lr-decay", "in (0, 1], found 0"),
    ("train", ("--weight-decay", "inf"), "--weight-decay", "finite number, found inf"),
    ("train", ("--seed", "-1"), "--seed", "x>=0"),
    ("train", ("--loss", "tversky", "--alpha", "nan"), "--alpha", ">= 0, found nan"),
    ("train", ("--loss", "tversky", "--beta", "-1"), "--beta", ">= 0, found -1"),
    ("train", ("--loss", "dibe", "--theta", "1.5"), "--theta", "in [0, 1], found 1.5"),
    ("train", ("--loss", "focal-tversky", "--gamma", "0"), "--gamma", "> 0, found 0"),
    ("train", ("--loss", "ce", "--gamma", "2"), "--gamma", "loss ce"),
    ("train", ("--augment", "rotate:nan"), "--augment", "finite number > 0, found nan"),
    ("tune-oii", ("--augment", "shift:1.5"), "--augment", "in (0, 1), found 1.5"),
    ("tune-oii", ("--resize", "64", "-3"), "--resize", ">= 8, found -3"),
    ("tune-oii", ("--lr", "nan"), "--lr", "> 0, found nan"),
    ("tune-oii", ("--tol", "nan"), "--tol", "> 0, found nan"),
    ("tune-oii", ("--noise", "nan"), "--noise", "finite number, found nan"),
    ("tune-oii", ("--range", "nan,0.5"), "--range", "two finite numbers"),
    ("score", ("--beta", "-1"), "--beta", "> 0, found -1"),
    ("score", ("--beta", "nan"), "--beta", "> 0, found nan"),
    ("score", ("--threshold", "2"), "--threshold", "0.0<=x<=1.0"),
    ("score", ("--threshold", "nan"), "--threshold", "finite number, found nan"),
    ("infer", ("--threshold", "nan"), "--threshold", "finite number, found nan"),
    ("infer", ("--threshold", "-0.5"), "--threshold", "0.0<=x<=1.0"),
    ("resample", ("--strategy", "equal-pixels", "--tolerance", "nan"), "--tolerance", "nan"),
    (
        "resample",
        ("--strategy", "binary", "--class", "1", "--positive-fraction", "nan"),
        "--positive-fraction",
        "finite number, found nan",
    ),
    ("split", ("--folds", "2", "--val-fraction", "nan"), "--val-fraction", "nan"),
]


def option_command(name: str, root: Path) -> list[str | Path]:
    """``name`` on good inputs, without the option under test."""
    table, out = root / "m.parquet", root / "o.parquet"
    return {
        "train": ["train", table, *NET, "-o", root / "run"],
        "tune-oii": ["tune-oii", table, *NET, "--loss", "tversky", "-o", root / "tune"],
        "score": ["score", "--truth", root / "masks", "--pred", root / "masks", "-o", out],
        "infer": ["infer", "-c", root / "model.pt", root / "images", "-o", root / "out"],
        "resample": ["resample", table, "--size", "8", "-o", root / "o.parquet"],  # + --strategy
        "split": ["split", table, "-o", root / "o.parquet"],
    }[name]


@pytest.mark.parametrize(("name", "option", "hint", "rule"), OPTION_CASES)
def test_option_out_of_range_is_a_usage_error(cli, tmp_path: Path, name, option, hint, rule):
    write_parquet(tmp_path / "m.parquet", write_inputs(tmp_path))
    checkpoint(tmp_path)
    before = snapshot(tmp_path)
    result = cli(*option_command(name, tmp_path), *option)
    assert_refused(result, 2, hint, rule, root=tmp_path, before=before)


def test_voxel_lengths_must_be_finite(cli, tmp_path: Path):
    before = snapshot(tmp_path)
    for option in (("--voxel", "inf"), ("--tile", "nan"), ("--stride", "-1")):
        result = cli("voxelize", tmp_path / "a.las", *option, "-o", tmp_path / "vox")
        assert_refused(result, 2, option[0], "finite length > 0", root=tmp_path, before=before)


def test_resample_refuses_a_table_larger_than_memory(cli, tmp_path: Path):
    n = 2_000_000_000
    have = physical_memory()
    if have is None or memory_needed(n, len(CLASSES), 30) <= have:
        pytest.skip("no memory size known, or a machine with that much memory")
    write_parquet(tmp_path / "m.parquet", write_inputs(tmp_path))
    before = snapshot(tmp_path)
    result = cli(*option_command("resample", tmp_path), "--strategy", "random", "-n", str(n))
    err = assert_refused(result, 2, "-n 2000000000", "GiB of memory", root=tmp_path, before=before)
    assert "2,000,000,000 patches" in err and "this machine has" in err


# --- cause 7: every truth pixel ignored -----------------------------------------------------


def test_score_warns_of_samples_without_a_scored_pixel(cli, tmp_path: Path):
    write_inputs(tmp_path, ignored=(0, 2))
    result = cli("score", "--truth", tmp_path / "masks", "--pred", tmp_path / "masks", "--json")
    assert result.exit_code == 0, result.stderr
    assert (
        "warning: 2 samples have no scored pixel (every truth pixel is the ignore label 255): "
        "s0, s2" in result.stderr
    )
    assert json.loads(result.stdout)["n_samples"] == 3


def test_score_caps_the_list_of_unscored_samples(cli, tmp_path: Path):
    for i in range(7):
        write_map(tmp_path / "t" / f"u{i}.png", np.full((4, 4), 255, np.uint8))
        write_map(tmp_path / "p" / f"u{i}.png", np.zeros((4, 4), np.uint8))
    result = cli("score", "--truth", tmp_path / "t", "--pred", tmp_path / "p", "--classes", "a,b")
    assert result.exit_code == 0, result.stderr
    assert "warning: 7 samples have no scored pixel" in result.stderr
    assert ": u0, u1, u2, u3, u4, …" in result.stderr and "u5" not in result.stderr


def test_score_counts_with_an_empty_sample_warn_too(cli, tmp_path: Path):
    rows = counts_rows()
    rows += [{**row, "sample_id": "z", "tp": 0, "fp": 0, "fn": 0, "tn": 0} for row in rows]
    table = tmp_path / "counts.parquet"
    pq.write_table(pa.Table.from_pylist(rows), table)
    result = cli("score", "--counts", table)
    assert result.exit_code == 0, result.stderr
    assert "1 sample has no scored pixel" in result.stderr and ": z" in result.stderr


@pytest.mark.parametrize("name", ["train", "tune-oii", "classweights", "resample"])
def test_training_rows_without_a_labelled_pixel_are_refused(cli, tmp_path: Path, name: str):
    table = write_parquet(tmp_path / "m.parquet", write_inputs(tmp_path, ignored=(0, 1)))
    before = snapshot(tmp_path)
    result = cli(*command(name, table, tmp_path))
    needle = {
        "train": "no labelled pixel in the 2 training rows",
        "tune-oii": "no labelled pixel in the 2 training rows",
        "classweights": "no pixel counted in 2 training samples",
        "resample": "no labelled pixel in the 2 training rows",
    }[name]
    assert_refused(result, 1, needle, root=tmp_path, before=before)


def test_voxel_training_without_a_labelled_voxel_is_refused(cli, tmp_path: Path):
    voxels = write_voxels(tmp_path / "vox")
    table = pq.read_table(voxels)
    index = table.column_names.index("label")
    ignored = pa.array(np.full(table.num_rows, -100, np.int16))
    pq.write_table(table.set_column(index, "label", ignored), voxels)
    before = snapshot(tmp_path)
    result = cli(
        "train", voxels.parent, "--channels", "4,8", "--workers", "0", "-o", tmp_path / "r"
    )
    assert_refused(result, 1, f"{voxels}: no labelled voxel", root=tmp_path, before=before)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_voxel_feature_is_refused_by_row(cli, tmp_path: Path, value: float):
    voxels = write_voxels(tmp_path / "vox")
    table = pq.read_table(voxels)
    x = table["x"].to_numpy().copy()
    x[3] = value
    pq.write_table(table.set_column(table.column_names.index("x"), "x", pa.array(x)), voxels)
    before = snapshot(tmp_path)
    result = cli("train", voxels, "--channels", "4,8", "--workers", "0", "-o", tmp_path / "r")
    expected = f"{voxels}: row 3: x is {value} (features must be finite)"
    assert_refused(result, 1, expected, root=tmp_path, before=before)

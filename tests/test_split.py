"""``tinyseg split``: group assignment, folds, region ROIs, stratification, the leakage check,
nnU-Net splits, determinism, pipes and every error path (SPEC §4.1)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from badinput import assert_refused, snapshot
from conftest import run_tinyseg, write_json, write_map
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.prep.folds import Plan, assign
from tinyseg_cli.prep.splits import (
    assign_stratified,
    carve_validation,
    find_leak,
    parse_ratios,
    parse_region,
    region_rois,
    split_sizes,
)

CLASSES = ["bg", "line", "dot"]

# --- pure functions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.7,0.15,0.15", (0.7, 0.15, 0.15)), ("0.8,0.2", (0.8, 0.2)), ("1,0", (1.0, 0.0))],
)
def test_parse_ratios(text: str, expected: tuple[float, ...]):
    assert parse_ratios(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.5,0.6", "sum to 1"),
        ("a,b", "not a list of numbers"),
        ("1", "give 2"),
        ("0.4,0.2,0.2,0.2", "give 2"),
        ("1.2,-0.2", ">= 0"),
        ("0,1", "train ratio"),
    ],
)
def test_parse_ratios_rejects(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_ratios(text)


def test_parse_region():
    assert parse_region("top:0.33") == ("top", 0.33)
    for bad in ("middle:0.3", "top", "top:x", "left:1", "right:0"):
        with pytest.raises(ValueError):
            parse_region(bad)


@pytest.mark.parametrize(
    ("n_groups", "ratios", "expected"),
    [
        # 7, 1.5, 1.5 -> floors 7, 1, 1; the one group left goes to the first largest remainder
        (10, (0.7, 0.15, 0.15), [7, 2, 1]),
        (20, (0.7, 0.15, 0.15), [14, 3, 3]),
        # 0.03 of 3 rounds to no group, but every positive split gets one
        (3, (0.98, 0.01, 0.01), [1, 1, 1]),
        (4, (1.0, 0.0), [4, 0]),
    ],
)
def test_split_sizes(n_groups: int, ratios: tuple[float, ...], expected: list[int]):
    assert split_sizes(n_groups, ratios).tolist() == expected


def test_split_sizes_too_few_groups():
    with pytest.raises(TinysegError, match="2 group"):
        split_sizes(2, (0.7, 0.15, 0.15))


@pytest.mark.parametrize(
    ("roi", "side", "fraction", "region", "rest"),
    [
        # 0.33 of 100 rows = 33 rows
        ((0, 0, 100, 50), "top", 0.33, (0, 0, 33, 50), (33, 0, 100, 50)),
        ((0, 0, 100, 50), "bottom", 0.33, (67, 0, 100, 50), (0, 0, 67, 50)),
        # half of 50 columns = 25; a tenth of 50 = 5
        ((0, 0, 100, 50), "left", 0.5, (0, 0, 100, 25), (0, 25, 100, 50)),
        ((0, 0, 100, 50), "right", 0.1, (0, 45, 100, 50), (0, 0, 100, 45)),
        # inside an ROI: 0.25 of its 40 rows = 10, counted from its own top
        ((10, 20, 50, 70), "top", 0.25, (10, 20, 20, 70), (20, 20, 50, 70)),
        # 0.335 of 200 rows = 67 (rounded half up)
        ((0, 0, 200, 8), "top", 0.335, (0, 0, 67, 8), (67, 0, 200, 8)),
    ],
)
def test_region_rois(roi, side, fraction, region, rest):
    assert region_rois(roi, side, fraction) == (region, rest)


def test_region_rois_empty_part():
    with pytest.raises(ValueError, match="empty region"):
        region_rois((0, 0, 100, 10), "top", 0.001)
    with pytest.raises(ValueError, match="empty rest"):
        region_rois((0, 0, 100, 10), "left", 0.99)


def _groups_per_split(keys: list[str], labels: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key, label in zip(keys, labels, strict=True):
        out.setdefault(label, set()).add(key)
    return out


group_structures = st.lists(st.integers(0, 14), min_size=3, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    rows=group_structures,
    train=st.floats(0.3, 0.9),
    three=st.booleans(),
    seed=st.integers(0, 2**16),
    stratify=st.booleans(),
)
def test_ratio_splits_never_leak(rows, train, three, seed, stratify):
    keys = [f"g{g}" for g in rows]
    n_groups = len(set(keys))
    ratios = (train, (1 - train) / 2, (1 - train) / 2) if three else (train, 1 - train)
    if n_groups < len(ratios):
        return
    counts = np.random.default_rng(seed).integers(0, 3, (len(keys), 3))
    plan = Plan(ratios=ratios, seed=seed, stratify=stratify)
    assignment = assign(keys, plan, set(), counts)
    labels = assignment.labels()
    ids = [f"s{i}" for i in range(len(keys))]
    assert find_leak(ids, labels, keys) is None
    assert len(labels) == len(keys) and set(labels) <= {"train", "val", "test"}
    groups = _groups_per_split(keys, labels)
    assert sum(len(g) for g in groups.values()) == n_groups  # each group in one split only
    for name, ratio in zip(("train", "val", "test"), ratios, strict=False):
        got = len(groups.get(name, ()))
        assert got >= 1  # every split with a positive ratio has a group
        assert abs(got - ratio * n_groups) < 3  # rounding, and the one-group minimum


@settings(max_examples=60, deadline=None)
@given(
    rows=group_structures,
    k=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    stratify=st.booleans(),
    carve=st.booleans(),
)
def test_folds_never_leak(rows, k, seed, stratify, carve):
    keys = [f"g{g}" for g in rows]
    n_groups = len(set(keys))
    if n_groups < k:
        return
    counts = np.random.default_rng(seed).integers(0, 2, (len(keys), 4))
    val_fraction = 0.5 / (k - 1) if carve and n_groups >= 2 * k else None
    plan = Plan(folds=k, val_fraction=val_fraction, seed=seed, stratify=stratify)
    assignment = assign(keys, plan, set(), counts)
    ids = [f"s{i}" for i in range(len(keys))]
    assert find_leak(ids, assignment.labels(), keys) is None
    assert None not in assignment.fold and set(assignment.split) == {"train"}
    fold_of = dict(zip(keys, assignment.fold, strict=True))
    sizes = np.bincount(list(fold_of.values()), minlength=k)
    assert sizes.max() - sizes.min() <= 1  # K folds of groups differ by one group at most
    if val_fraction is not None:
        val_of = dict(zip(keys, assignment.val_fold, strict=True))
        assert all(val_of[g] != fold_of[g] for g in fold_of)
        assert all(v in range(k) for v in val_of.values() if v is not None)


def test_folds_sizes_unstratified():
    keys = [f"g{i}" for i in range(11)]
    fold = assign(keys, Plan(folds=4, seed=3), set(), None).fold
    assert sorted(np.bincount(fold).tolist()) == [2, 3, 3, 3]


def test_stratify_puts_the_rare_class_in_every_split():
    presence = np.zeros((10, 3), bool)
    presence[:, 0] = True  # background everywhere
    presence[:, 1] = True  # a common class
    presence[[1, 4, 7], 2] = True  # the rare class: 3 groups for 3 splits
    for seed in range(20):
        split = assign_stratified(presence, (0.6, 0.2, 0.2), seed)
        assert sorted(split[[1, 4, 7]].tolist()) == [0, 1, 2]
        assert np.bincount(split).tolist() == [6, 2, 2]


def test_carve_validation_counts():
    fold = np.repeat(np.arange(5), 4)  # 5 folds of 4 groups
    val = carve_validation(fold, 5, 0.25, seed=0)
    # each fold trains on 16 groups; a quarter (4) of them validate it
    assert np.bincount(val[val >= 0], minlength=5).tolist() == [4, 4, 4, 4, 4]
    assert not (val == fold).any()
    with pytest.raises(TinysegError, match="too few groups"):
        carve_validation(fold, 5, 0.5, seed=0)  # 8 of 16 for each of 5 folds: 40 > 20
    # 6 groups in 3 folds, 2 of the other 4 validate each fold: all 6 are used, and the
    # greedy choice must keep every later fold fillable
    for seed in range(30):
        fold = np.repeat(np.arange(3), 2)
        presence = np.random.default_rng(seed).random((6, 3)) < 0.4
        val = carve_validation(fold, 3, 0.4, seed, presence)
        assert sorted(val.tolist()) == [0, 0, 1, 1, 2, 2] and not (val == fold).any()


def test_find_leak_cases():
    ids = ["a", "b", "c"]
    assert find_leak(ids, ["train", "train", "val"], ["g1", "g1", "g2"]) is None
    assert "group 'g1' crosses splits: train (row 0) and val (row 1)" in find_leak(
        ids, ["train", "val", "val"], ["g1", "g1", "g2"]
    )
    assert "sample 'a' appears twice (rows 0 and 2)" in find_leak(["a", "b", "a"], ["x"] * 3)
    sources = ["img", "img", "other"]
    same = [(0, 0, 5, 5), (0, 0, 5, 5), None]
    assert "rows 0 and 1 are the same image and ROI" in find_leak(
        ids, ["train"] * 3, None, sources, same
    )
    touching = [(0, 0, 5, 5), (5, 0, 10, 5), None]  # share an edge, no pixel
    assert find_leak(ids, ["train", "val", "val"], None, sources, touching) is None
    overlapping = [(0, 0, 6, 5), (5, 0, 10, 5), None]
    assert "overlap" in find_leak(ids, ["train", "val", "val"], None, sources, overlapping)
    whole = [None, same[0], None]  # no ROI: the whole image, which overlaps any window
    assert "overlap" in find_leak(ids, ["train", "val", "val"], None, sources, whole)


# --- the command --------------------------------------------------------------------------


def make_dataset(root: Path, groups: int = 6, views: int = 2, rare: tuple[int, ...] = (0,)) -> Path:
    """``groups`` objects of ``views`` 20×10 images each. Every mask holds 2 rows of class 1
    (20 pixels); the first view of each ``rare`` group one pixel of class 2."""
    rows = []
    for g in range(groups):
        for v in range(views):
            name = f"g{g}v{v}"
            mask = np.zeros((20, 10), np.uint8)
            mask[:2] = 1
            if g in rare and v == 0:
                mask[10, 5] = 2
            write_map(root / "masks" / f"{name}.png", mask)
            write_map(root / "images" / f"{name}.png", mask * 100)
            rows.append(
                {
                    "sample_id": name,
                    "image": f"images/{name}.png",
                    "mask": f"masks/{name}.png",
                    "group": f"g{g}",
                    "note": f"user value {g}{v}",
                }
            )
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {"tinyseg.classes": json.dumps(CLASSES)}
    )
    pq.write_table(table, root / "manifest.parquet")
    return root / "manifest.parquet"


@pytest.fixture
def split(cli):
    """``tinyseg split ARGS -j 1`` in-process."""
    return lambda *args, **kwargs: cli("split", *args, "-j", "1", **kwargs)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def rows_of(path: Path | bytes) -> list[dict]:
    source = pa.BufferReader(path) if isinstance(path, bytes) else path
    return pq.read_table(source).to_pylist()


def split_record(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"tinyseg.split"])


def test_ratios_keep_groups_and_columns(split, manifest: Path, tmp_path: Path):
    out = tmp_path / "out" / "split.parquet"
    result = ok(split(manifest, "--ratios", "0.5,0.25,0.25", "--seed", "2", "-o", out))
    rows = rows_of(out)
    assert [r["sample_id"] for r in rows] == [f"g{g}v{v}" for g in range(6) for v in range(2)]
    groups = _groups_per_split([r["group"] for r in rows], [r["split"] for r in rows])
    assert {name: len(g) for name, g in groups.items()} == {"train": 3, "val": 2, "test": 1} or {
        name: len(g) for name, g in groups.items()
    } == {"train": 3, "val": 1, "test": 2}
    assert sum(len(g) for g in groups.values()) == 6  # no group in two splits
    assert rows[0]["note"] == "user value 00"  # user columns kept
    # paths relative to the output table's folder
    assert rows[0]["mask"] == "../data/masks/g0v0.png"
    assert (out.parent / rows[0]["mask"]).is_file()
    meta = pq.read_schema(out).metadata
    assert json.loads(meta[b"tinyseg.classes"]) == CLASSES
    assert split_record(out) == {
        "mode": "ratios",
        "group": "group",
        "ratios": [0.5, 0.25, 0.25],
        "seed": 2,
    }
    assert "grouped by 'group'" in result.stderr
    ok(split("--check", out))


def test_report_counts_by_hand(split, manifest: Path):
    summary = json.loads(ok(split(manifest, "--ratios", "0.5,0.5", "--json", "-q")).stdout)
    assert summary["rows"] == 12 and summary["groups"] == 6 and summary["classes"] == CLASSES
    parts = {p["name"]: p for p in summary["parts"]}
    assert set(parts) == {"train", "val"}
    for part in parts.values():  # 3 groups of 2 images each: 200 pixels, 20 of class 1
        assert part["images"] == 6 and part["groups"] == 3
        dots = part["pixels"]["dot"]
        assert part["pixels"] == {"bg": 6 * 180 - dots, "line": 120, "dot": dots}
    # the only dot pixel is in one split: imbalance there = bg : dot = 1079 : 1
    with_dot = next(p for p in parts.values() if p["pixels"]["dot"] == 1)
    assert with_dot["imbalance"] == pytest.approx(1079)
    without = next(p for p in parts.values() if p["pixels"]["dot"] == 0)
    assert without["imbalance"] == pytest.approx(1080 / 120)


def test_from_dir_matches_stems(split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("a", "b", "c"):
        write_map(tmp_path / "img" / f"{name}.png", np.zeros((4, 4), np.uint8))
    for name in ("a", "b", "d"):
        write_map(tmp_path / "lab" / f"{name}.png", np.eye(4, dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    out = Path("out") / "s.parquet"
    result = ok(split("--from-dir", "img", "--masks", "lab", "--ratios", "0.5,0.5", "-o", out))
    assert "1 image(s) without a mask, left out: c" in result.stderr
    assert "1 mask(s) without an image, left out: d" in result.stderr
    rows = rows_of(out)  # paths relative to the output table's folder
    assert [(r["sample_id"], r["image"], r["mask"]) for r in rows] == [
        ("a", "../img/a.png", "../lab/a.png"),
        ("b", "../img/b.png", "../lab/b.png"),
    ]
    absolute = tmp_path / "abs.parquet"  # folders given absolute: paths stay absolute
    ok(split("--from-dir", tmp_path / "img", "--masks", tmp_path / "lab", "--ratios", "0.5,0.5",
             "-o", absolute))  # fmt: skip
    assert rows_of(absolute)[0]["mask"] == str(tmp_path / "lab" / "a.png")
    write_map(tmp_path / "other" / "z.png", np.zeros((4, 4), np.uint8))
    failed = split("--from-dir", "other", "--masks", "lab", "--ratios", "0.5,0.5")
    assert failed.exit_code == 1 and "no image has a mask with the same name" in failed.output


def test_csv_manifest_and_stdout_paths_absolute(split, tmp_path: Path):
    data = tmp_path / "data"
    make_dataset(data, groups=2, views=1)
    table = pq.read_table(data / "manifest.parquet").drop_columns(["group"])
    pa_csv.write_csv(table, data / "manifest.csv")
    result = ok(split(data / "manifest.csv", "--ratios", "0.5,0.5", "-o", "-", "-q"))
    rows = rows_of(result.stdout_bytes)
    assert [Path(r["mask"]) for r in rows] == [
        (data / "masks" / "g0v0.png").resolve(),
        (data / "masks" / "g1v0.png").resolve(),
    ]
    # without a group column each sample is its own group
    assert sorted(r["split"] for r in rows) == ["train", "val"]


def test_folds_and_fold_selection(split, manifest: Path, tmp_path: Path):
    out = tmp_path / "folds.parquet"
    ok(split(manifest, "--folds", "3", "-o", out))
    rows = rows_of(out)
    assert {r["split"] for r in rows} == {"train"}
    fold_of = {r["group"]: r["fold"] for r in rows}
    assert sorted(np.bincount(list(fold_of.values())).tolist()) == [2, 2, 2]
    assert all(fold_of[r["group"]] == r["fold"] for r in rows)
    fold1 = tmp_path / "fold1.parquet"
    ok(split(out, "--fold", "1", "-o", fold1))
    for row in rows_of(fold1):
        assert row["split"] == ("val" if row["fold"] == 1 else "train")
    assert split_record(fold1)["fold"] == 1 and split_record(fold1)["folds"] == 3


def test_val_fraction(split, tmp_path: Path):
    manifest = make_dataset(tmp_path / "d", groups=9, views=1)
    out = tmp_path / "folds.parquet"
    ok(split(manifest, "--folds", "3", "--val-fraction", "0.2", "--fold", "0", "-o", out))
    rows = rows_of(out)
    # each fold trains on 6 groups; round(0.2 × 6) = 1 validates it
    assert np.bincount([r["val_fold"] for r in rows if r["val_fold"] is not None]).tolist() == [
        1,
        1,
        1,
    ]
    for row in rows:
        assert row["val_fold"] != row["fold"]
        expected = "test" if row["fold"] == 0 else "val" if row["val_fold"] == 0 else "train"
        assert row["split"] == expected
    ok(split("--check", out))


def test_region_rows(split, tmp_path: Path):
    mask = np.zeros((100, 8), np.uint8)
    mask[30:36] = 1  # rows 30..35: 3 rows (30, 31, 32) above the cut at 33, 3 below
    write_map(tmp_path / "m" / "a.png", mask)
    write_map(tmp_path / "i" / "a.png", mask)
    out = tmp_path / "r.parquet"
    result = ok(split("--from-dir", tmp_path / "i", "--masks", tmp_path / "m",
                      "--region", "top:0.33", "-o", out, "--json"))  # fmt: skip
    rows = rows_of(out)
    assert [(r["sample_id"], r["region"], r["split"]) for r in rows] == [
        ("a@top", "top", "val"),
        ("a@rest", "rest", "train"),
    ]
    assert [(r["y0"], r["x0"], r["y1"], r["x1"]) for r in rows] == [(0, 0, 33, 8), (33, 0, 100, 8)]
    parts = {p["name"]: p["pixels"] for p in json.loads(result.stdout)["parts"]}
    assert parts == {"train": {"0": 67 * 8 - 24, "1": 24}, "val": {"0": 33 * 8 - 24, "1": 24}}
    assert split_record(out)["group"] is None
    ok(split("--check", out))


def test_region_inside_roi_and_held_out(split, manifest: Path, tmp_path: Path):
    out = tmp_path / "r.parquet"
    ok(split(manifest, "--region", "left:0.5", "--test-ids", "g5", "-o", out))
    rows = rows_of(out)
    assert len(rows) == 5 * 2 * 2 + 2  # g5's two images stay whole, as test
    test = [r for r in rows if r["split"] == "test"]
    assert [(r["sample_id"], r["region"], r["x1"]) for r in test] == [
        ("g5v0", None, 10),
        ("g5v1", None, 10),
    ]
    first = rows[:2]
    assert [(r["x0"], r["x1"], r["split"]) for r in first] == [(0, 5, "val"), (5, 10, "train")]
    again = tmp_path / "again.parquet"  # a region split of ROI rows splits each ROI
    ok(split(out, "--region", "top:0.5", "--test-ids", "g5", "-o", again))
    assert [(r["y0"], r["y1"], r["x0"], r["x1"]) for r in rows_of(again)[:2]] == [
        (0, 10, 0, 5),
        (10, 20, 0, 5),
    ]


def test_test_ids(split, manifest: Path, tmp_path: Path):
    out = tmp_path / "t.parquet"
    ok(split(manifest, "--ratios", "0.5,0.5", "--test-ids", "g1,g4", "-o", out))
    assert {r["group"] for r in rows_of(out) if r["split"] == "test"} == {"g1", "g4"}
    ids = tmp_path / "ids.txt"
    ids.write_text("# held out\ng2\n\ng3  # comment\n")
    ok(split(manifest, "--folds", "2", "--test-ids", ids, "-o", out, "--force"))
    rows = rows_of(out)
    assert {r["group"] for r in rows if r["fold"] is None} == {"g2", "g3"}
    assert {r["split"] for r in rows if r["fold"] is None} == {"test"}
    assert split_record(out)["test_ids"] == ["g2", "g3"]
    unknown = split(manifest, "--ratios", "0.5,0.5", "--test-ids", "g1,nope")
    assert unknown.exit_code == 1 and "unknown group(s): 'nope'" in unknown.output
    three = split(manifest, "--ratios", "0.6,0.2,0.2", "--test-ids", "g1")
    assert three.exit_code == 2 and "TRAIN,VAL" in three.output


def test_stratify_through_the_command(split, tmp_path: Path):
    manifest = make_dataset(tmp_path / "d", groups=10, views=1, rare=(2, 5, 8))
    for seed in ("0", "1", "2"):
        result = ok(split(manifest, "--ratios", "0.6,0.2,0.2", "--stratify", "--seed", seed,
                          "--json", "-q"))  # fmt: skip
        parts = json.loads(result.stdout)["parts"]
        assert [p["pixels"]["dot"] for p in parts] == [1, 1, 1]
        assert [p["groups"] for p in parts] == [6, 2, 2]


def test_check_exit_codes(split, manifest: Path, tmp_path: Path):
    out = tmp_path / "s.parquet"
    ok(split(manifest, "--ratios", "0.5,0.5", "-o", out))
    result = ok(split("--check", out, "--json"))
    assert json.loads(result.stdout)["ok"] is True
    assert "OK: 12 rows, 6 groups (column 'group')" in result.stderr
    table = pq.read_table(out)
    splits = table["split"].to_pylist()
    splits[1] = "val" if splits[1] == "train" else "train"  # g0v1 leaves its group
    leaking = tmp_path / "leak.parquet"
    pq.write_table(table.set_column(table.column_names.index("split"), "split",
                                    pa.array(splits)), leaking)  # fmt: skip
    failed = split("--check", leaking)
    assert failed.exit_code == 1
    assert "group 'g0' crosses splits" in failed.output and "(row 1)" in failed.output
    assert ok(split("--check", leaking, "--group", "sample_id"))  # each sample its own group
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), twice)
    failed = split("--check", twice)
    assert failed.exit_code == 1 and "sample 'g0v0' appears twice (rows 0 and 12)" in failed.output
    renamed = table.slice(0, 1).set_column(0, "sample_id", pa.array(["copy"]))
    same_image = tmp_path / "same.parquet"
    pq.write_table(pa.concat_tables([table, renamed]), same_image)
    failed = split("--check", same_image, "--group", "sample_id")
    assert failed.exit_code == 1 and "rows 0 and 12 are the same image and ROI" in failed.output
    plain = tmp_path / "plain.parquet"
    pq.write_table(table.drop_columns(["split"]), plain)
    failed = split("--check", plain)
    assert failed.exit_code == 1 and "no split or fold column" in failed.output


def test_check_overlapping_regions(split, manifest: Path, tmp_path: Path):
    out = tmp_path / "r.parquet"
    ok(split(manifest, "--region", "top:0.5", "-o", out))
    table = pq.read_table(out)
    y1 = table["y1"].to_pylist()
    y1[0] = 11  # g0v0@top now reaches one row into its @rest window
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(table.column_names.index("y1"), "y1",
                                    pa.array(y1, pa.int64())), bad)  # fmt: skip
    failed = split("--check", bad)
    assert failed.exit_code == 1 and "rows 0 (val) and 1 (train) overlap" in failed.output


def _without_metadata(table: pa.Table, path: Path) -> Path:
    """``table`` as another tool rewrites it: no tinyseg metadata, 'group' renamed 'object'."""
    names = ["object" if name == "group" else name for name in table.column_names]
    pq.write_table(table.rename_columns(names).replace_schema_metadata(None), path)
    return path


def test_check_without_a_known_group(split, manifest: Path, tmp_path: Path):
    out = tmp_path / "s.parquet"
    ok(split(manifest, "--ratios", "0.5,0.5", "-o", out))
    table = pq.read_table(out)
    bare = _without_metadata(table, tmp_path / "bare.parquet")
    assert pq.read_schema(bare).metadata is None and "object" in rows_of(bare)[0]
    before = snapshot(tmp_path)
    assert_refused(
        split("--check", bare),
        2,
        "bare.parquet: no group column known (no tinyseg split metadata, no 'group' column): "
        "pass --group COLUMN, or --no-group to check each row as its own group",
        root=tmp_path,
        before=before,
    )
    assert_refused(split("--check", "-", input=bare.read_bytes()), 2, "<stdin>: no group column",
                   root=tmp_path, before=before)  # fmt: skip
    both = split("--check", bare, "--group", "object", "--no-group")
    assert_refused(both, 2, "--no-group cannot be used with --group", root=tmp_path, before=before)
    # --group names the column: the groups are checked, a leak is found
    result = ok(split("--check", bare, "--group", "object"))
    assert "OK: 12 rows, 6 groups (column 'object'); no group crosses splits" in result.stderr
    splits = table["split"].to_pylist()
    splits[1] = "val" if splits[1] == "train" else "train"  # g0v1 leaves its group
    leaking = _without_metadata(
        table.set_column(table.column_names.index("split"), "split", pa.array(splits)),
        tmp_path / "leak.parquet",
    )
    failed = split("--check", leaking, "--group", "object")
    assert failed.exit_code == 1 and "group 'g0' crosses splits" in failed.output
    # --no-group: each row its own group, and the report says the groups were not checked
    result = ok(split("--check", leaking, "--no-group", "--json"))
    assert json.loads(result.stdout) | {"parts": None} == {
        "ok": True, "rows": 12, "groups": 12, "group_column": None, "no_group": True,
        "parts": None,
    }  # fmt: skip
    assert "OK: 12 rows, each its own group (--no-group: groups not checked);" in result.stderr
    assert "no group crosses splits" not in result.stderr


def test_check_keeps_the_group_the_table_names(split, manifest: Path, tmp_path: Path):
    renamed = _without_metadata(pq.read_table(manifest), manifest.parent / "renamed.parquet")
    out = tmp_path / "s.parquet"
    ok(split(renamed, "--folds", "3", "--group", "object", "-o", out))
    assert split_record(out)["group"] == "object"
    result = ok(split("--check", out))  # the split metadata names the group: no flag needed
    assert "OK: 12 rows, 6 groups (column 'object')" in result.stderr
    # a rewritten table with a 'group' column; a split whose record says each sample alone
    with_group = tmp_path / "g.parquet"
    table = pq.read_table(out)
    names = ["group" if name == "object" else name for name in table.column_names]
    pq.write_table(table.rename_columns(names).replace_schema_metadata(None), with_group)
    assert "6 groups (column 'group')" in ok(split("--check", with_group)).stderr
    alone = tmp_path / "alone.parquet"
    ok(split(renamed, "--ratios", "0.5,0.5", "-o", alone))
    assert split_record(alone)["group"] is None
    assert "12 groups (one per sample)" in ok(split("--check", alone)).stderr


def test_nnunet_round_trip(split, manifest: Path, tmp_path: Path):
    folds, exported = tmp_path / "folds.parquet", tmp_path / "splits_final.json"
    ok(split(manifest, "--folds", "3", "--seed", "5", "-o", folds, "--export-nnunet", exported))
    entries = json.loads(exported.read_text())
    rows = rows_of(folds)
    assert len(entries) == 3
    for n, entry in enumerate(entries):
        assert entry["val"] == sorted(r["sample_id"] for r in rows if r["fold"] == n)
        assert entry["train"] == sorted(r["sample_id"] for r in rows if r["fold"] != n)
    back = tmp_path / "back.parquet"
    ok(split(manifest, "--from-nnunet", exported, "-o", back))
    assert [r["fold"] for r in rows_of(back)] == [r["fold"] for r in rows]
    assert split_record(back)["nnunet"] == str(exported)
    one = tmp_path / "one.json"
    ratios = tmp_path / "r.parquet"
    ok(split(manifest, "--ratios", "0.5,0.25,0.25", "--export-nnunet", one, "-o", ratios))
    (entry,) = json.loads(one.read_text())
    ratio_rows = rows_of(ratios)
    assert entry["val"] == sorted(r["sample_id"] for r in ratio_rows if r["split"] == "val")
    imported = tmp_path / "imported.parquet"
    ok(split(manifest, "--from-nnunet", one, "-o", imported))
    assert [r["split"] for r in rows_of(imported)] == [r["split"] for r in ratio_rows]


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ([{"train": ["g0v0"], "val": ["nope"]}], "unknown sample 'nope'"),
        ([{"train": ["g0v0"], "val": ["g0v0"]}], "'g0v0' is in train and val"),
        (
            [{"train": ["g0v1"], "val": ["g0v0"]}, {"train": ["g0v1"], "val": ["g0v0"]}],
            "'g0v0' is val in folds 0 and 1",
        ),
        (
            [{"train": ["g0v1"], "val": ["g0v0"]}, {"train": ["g0v0"], "val": ["g1v0"]}],
            "folds 0 and 1 list different cases",
        ),
        ({"train": []}, "expected a non-empty list of folds"),
        ([{"train": [1], "val": []}], "must be a list of case ids"),
        # nnU-Net's file splits group g0 (its two views) between folds: a leak here
        (
            [{"train": ["g0v1"], "val": ["g0v0"]}, {"train": ["g0v0"], "val": ["g0v1"]}],
            "group 'g0' crosses splits",
        ),
    ],
)
def test_nnunet_errors(split, manifest: Path, tmp_path: Path, splits, message: str):
    path = write_json(tmp_path / "splits_final.json", splits)
    failed = split(manifest, "--from-nnunet", path)
    assert failed.exit_code == 1 and message in failed.output


def test_determinism(split, manifest: Path, tmp_path: Path):
    args = (manifest, "--folds", "3", "--val-fraction", "0.4", "--stratify", "-q", "-o", "-")
    first = ok(split(*args, "--seed", "7")).stdout_bytes
    assert ok(split(*args, "--seed", "7")).stdout_bytes == first
    other = ok(split(*args, "--seed", "8")).stdout_bytes
    assert [r["fold"] for r in rows_of(other)] != [r["fold"] for r in rows_of(first)]
    # the manifest's row order does not matter either
    shuffled = manifest.parent / "shuffled.parquet"
    table = pq.read_table(manifest)
    pq.write_table(table.take(pa.array(list(range(11, -1, -1)))), shuffled)
    folds = {r["sample_id"]: r["fold"] for r in rows_of(first)}
    again = ok(split(shuffled, *args[1:], "--seed", "7")).stdout_bytes
    assert {r["sample_id"]: r["fold"] for r in rows_of(again)} == folds


def test_pipe_into_classweights(manifest: Path, tmp_path: Path):
    made = run_tinyseg("split", manifest, "--ratios", "0.5,0.5", "-o", "-", "-q", "-j", "1",
                       cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    train = [r for r in rows_of(made.stdout) if r["split"] == "train"]
    weights = run_tinyseg("classweights", "-", "--scheme", "icf", "--json", "--allow-missing",
                          input=made.stdout, cwd=tmp_path)  # fmt: skip
    assert weights.returncode == 0, weights.stderr
    pixels = [c["pixels"] for c in json.loads(weights.stdout)["classes"]]
    dots = sum(r["sample_id"] == "g0v0" for r in train)
    assert pixels == [len(train) * 180 - dots, len(train) * 20, dots]


def test_palette_and_ignore_index(split, tmp_path: Path):
    colours = np.zeros((4, 4, 3), np.uint8)
    colours[0, 0] = (255, 0, 0)
    colours[1, :] = (9, 9, 9)  # ignored through the palette's 7
    write_map(tmp_path / "m" / "a.png", colours)
    write_map(tmp_path / "m" / "b.png", colours)
    for name in ("a", "b"):
        write_map(tmp_path / "i" / f"{name}.png", colours)
    palette = write_json(tmp_path / "palette.json", {"#000000": 0, "#ff0000": 1, "#090909": 7})
    args = ("--from-dir", tmp_path / "i", "--masks", tmp_path / "m", "--ratios", "0.5,0.5")
    failed = split(*args)
    assert failed.exit_code == 1 and "needs a palette" in failed.output
    result = ok(split(*args, "--palette", palette, "--ignore-index", "7", "--json", "-q"))
    parts = json.loads(result.stdout)["parts"]
    assert [p["pixels"] for p in parts] == [{"0": 11, "1": 1}] * 2


def test_no_counts_and_classes(split, manifest: Path, tmp_path: Path):
    result = ok(split(manifest, "--ratios", "0.5,0.5", "--no-counts", "--json", "-q"))
    assert all(p["pixels"] is None for p in json.loads(result.stdout)["parts"])
    out = tmp_path / "s.parquet"
    ok(split(manifest, "--ratios", "0.5,0.5", "--classes", "a,b,c", "-o", out, "-q"))
    assert json.loads(pq.read_schema(out).metadata[b"tinyseg.classes"]) == ["a", "b", "c"]
    failed = split(manifest, "--ratios", "0.5,0.5", "--classes", "a,b")
    assert failed.exit_code == 1 and "g0v0.png: pixel (y=10, x=5)" in failed.output


def _duplicate_ids(root: Path) -> Path:
    table = pq.read_table(make_dataset(root, groups=2, views=1))
    path = root / "dup.parquet"
    pq.write_table(table.set_column(0, "sample_id", pa.array(["x", "x"])), path)
    return path


def _null_group(root: Path) -> Path:
    table = pq.read_table(make_dataset(root, groups=2, views=1))
    path = root / "nullgroup.parquet"
    groups = pa.array(["g0", None], pa.string())
    pq.write_table(table.set_column(table.column_names.index("group"), "group", groups), path)
    return path


def _missing_mask(root: Path) -> Path:
    manifest = make_dataset(root, groups=2, views=1)
    (root / "masks" / "g1v0.png").unlink()
    return manifest


def _missing_image(root: Path) -> Path:
    manifest = make_dataset(root, groups=2, views=1)
    (root / "images" / "g0v0.png").unlink()
    return manifest


def _empty(root: Path) -> Path:
    table = pq.read_table(make_dataset(root, groups=2, views=1)).slice(0, 0)
    pq.write_table(table, root / "empty.parquet")
    return root / "empty.parquet"


def _no_mask(root: Path) -> Path:
    table = pq.read_table(make_dataset(root, groups=2, views=1)).drop_columns(["mask"])
    pq.write_table(table, root / "nomask.parquet")
    return root / "nomask.parquet"


@pytest.mark.parametrize(
    ("make", "args", "code", "message"),
    [
        (None, ("--ratios", "0.5,0.6"), 2, "ratios must sum to 1"),
        (None, ("--ratios", "x"), 2, "not a list of numbers"),
        (None, ("--folds", "7"), 1, "--folds 7 needs at least 7 groups, found 6"),
        (None, ("--folds", "1"), 2, "--folds"),
        (None, ("--group", "apple"), 1, "no column 'apple' for --group"),
        (_null_group, ("--ratios", "0.5,0.5"), 1, "row 1: empty group"),
        (_duplicate_ids, ("--ratios", "0.5,0.5"), 1, "sample 'x' appears twice"),
        (_missing_mask, ("--ratios", "0.5,0.5"), 1, "g1v0.png: no such file (mask of row 1"),
        (_missing_image, ("--ratios", "0.5,0.5"), 1, "g0v0.png: no such file (image of row 0"),
        (_empty, ("--ratios", "0.5,0.5"), 1, "manifest has no rows"),
        (_no_mask, ("--ratios", "0.5,0.5"), 1, "manifest needs a column 'mask'"),
        (_duplicate_ids, ("--folds", "2", "--group", "sample_id"), 1, "appears twice"),
        (None, ("--ratios", "0.4,0.3,0.3", "--test-ids", "g0,g1,g2,g3,g4"), 2, "TRAIN,VAL"),
        (None, ("--ratios", "0.5,0.5", "--test-ids", "g0,g1,g2,g3,g4"), 1, "1 group(s) cannot"),
        (None, ("--ratios", "0.5,0.5", "--folds", "2"), 2, "choose one of --ratios and --folds"),
        (None, ("--val-fraction", "0.2", "--ratios", "0.5,0.5"), 2, "needs --folds"),
        (None, ("--folds", "3", "--val-fraction", "1.5"), 2, "not between 0 and 1"),
        (None, ("--folds", "3", "--val-fraction", "0.9"), 1, "leaves fold 0 no training"),
        (None, ("--folds", "3", "--fold", "3"), 2, "not one of the folds 0..2"),
        (None, ("--ratios", "0.5,0.5", "--fold", "0"), 2, "needs --folds"),
        (None, ("--fold", "0"), 1, "no split or fold column"),
        (None, ("--region", "middle:0.3"), 2, "SIDE one of top"),
        (None, ("--region", "top:0.01"), 1, "--region top:0.01 of 20 rows leaves an empty region"),
        (None, ("--region", "top:0.5", "--stratify"), 2, "needs --ratios or --folds"),
        (None, ("--ratios", "0.5,0.5", "--stratify", "--no-counts"), 2, "drop --no-counts"),
        (None, ("--ratios", "0.5,0.5", "--json", "-o", "-"), 2, "only one output"),
        (None, ("--ratios", "0.5,0.5", "--check"), 2, "cannot be used with --check"),
        (None, ("--ratios", "0.5,0.5", "--no-group"), 2, "--no-group: goes with --check"),
        (None, ("--from-dir", "x"), 2, "needs --masks"),
        (None, ("--from-nnunet", "none.json"), 1, "none.json: no such file"),
    ],
)
def test_errors(split, tmp_path: Path, make, args, code: int, message: str):
    root = tmp_path / "data"
    manifest = make(root) if make else make_dataset(root)
    result = split(manifest, *args)
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output


def test_usage_errors_without_manifest(split, manifest: Path, tmp_path: Path):
    assert split("--ratios", "0.5,0.5").exit_code == 2
    assert split("--check").exit_code == 2
    existing = tmp_path / "exists.parquet"
    existing.write_bytes(b"x")
    failed = split(manifest, "--ratios", "0.5,0.5", "-o", existing)
    assert failed.exit_code == 1 and "already exists" in failed.output
    assert existing.read_bytes() == b"x"


def test_replacing_a_split_warns(split, manifest: Path, tmp_path: Path):
    first = tmp_path / "a.parquet"
    ok(split(manifest, "--folds", "2", "-o", first))
    result = ok(split(first, "--ratios", "0.5,0.5", "-o", "-"))
    assert "replacing the manifest's column(s) 'split', 'fold'" in result.stderr
    assert "fold" not in pq.read_table(io.BytesIO(result.stdout_bytes)).column_names

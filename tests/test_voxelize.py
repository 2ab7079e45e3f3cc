"""``tinyseg voxelize``: hand-computed voxels, tiles with overlap, label rules and maps, the
point map, chunk-size invariance, shards, splits, every error path, and the real LiDAR HD
sample (SPEC §3, §4.4, §9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import laspy
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from badinput import assert_refused, snapshot
from conftest import shared_dataset

from tinyseg_cli.io.tables import table_metadata

# Seven points, origin (0, 0, 0); class 2 x4, class 6 x3 (6 is the rarer).
HAND_XYZ = [
    (0.0, 0.0, 0.0),  # tile 0, voxel (0, 0, 0)
    (0.2, 0.4, 0.6),  # tile 0, voxel (0, 0, 0)
    (0.4, 0.2, 0.3),  # tile 0, voxel (0, 0, 0): 2, 2, 6 -> majority 2, rare-first 6
    (1.5, 0.5, 0.5),  # tile 0, voxel (1, 0, 0)
    (1.6, 0.6, 0.6),  # tile 0, voxel (1, 0, 0): 2, 6 -> a tie: the rarer, 6
    (12.5, 3.5, 2.5),  # tile 1, voxel (2, 3, 2)
    (19.0, 9.0, 3.0),  # tile 1, voxel (9, 9, 3)
]
HAND_CLASS = [2, 2, 6, 2, 6, 6, 2]
HAND_INTENSITY = [10, 20, 30, 40, 50, 60, 70]


def write_las(
    path: Path,
    xyz: np.ndarray | list,
    classification: np.ndarray | list,
    intensity: np.ndarray | list | None = None,
    rgb: bool = True,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """A LAS (or, by suffix, LAZ) file; point format 3 (with RGB) or 1 (without)."""
    xyz = np.asarray(xyz, np.float64)
    header = laspy.LasHeader(point_format=3 if rgb else 1, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor(xyz.min(axis=0))
    for name, values in (extra or {}).items():
        header.add_extra_dim(laspy.ExtraBytesParams(name=name, type=values.dtype))
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.classification = np.asarray(classification, np.uint8)
    if intensity is not None:
        las.intensity = np.asarray(intensity, np.uint16)
    if rgb:
        count = len(xyz)
        las.red = np.arange(count, dtype=np.uint16) * 100
        las.green = np.full(count, 7, np.uint16)
        las.blue = np.arange(count, dtype=np.uint16)[::-1]
    for name, values in (extra or {}).items():
        las[name] = values
    las.write(path)
    return path


def random_las(path: Path, n: int = 3000, seed: int = 0, size: float = 30.0) -> Path:
    rng = np.random.default_rng(seed)
    xyz = rng.random((n, 3)) * (size, size * 0.7, 5.0) + (1000.0, 2000.0, 50.0)
    classes = rng.choice([1, 2, 5, 6], n, p=[0.1, 0.6, 0.25, 0.05])
    return write_las(path, xyz, classes, rng.integers(0, 500, n))


def tables(out: Path) -> tuple[pa.Table, pa.Table]:
    return pq.read_table(out / "voxels.parquet"), pq.read_table(out / "points.parquet")


def rows(table: pa.Table, *columns: str) -> list[tuple]:
    return list(zip(*(table[c].to_pylist() for c in columns), strict=True))


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    return write_las(tmp_path / "hand.las", HAND_XYZ, HAND_CLASS, HAND_INTENSITY)


def test_hand_computed_voxels(cli, hand: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = cli("voxelize", hand, "--voxel", "1", "--tile", "10", "-o", out)
    assert result.exit_code == 0, result.output
    voxels, points = tables(out)
    assert voxels.column_names == [
        "scene", "tile", "vx", "vy", "vz", "x", "y", "z", "red", "green", "blue", "intensity",
        "label", "n_points",
    ]  # fmt: skip
    assert voxels.schema.field("vx").type == pa.int32()
    assert voxels.schema.field("label").type == pa.int16()
    assert voxels.schema.field("x").type == pa.float32()
    # no --label-map: the ASPRS codes present, 2 (ground) and 6 (building), are classes 0, 1
    assert table_metadata(voxels)["classes"] == ["ground", "building"]
    assert rows(voxels, "scene", "tile", "vx", "vy", "vz", "label", "n_points") == [
        ("hand", 0, 0, 0, 0, 0, 3),
        ("hand", 0, 1, 0, 0, 1, 2),  # 1:1 tie -> the rarer class
        ("hand", 1, 2, 3, 2, 1, 1),
        ("hand", 1, 9, 9, 3, 0, 1),
    ]
    np.testing.assert_allclose(voxels["x"].to_numpy(), [0.2, 1.55, 2.5, 9.0], atol=1e-6)
    np.testing.assert_allclose(voxels["y"].to_numpy(), [0.2, 0.55, 3.5, 9.0], atol=1e-6)
    np.testing.assert_allclose(voxels["z"].to_numpy(), [0.3, 0.55, 2.5, 3.0], atol=1e-6)
    assert voxels["intensity"].to_pylist() == [20, 45, 60, 70]
    assert voxels["red"].to_pylist() == [100, 350, 500, 600]  # red = 100 * point index
    assert rows(points, "point_index", "tile", "voxel_row") == [
        (0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 1), (4, 0, 1), (5, 1, 2), (6, 1, 3),
    ]  # fmt: skip


def test_rare_first_keeps_the_rare_class(cli, hand: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["voxelize", hand, "--voxel", "1", "--tile", "10", "--label-rule", "rare-first"]
    result = cli(*args, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    voxels, _ = tables(out)
    assert voxels["label"].to_pylist() == [1, 1, 1, 0]  # building (code 6) is class 1
    by_label = {row["code"]: row for row in json.loads(result.stdout)["classes"]}
    # code 6: 3 points, all in voxels labelled 6; code 2: points 0, 1, 3 are not
    assert (by_label[6]["points"], by_label[6]["voxels"], by_label[6]["share_kept"]) == (3, 3, 1)
    assert (by_label[2]["points"], by_label[2]["voxels"], by_label[2]["kept"]) == (4, 1, 1)
    assert table_metadata(voxels)["voxelize"]["rarest_first"] == [1, 0]


def test_overlapping_tiles_give_one_point_row_per_tile(cli, hand: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["voxelize", hand, "--voxel", "1", "--tile", "10", "--stride", "5"]
    assert cli(*args, "-o", out).exit_code == 0
    voxels, points = tables(out)
    # tiles start at x = 0, 5, 10 (x extent 19); y extent 9 < 10: one row of tiles
    memberships = sorted(rows(points, "point_index", "tile"))
    assert memberships == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (5, 2), (6, 2)]
    point5 = [row for row in rows(points, "point_index", "voxel_row") if row[0] == 5]
    vx = voxels["vx"].to_pylist()
    assert sorted(vx[r] for _, r in point5) == [2, 7]  # 12.5 - 10 and 12.5 - 5
    meta = table_metadata(points)
    assert meta["voxelize"]["stride"] == 5 and meta["scenes"][0]["tiles_x"] == 3


def test_min_points_drops_small_tiles(cli, hand: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["voxelize", hand, "--voxel", "1", "--tile", "10", "--min-points", "3", "--json"]
    result = cli(*args, "-o", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["tiles"], summary["dropped_tiles"]) == (1, 1)
    voxels, points = tables(out)
    assert set(voxels["tile"].to_pylist()) == {0}
    assert points["point_index"].to_pylist() == [0, 1, 2, 3, 4]
    by_label = {row["code"]: row for row in summary["classes"]}
    # point 2 is outvoted (majority), point 4 wins a tie, point 5's tile was dropped
    assert by_label[6]["share_kept"] == pytest.approx(1 / 3)


def test_label_map_unlisted_codes_are_ignored(cli, hand: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["voxelize", hand, "--voxel", "1", "--tile", "10", "--label-map", "2:ground"]
    result = cli(*args, "-o", out)
    assert result.exit_code == 0, result.output
    voxels, _ = tables(out)
    # voxel (1,0,0) holds one ground point and one ignored: ignored points do not vote
    assert voxels["label"].to_pylist() == [0, 0, -100, 0]
    meta = table_metadata(voxels)
    assert meta["classes"] == ["ground"]
    assert meta["voxelize"]["label_map"] == {"2": 0}


def test_label_map_json_and_absent_code_warns(cli, hand: Path, tmp_path: Path):
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"2": 0, "6": 1, "9": 1}))
    out = tmp_path / "out"
    args = ["voxelize", hand, "--voxel", "1", "--tile", "10", "--classes", "ground,building"]
    result = cli(*args, "--label-map", mapping, "-o", out)
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr and "code 9" in result.stderr
    voxels, _ = tables(out)
    assert voxels["label"].to_pylist() == [0, 1, 1, 0]
    assert table_metadata(voxels)["classes"] == ["ground", "building"]


def test_laz_round_trip_equals_las(cli, tmp_path: Path):
    las = random_las(tmp_path / "scan.las")
    laz = tmp_path / "laz" / "scan.laz"
    laz.parent.mkdir()
    laspy.read(las).write(laz)
    for source, out in ((las, "a"), (laz, "b")):
        assert cli("voxelize", source, "--voxel", "0.5", "-o", tmp_path / out).exit_code == 0
    for a, b in zip(tables(tmp_path / "a"), tables(tmp_path / "b"), strict=True):
        assert a.replace_schema_metadata().equals(b.replace_schema_metadata())


def test_features_choice_and_missing_rgb(cli, tmp_path: Path):
    grey = write_las(tmp_path / "grey.las", HAND_XYZ, HAND_CLASS, HAND_INTENSITY, rgb=False)
    assert cli("voxelize", grey, "-o", tmp_path / "d").exit_code == 0
    voxels, _ = tables(tmp_path / "d")
    assert "red" not in voxels.column_names and "intensity" in voxels.column_names
    assert cli("voxelize", grey, "--features", "intensity,z", "-o", tmp_path / "f").exit_code == 0
    voxels, _ = tables(tmp_path / "f")
    assert voxels.column_names[5:7] == ["z", "intensity"]
    refused = cli("voxelize", grey, "--features", "rgb", "-o", tmp_path / "g")
    assert refused.exit_code == 1 and "'red'" in refused.stderr
    assert not (tmp_path / "g").exists()


def test_point_map_maps_every_point_to_its_voxel(cli, tmp_path: Path):
    source = random_las(tmp_path / "scan.las", n=5000)
    out = tmp_path / "out"
    assert cli("voxelize", source, "--voxel", "0.7", "--tile", "12", "-o", out).exit_code == 0
    voxels, points = tables(out)
    assert sorted(points["point_index"].to_pylist()) == list(range(5000))
    las = laspy.read(source)
    xyz = np.stack([las.x, las.y, las.z], axis=1)
    meta = table_metadata(voxels)["scenes"][0]
    assert meta["source"] == os.path.relpath(source.resolve(), out.resolve())
    origin, nx = np.asarray(meta["origin"]), meta["tiles_x"]
    index = points["point_index"].to_numpy()
    row = points["voxel_row"].to_numpy()
    tile = points["tile"].to_numpy()
    tile_origin = origin + np.stack([(tile % nx) * 12.0, (tile // nx) * 12.0, 0 * tile], axis=1)
    expected = np.floor((xyz[index] - tile_origin) / 0.7).astype(np.int32)
    found = np.stack([voxels[c].to_numpy()[row] for c in ("vx", "vy", "vz")], axis=1)
    assert np.array_equal(found, expected)
    assert np.array_equal(voxels["tile"].to_numpy()[row], tile)
    counts = np.bincount(row, minlength=voxels.num_rows)
    assert np.array_equal(counts, voxels["n_points"].to_numpy())


def test_chunk_size_does_not_change_the_tables(cli, tmp_path: Path):
    source = random_las(tmp_path / "scan.las", n=4000, seed=3)
    common = ["voxelize", source, "--voxel", "0.4", "--tile", "10", "--stride", "4"]
    assert cli(*common, "--chunk-size", "7", "-o", tmp_path / "small").exit_code == 0
    assert cli(*common, "-o", tmp_path / "large").exit_code == 0
    for a, b in zip(tables(tmp_path / "small"), tables(tmp_path / "large"), strict=True):
        assert a.replace_schema_metadata().equals(b.replace_schema_metadata())


def test_same_command_gives_the_same_bytes(cli, tmp_path: Path):
    source = random_las(tmp_path / "scan.las", n=2000, seed=4)
    out = tmp_path / "out"
    assert cli("voxelize", source, "-o", out, "--force").exit_code == 0  # same command line
    first = (out / "voxels.parquet").read_bytes()
    assert cli("voxelize", source, "-o", out, "--force").exit_code == 0
    assert (out / "voxels.parquet").read_bytes() == first


def test_shard_over_files_and_over_tiles(cli, tmp_path: Path):
    a, b = random_las(tmp_path / "a.las", seed=1), random_las(tmp_path / "b.las", seed=2)
    args = ["--voxel", "0.5", "--tile", "8"]
    for k in (0, 1):
        result = cli("voxelize", a, b, *args, "--shard", f"{k}/2", "-o", tmp_path / f"f{k}")
        assert result.exit_code == 0, result.output
        assert tables(tmp_path / f"f{k}")[0]["scene"].unique().to_pylist() == ["ab"[k]]
    assert cli("voxelize", a, *args, "-o", tmp_path / "all").exit_code == 0
    whole = tables(tmp_path / "all")[0]
    parts = []
    for k in (0, 1, 2):
        result = cli("voxelize", a, *args, "--shard", f"{k}/3", "-o", tmp_path / f"t{k}")
        assert result.exit_code == 0, result.output
        parts.append(tables(tmp_path / f"t{k}")[0])
        assert table_metadata(parts[-1])["voxelize"]["shard_by"] == "tiles"
    merged = pa.concat_tables(parts).sort_by([("tile", "ascending")])
    assert merged.replace_schema_metadata().equals(whole.replace_schema_metadata())


def test_split_column_and_splits_table(cli, tmp_path: Path):
    a, b = random_las(tmp_path / "a.las", seed=1), random_las(tmp_path / "b.las", seed=2)
    assert cli("voxelize", a, "--split", "val", "-o", tmp_path / "v").exit_code == 0
    assert tables(tmp_path / "v")[0]["split"].unique().to_pylist() == ["val"]
    splits = tmp_path / "splits.csv"
    splits.write_text("scene,split\na,train\nb,test\n")
    assert cli("voxelize", a, b, "--splits", splits, "-o", tmp_path / "s").exit_code == 0
    voxels = tables(tmp_path / "s")[0]
    assert set(rows(voxels, "scene", "split")) == {("a", "train"), ("b", "test")}
    plain = cli("voxelize", a, "-o", tmp_path / "n")
    assert "split" not in tables(tmp_path / "n")[0].column_names
    assert "validate on none" in plain.stderr


def test_val_every_holds_out_whole_tiles(cli, tmp_path: Path):
    # one point in each of 3 × 2 tiles of 10 m: ids (row-major in y) 0 1 2 / 3 4 5
    xyz = [[x + 5.0, y + 5.0, 1.0] for y in (0, 10) for x in (0, 10, 20)]
    scan = write_las(tmp_path / "scan.las", xyz, [2] * 6)
    out = tmp_path / "v"
    result = cli("voxelize", scan, "--tile", "10", "--voxel", "1", "--val-every", "2", "-o", out)
    assert result.exit_code == 0, result.output
    voxels = tables(out)[0]
    assert sorted(rows(voxels, "tile", "split")) == [
        (0, "val"), (1, "train"), (2, "val"), (3, "train"), (4, "val"), (5, "train"),
    ]  # fmt: skip
    assert "validate on none" not in result.stderr
    before = snapshot(tmp_path)
    overlap = ["--tile", "10", "--stride", "5", "--val-every", "2", "-o", tmp_path / "w"]
    assert_refused(cli("voxelize", scan, *overlap), 2, "overlap", root=tmp_path, before=before)
    both = ["--val-every", "2", "--split", "train", "-o", tmp_path / "w"]
    assert_refused(cli("voxelize", scan, *both), 2, "--val-every", root=tmp_path, before=before)


def _stale_header(path: Path) -> Path:
    """Coordinates overflow to +Inf (scale 1e305) under finite header bounds."""
    header = laspy.LasHeader(point_format=1, version="1.2")
    header.scales = np.array([1e305, 1.0, 1.0])
    header.offsets = np.zeros(3)
    las = laspy.LasData(header)
    las.X = np.array([0, 0, 10_000], np.int32)
    las.Y = las.Z = np.zeros(3, np.int32)
    las.write(path)
    data = bytearray(path.read_bytes())
    data[179:187] = np.float64(1.0).tobytes()  # max x
    path.write_bytes(bytes(data))
    return path


def _errors() -> list[tuple[str, object, list[str]]]:
    return [
        ("not a readable LAS", lambda p: _text(p / "notes.las"), []),
        ("no such file", lambda p: p / "absent.las", []),
        ("no dimension 'truth'", _hand, ["--label-dim", "truth"]),
        ("point 2: coordinates are not finite", lambda p: _stale_header(p / "inf.las"), []),
        ("no tile has at least 100 points", _hand, ["--min-points", "100"]),
        ("beyond the class map", _hand, ["--classes", "a,b"]),
        ("no split for scene 'hand'", _hand, ["--splits", "SPLITS"]),
    ]


def _text(path: Path) -> Path:
    path.write_text("not a point cloud\n")
    return path


def _hand(path: Path) -> Path:
    return write_las(path / "hand.las", HAND_XYZ, HAND_CLASS, HAND_INTENSITY)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # writing inf.las
@pytest.mark.parametrize(("message", "make", "extra"), _errors(), ids=[e[0] for e in _errors()])
def test_errors_are_one_line_exit_1_and_leave_nothing(cli, tmp_path, message, make, extra):
    source = make(tmp_path)
    splits = tmp_path / "splits.csv"
    splits.write_text("scene,split\nother,train\n")
    extra = [str(splits) if e == "SPLITS" else e for e in extra]
    result = cli("voxelize", source, *extra, "-o", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(cli, hand: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert cli("voxelize", hand, "-o", out).exit_code == 0
    again = cli("voxelize", hand, "-o", out)
    assert again.exit_code == 1 and "--force" in again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["points.parquet", "voxels.parquet"]


def test_usage_errors_exit_2(cli, hand: Path, tmp_path: Path):
    out = ["-o", str(tmp_path / "out")]
    assert cli("voxelize", hand, "--tile", "10", "--stride", "20", *out).exit_code == 2
    assert cli("voxelize", hand, "--voxel", "0", *out).exit_code == 2
    assert cli("voxelize", hand, "--split", "val", "--splits", "x.csv", *out).exit_code == 2
    assert cli("voxelize", hand, "--shard", "2/2", *out).exit_code == 2


def test_label_dim_extra_dimension(cli, tmp_path: Path):
    truth = np.array([3, 3, 3, 1, 1, 1, 1], np.uint16)
    source = write_las(
        tmp_path / "extra.las", HAND_XYZ, HAND_CLASS, HAND_INTENSITY, extra={"truth": truth}
    )
    out = tmp_path / "out"
    args = ["voxelize", source, "--voxel", "1", "--tile", "10", "--label-dim", "truth"]
    assert cli(*args, "-o", out).exit_code == 0
    assert tables(out)[0]["label"].to_pylist() == [3, 1, 1, 1]


def test_interrupted_run_leaves_no_output(monkeypatch, hand: Path, tmp_path: Path):
    from tinyseg_cli.commands.voxelize import passes
    from tinyseg_cli.commands.voxelize import run as engine

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(passes, "aggregate_tile", interrupt)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        engine.voxelize([str(hand)], out, engine.VoxelizeOptions(voxel=1, tile=10), {})
    assert not out.exists()


def test_help_examples_run(tmp_path: Path):
    """The examples of ``voxelize --help``, through the shared runner, on generated files."""
    from test_help_examples import test_help_examples_run as run_examples

    random_las(tmp_path / "scan.laz", n=2000, seed=5, size=200)
    random_las(tmp_path / "a.las", n=2000, seed=6, size=200)
    random_las(tmp_path / "b.las", n=2000, seed=7, size=200)
    run_examples(tmp_path, ("voxelize",))


def test_lidar_hd_crop(cli, tmp_path: Path):
    """A 60 m crop of the IGN LiDAR HD sample around its buildings (class 6) and artefacts."""
    folder = shared_dataset("pdal_lidarhd_sample")
    las = laspy.read(next(folder.glob("*.laz")))
    x, y = np.asarray(las.x), np.asarray(las.y)
    keep = (np.abs(x - 484_818) < 30) & (np.abs(y - 6_632_765) < 30)
    crop = tmp_path / "crop.laz"
    subset = laspy.LasData(las.header, las.points[keep])
    subset.write(crop)
    codes = np.asarray(las.classification)[keep]
    out = tmp_path / "out"
    args = ["voxelize", crop, "--voxel", "0.5", "--tile", "30", "--label-rule", "rare-first"]
    result = cli(*args, "--json", "-o", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    voxels, points = tables(out)
    assert sorted(points["point_index"].to_pylist()) == list(range(int(keep.sum())))
    assert {"red", "green", "blue", "intensity"} <= set(voxels.column_names)
    found = {row["code"]: row["points"] for row in summary["classes"]}
    values, counts = np.unique(codes, return_counts=True)
    assert found == dict(zip(values.tolist(), counts.tolist(), strict=True))
    rarest = min(summary["classes"], key=lambda row: (row["points"], row["code"]))
    assert rarest["share_kept"] == 1.0  # rare-first: the rarest class is never voted away


def test_voxel_keys_pack_in_index_order_and_round_trip():
    from tinyseg_cli.commands.voxelize.tiles import TileGrid

    # 10 m tiles of 1 m voxels over 4 m of height: x and y span -2..11 (14), z -2..5 (8)
    grid = TileGrid.for_bounds((0.0, 0.0, 0.0), (25.0, 5.0, 4.0), 10.0, 10.0, 1.0)
    keys = grid.keys
    assert keys.low == (-2, -2, -2) and keys.span == (14, 14, 8)
    voxel = np.array([[-1, -1, -1], [0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [10, 10, 5]])
    packed = keys.pack(voxel[:, 0], voxel[:, 1], voxel[:, 2])
    # ((vx + 2) * 14 + (vy + 2)) * 8 + (vz + 2), by hand
    assert packed.tolist() == [
        (1 * 14 + 1) * 8 + 1, (2 * 14 + 2) * 8 + 2, (2 * 14 + 2) * 8 + 3, (2 * 14 + 3) * 8 + 2,
        (3 * 14 + 2) * 8 + 2, (12 * 14 + 12) * 8 + 7,
    ]  # fmt: skip
    assert keys.unpack(packed).tolist() == voxel.tolist()
    with pytest.raises(Exception, match="outside its tile's range"):
        keys.pack(np.array([12]), np.array([0]), np.array([0]))


def test_voxel_too_fine_for_the_tile_is_refused_before_work(cli, hand: Path, tmp_path: Path):
    out = tmp_path / "out"
    # 1000 m tiles of 1 µm voxels: 1e9 voxels a side, far beyond an int64 key
    result = cli("voxelize", hand, "--voxel", "0.000001", "--tile", "1000", "-o", out)
    assert result.exit_code == 1
    assert "too fine for --tile 1000" in result.stderr and "raise --voxel" in result.stderr
    assert not out.exists()

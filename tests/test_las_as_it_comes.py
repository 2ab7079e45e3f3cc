"""LAS as it comes (issue 20): without --label-map the ASPRS codes present become classes
(compacted, named by the standard; 0 and 1 ignored) and infer --las writes the input's own
codes back; a --label-map that keeps no point is refused; an unclassified scan voxelizes but
does not train; a non-metre CRS unit is named; --region holds out one side of a survey."""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pyarrow.parquet as pq

from tests.conftest import shared_dataset
from tests.test_voxelize import HAND_CLASS, HAND_XYZ, write_las
from tinyseg_cli.io.las_meta import parse_unit, wkt_unit
from tinyseg_cli.io.tables import table_metadata

# The Nebraska sample's SOURCE.md: points per ASPRS code.
NEBRASKA = {2: 9_808, 3: 158, 4: 724, 5: 10_956, 6: 3_737, 7: 25}


def nebraska() -> Path:
    return next(shared_dataset("laspy_nebraska_sample").glob("*.las"))


def test_asprs_classes_and_the_crs_unit_without_a_label_map(cli, tmp_path: Path):
    out = tmp_path / "vox"
    result = cli("voxelize", nebraska(), "--voxel", "1", "--tile", "20", "--json", "-o", out)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["classes"]
    assert {row["code"]: row["points"] for row in rows} == NEBRASKA
    assert [(row["code"], row["label"], row["name"]) for row in rows] == [
        (2, 0, "ground"), (3, 1, "low_vegetation"), (4, 2, "medium_vegetation"),
        (5, 3, "high_vegetation"), (6, 4, "building"), (7, 5, "low_point"),
    ]  # fmt: skip
    voxels = pq.read_table(out / "voxels.parquet")
    metadata = table_metadata(voxels)
    assert metadata["classes"][0] == "ground" and len(metadata["classes"]) == 6
    assert set(voxels["label"].to_pylist()) <= set(range(6))
    assert metadata["voxelize"]["labels_from"] == "asprs"
    assert metadata["scenes"][0]["unit"] == {"name": "Foot_US", "metres": 0.30480060960121924}
    # US survey feet: the sizes are the file's, said in metres too
    assert "coordinates are in Foot_US (0.3048006 m)" in result.stderr
    assert "--voxel 1 = 0.3048 m, --tile 20 = 6.096 m" in result.stderr


def test_a_label_map_that_keeps_no_point_is_refused(cli, tmp_path: Path):
    hand = write_las(tmp_path / "hand.las", HAND_XYZ, HAND_CLASS)
    out = tmp_path / "vox"
    result = cli(
        "voxelize", hand, "--voxel", "1", "--tile", "10", "--label-map", "9:water", "-o", out
    )
    assert result.exit_code == 1
    assert (
        "--label-map keeps no point: it maps codes 9, the input holds 2 (ground), 6 (building)"
        in (result.stderr)
    )
    assert not out.exists()
    bad = cli("voxelize", hand, "--label-map", "2=ground", "-o", out)
    assert bad.exit_code == 2 and "is not CODE:CLASS" in bad.stderr


def test_an_unclassified_scan_voxelizes_for_inference_but_does_not_train(cli, tmp_path: Path):
    codes = np.array([0, 1, 1, 0, 1, 1, 1])  # never classified / unclassified
    scan = write_las(tmp_path / "raw.las", HAND_XYZ, codes)
    out = tmp_path / "vox"
    result = cli("voxelize", scan, "--voxel", "1", "--tile", "10", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    voxels = pq.read_table(out / "voxels.parquet")
    assert set(voxels["label"].to_pylist()) == {-100}
    assert table_metadata(voxels)["voxelize"]["unclassified"] is True
    trained = cli(
        "train", out, "--channels", "4,8", "-b", "1", "--iterations", "1", "-o", tmp_path / "run"
    )
    assert trained.exit_code == 1
    assert "voxelized from an unclassified scan (classification codes 0 and 1 only" in (
        trained.stderr
    )


def test_units_stated_for_a_file_without_a_crs_and_checked_against_one(cli, tmp_path: Path):
    hand = write_las(tmp_path / "hand.las", HAND_XYZ, HAND_CLASS)
    stated = cli(
        "voxelize", hand, "--voxel", "2", "--tile", "10", "--units", "ft", "-o", tmp_path / "a"
    )
    assert stated.exit_code == 0, stated.output
    assert "coordinates are in foot (0.3048 m)" in stated.stderr
    assert "--voxel 2 = 0.6096 m, --tile 10 = 3.048 m" in stated.stderr
    clash = cli("voxelize", nebraska(), "--units", "m", "-o", tmp_path / "b")
    assert clash.exit_code == 1
    assert (
        "its CRS says the unit is Foot_US (0.3048006 m), --units says metre (1 m)" in clash.stderr
    )


def test_units_from_wkt_one_and_two_and_the_units_option():
    wkt1 = 'PROJCS["x",GEOGCS["g",UNIT["Degree",0.0174]],UNIT["Foot_US",0.3048006096]]'
    assert wkt_unit(wkt1) == parse_unit("0.3048006096").__class__("Foot_US", 0.3048006096)
    wkt2 = (
        'PROJCRS["L93",BASEGEOGCRS["RGF93",DATUM["d",ELLIPSOID["e",6378137,298.25,'
        'LENGTHUNIT["metre",1]]]],CONVERSION["c",PARAMETER["p",700000,LENGTHUNIT["metre",1]]],'
        'CS[Cartesian,2],AXIS["E",east],LENGTHUNIT["metre",1]]'
    )
    assert wkt_unit(wkt2).name == "metre" and wkt_unit(wkt2).metres == 1.0
    assert parse_unit("us-ft").metres == 1200 / 3937
    assert parse_unit("0.5").metres == 0.5


def test_region_holds_out_one_side_of_a_survey(cli, tmp_path: Path):
    """40 × 10 m of points in 10 m tiles: 5 columns of one row (the last starts at 40);
    east:0.4 holds out round(0.4 × 5) = 2 columns, tiles 3 and 4."""
    xs = np.arange(0.5, 41, 1.0)
    xyz = np.stack([xs, np.full_like(xs, 5.0), np.zeros_like(xs)], axis=1)
    scan = write_las(tmp_path / "strip.las", xyz, np.full(len(xs), 2))
    out = tmp_path / "vox"
    args = ["voxelize", scan, "--voxel", "1", "--tile", "10", "--region", "east:0.4", "-q"]
    result = cli(*args, "-o", out)
    assert result.exit_code == 0, result.output
    voxels = pq.read_table(out / "voxels.parquet")
    by_tile = dict(zip(voxels["tile"].to_pylist(), voxels["split"].to_pylist(), strict=True))
    assert by_tile == {0: "train", 1: "train", 2: "train", 3: "val", 4: "val"}
    overlap = cli(*args, "--stride", "5", "-o", tmp_path / "o")
    assert overlap.exit_code == 2 and "tiles that do not overlap" in overlap.stderr


def test_infer_las_writes_the_input_codes_back(cli, tmp_path: Path):
    """Trained on the auto classes 0..5, predictions go back as ASPRS codes 2..7."""
    vox = tmp_path / "vox"
    made = cli(
        "voxelize", nebraska(), "--voxel", "2", "--tile", "20", "--region", "east:0.4",
        "-q", "-o", vox,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    run = tmp_path / "run"
    trained = cli(
        "train", vox, "--channels", "4,8", "--no-aspp", "-b", "2", "--iterations", "2",
        "-q", "-o", run,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    pred = tmp_path / "pred"
    inferred = cli("infer", "--checkpoint", run / "best.pt", vox, "--las", "-q", "-o", pred)
    assert inferred.exit_code == 0, inferred.output
    copy = laspy.read(pred / nebraska().name)
    assert set(np.unique(np.asarray(copy["prediction"])).tolist()) <= set(NEBRASKA)
    assert np.array_equal(
        np.asarray(copy.classification), np.asarray(laspy.read(nebraska()).classification)
    )

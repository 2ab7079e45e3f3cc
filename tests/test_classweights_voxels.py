"""``tinyseg classweights`` on voxel tables: voxels or points per class over the training
scenes, by hand (SPEC §4.3, §6.1, §6.2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_voxelize import write_las

from tinyseg_cli.io.tables import table_metadata
from tinyseg_cli.metrics.weights import class_weights

CLASSES = ["ground", "car", "pole"]
# Training voxels: s1 labels (0, 0, 1, 2, -100) with n_points (10, 5, 2, 1, 7); s2 (0, 0, 1)
# with (20, 3, 4); s3 is validation. Voxels per class (4, 2, 1); points (38, 6, 1);
# scenes holding each class (2, 2, 1). max-ratio: voxels (1, 2, 4), points (1, 38/6, 38).
VOXELS, POINTS, SCENES = [4, 2, 1], [38, 6, 1], [2, 2, 1]


def voxel_table(path: Path, labels: list[int] | None = None, split: bool = True) -> Path:
    scenes = ["s1"] * 5 + ["s2"] * 3 + ["s3"] * 2
    labels = labels or [0, 0, 1, 2, -100, 0, 0, 1, 2, 2]
    n = len(scenes)
    columns = {
        "scene": pa.array(scenes, pa.string()),
        "tile": pa.array([0] * n, pa.int32()),
        **{axis: pa.array(np.arange(n), pa.int32()) for axis in ("vx", "vy", "vz")},
        "x": pa.array(np.zeros(n), pa.float32()),
        "label": pa.array(labels, pa.int16()),
        "n_points": pa.array([10, 5, 2, 1, 7, 20, 3, 4, 100, 100], pa.int32()),
    }
    if split:
        columns["split"] = pa.array(["train"] * 8 + ["val"] * 2, pa.string())
    metadata = {"tinyseg.classes": json.dumps(CLASSES)}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns).replace_schema_metadata(metadata), path)
    return path


def weights_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("count", "expected", "max_ratio"),
    [(None, VOXELS, [1, 2, 4]), ("voxels", VOXELS, [1, 2, 4]), ("points", POINTS, [1, 38 / 6, 38])],
)
def test_voxels_and_points_by_hand(cli, tmp_path: Path, count, expected, max_ratio):
    table = voxel_table(tmp_path / "voxels.parquet")
    extra = [] if count is None else ["--count", count]
    report = weights_of(cli("classweights", table, "--scheme", "max-ratio", "--json", *extra))
    assert report["count"] == (count or "voxels")
    assert [c["name"] for c in report["classes"]] == CLASSES
    assert [c["pixels"] for c in report["classes"]] == expected
    assert [c["samples"] for c in report["classes"]] == SCENES
    assert [c["weight"] for c in report["classes"]] == pytest.approx(max_ratio)


@pytest.mark.parametrize("scheme", ["icf", "iscf", "uniform"])
def test_every_scheme_unchanged(cli, tmp_path: Path, scheme: str):
    table = voxel_table(tmp_path / "voxels.parquet")
    report = weights_of(cli("classweights", table, "--scheme", scheme, "--json"))
    assert [c["weight"] for c in report["classes"]] == pytest.approx(
        class_weights(VOXELS, scheme).tolist()
    )
    if scheme == "icf":  # f = (1/4, 1/2, 1), Σf = 7/4, α = 3f/Σf
        assert [c["weight"] for c in report["classes"]] == pytest.approx([3 / 7, 6 / 7, 12 / 7])
    binary = weights_of(
        cli("classweights", table, "--scheme", scheme, "--binary", "pole", "--json")
    )
    assert [c["pixels"] for c in binary["classes"]] == [6, 1]


def test_output_folder_table_metadata_and_no_split(cli, tmp_path: Path):
    voxel_table(tmp_path / "vox" / "voxels.parquet", split=False)
    out = tmp_path / "w.parquet"
    result = cli("classweights", tmp_path / "vox", "--scheme", "max-ratio", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table["pixels"].to_pylist() == [4, 2, 3]  # s3's two pole voxels count without split
    assert table_metadata(table)["count"] == "voxels"
    assert table_metadata(table)["ignore_index"] == -100


def test_shards_over_scenes_add_up(cli, tmp_path: Path):
    table = voxel_table(tmp_path / "voxels.parquet")
    parts = []
    for k in range(2):
        part = tmp_path / f"w{k}.parquet"
        args = ["classweights", table, "--scheme", "icf", "--shard", f"{k}/2", "--count", "points"]
        result = cli(*args, "--allow-missing", "-o", part, "-q")
        assert result.exit_code == 0, result.output
        parts.append(pq.read_table(part))
    assert parts[0]["pixels"].to_pylist() == [15, 2, 1]  # s1
    assert parts[1]["pixels"].to_pylist() == [23, 4, 0]  # s2
    merged = tmp_path / "merged.parquet"
    pq.write_table(pa.concat_tables(parts), merged)
    report = weights_of(cli("classweights", merged, "--scheme", "icf", "--json"))
    assert [c["pixels"] for c in report["classes"]] == POINTS
    assert report["count"] == "points"


def test_ignore_index_and_errors(cli, tmp_path: Path):
    table = voxel_table(tmp_path / "voxels.parquet")
    result = cli("classweights", table, "--scheme", "icf", "--ignore-index", "2")
    assert result.exit_code == 1 and "class 'pole' has no voxels" in result.output
    bad = voxel_table(tmp_path / "bad.parquet", labels=[0, 0, 1, 7, -100, 0, 0, 1, 2, 2])
    result = cli("classweights", bad, "--scheme", "icf")
    assert result.exit_code == 1
    assert "row 3 (scene 's1'): label 7 is outside the class map" in result.output
    assert cli("classweights", table, "--scheme", "icf", "--count", "pixels").exit_code == 2


def test_voxelize_then_classweights(cli, tmp_path: Path):
    """The hand LAS of test_voxelize: majority voxels labelled ground, pole, pole, ground."""
    xyz = [(0, 0, 0), (0.2, 0.4, 0.6), (0.4, 0.2, 0.3), (1.5, 0.5, 0.5), (1.6, 0.6, 0.6),
           (12.5, 3.5, 2.5), (19.0, 9.0, 3.0)]  # fmt: skip
    las = write_las(tmp_path / "hand.las", xyz, [2, 2, 6, 2, 6, 6, 2])
    out = tmp_path / "vox"
    args = ["--voxel", "1", "--tile", "10", "--label-map", "2:ground,6:pole", "-q"]
    assert cli("voxelize", las, *args, "-o", out).exit_code == 0
    voxels = weights_of(cli("classweights", out, "--scheme", "max-ratio", "--json"))
    assert [c["pixels"] for c in voxels["classes"]] == [2, 2]
    points = weights_of(
        cli("classweights", out, "--scheme", "max-ratio", "--count", "points", "--json")
    )
    assert [c["pixels"] for c in points["classes"]] == [4, 3]  # voxels of 3+1 and 2+1 points
    assert [c["weight"] for c in points["classes"]] == pytest.approx([1, 4 / 3])


def test_count_voxels_needs_a_voxel_table(cli, tmp_path: Path):
    from conftest import write_map

    write_map(tmp_path / "m" / "a.png", np.array([[0, 1]], np.uint8))
    result = cli("classweights", tmp_path / "m", "--scheme", "icf", "--count", "points")
    assert result.exit_code == 2

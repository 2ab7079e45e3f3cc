"""The point-cloud pipeline of the README end to end: voxelize → classweights → train → infer
(--las) → score, on generated LAS scenes (always) and on a crop of the LiDAR HD sample of
``../shared/data`` (skipped without it)."""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pyarrow.parquet as pq
from conftest import shared_dataset
from test_voxelize import write_las

LABEL_MAP = "2:ground,3:vegetation,4:vegetation,5:vegetation,6:building"
TINY_NET = ("--channels", "8,16,32", "--aspp-dilations", "2,3,4", "-b", "2", "--seed", "0")


def town(path: Path, seed: int) -> Path:
    """A 40 m × 40 m scene: ground (2), a box building (6) and bushes (5), 1 point per 0.4 m."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(0, 40, 0.4), np.arange(0, 40, 0.4)), -1).reshape(-1, 2)
    ground = np.column_stack([grid, rng.normal(0, 0.05, len(grid))])
    walls = grid[(np.abs(grid[:, 0] - 12) < 4) & (np.abs(grid[:, 1] - 20) < 4)]
    building = np.column_stack([walls, np.full(len(walls), 6.0)])
    centres = rng.uniform(25, 38, (6, 2))
    bushes = np.concatenate([c + rng.normal(0, 0.6, (40, 2)) for c in centres])
    bush = np.column_stack([bushes, rng.uniform(0.5, 2.0, len(bushes))])
    xyz = np.concatenate([ground, building, bush]) + np.array([5000.0, 8000.0, 100.0])
    codes = np.concatenate([np.full(len(ground), 2), np.full(len(walls), 6), np.full(240, 5)])
    return write_las(path, xyz, codes, rng.integers(0, 300, len(xyz)))


def pipeline(cli, root: Path, scenes: dict[str, str], voxel: str, tile: str, epochs: str) -> dict:
    """Run every step; returns the score JSON of the val scene."""
    (root / "scenes.csv").write_text(
        "scene,split\n" + "".join(f"{s},{split}\n" for s, split in scenes.items())
    )
    files = [root / f"{scene}.las" for scene in scenes]
    vox, run, pred = root / "vox", root / "run", root / "pred"
    steps = [
        ("voxelize", *files, "--splits", root / "scenes.csv", "--voxel", voxel, "--tile", tile,
         "--label-rule", "rare-first", "--label-map", LABEL_MAP, "-o", vox),
        ("classweights", vox, "--scheme", "max-ratio", "-o", root / "weights.parquet"),
        ("train", vox, "--class-weights", root / "weights.parquet", "--loss", "wce",
         *TINY_NET, "--epochs", epochs, "--lr", "0.01", "--select", "iou", "-o", run),
        ("infer", "--checkpoint", run / "best.pt", vox, "--split", "val", "--las", "-o", pred),
    ]  # fmt: skip
    for args in steps:
        result = cli(*args)
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
    val = next(scene for scene, split in scenes.items() if split == "val")
    scored = cli("score", "--truth", root / f"{val}.las", "--pred", pred, "--json", "-q")
    assert scored.exit_code == 0, scored.output
    predictions = pq.read_table(pred / "predictions.parquet")
    truth = laspy.read(root / f"{val}.las")
    assert predictions.num_rows == len(truth.points)  # every original point is predicted
    written = laspy.read(pred / f"{val}.las")
    codes = set(np.unique(np.asarray(written["prediction"])).tolist())
    # the input's own codes: vegetation (3, 4, 5) is written as its lowest code, 3
    assert codes <= {0, 2, 3, 6}
    return json.loads(scored.stdout)


def test_generated_scenes_end_to_end(cli, tmp_path):
    town(tmp_path / "west.las", 0)
    town(tmp_path / "east.las", 1)
    scores = pipeline(cli, tmp_path, {"west": "train", "east": "val"}, "1", "20", "8")
    assert scores["oa"] > 0.9
    assert scores["classes"]["ground"]["iou"] > 0.9


def test_lidar_hd_crop_end_to_end(cli, tmp_path):
    source = next(shared_dataset("pdal_lidarhd_sample").glob("*.laz"))
    las = laspy.read(source)
    x, y = np.asarray(las.x), np.asarray(las.y)
    # Two 100 m × 100 m crops; the train one holds the sample's only building.
    for name, (x0, y0) in {"train_crop": (484770, 6632700), "val_crop": (484870, 6632800)}.items():
        keep = (x >= x0) & (x < x0 + 100) & (y >= y0) & (y < y0 + 100)
        part = laspy.LasData(las.header)
        part.points = las.points[keep]
        part.write(tmp_path / f"{name}.las")
    scenes = {"train_crop": "train", "val_crop": "val"}
    scores = pipeline(cli, tmp_path, scenes, "1", "50", "3")
    assert scores["oa"] > 0.9  # ground dominates; the rare classes are the hard part


def test_one_scan_held_out_by_tile(cli, tmp_path):
    """voxelize --val-every splits one scan by tile; infer --split val predicts only the
    held-out points (the LAS copy marks the others 0) and score --missing skip scores them."""
    scan = town(tmp_path / "scan.las", 0)
    vox, run, pred = tmp_path / "vox", tmp_path / "run", tmp_path / "pred"
    steps = [
        ("voxelize", scan, "--val-every", "2", "--voxel", "1", "--tile", "10",
         "--label-map", LABEL_MAP, "-o", vox),
        ("train", vox, "--loss", "dice", *TINY_NET, "--iterations", "2", "-o", run),
        ("infer", "--checkpoint", run / "best.pt", vox, "--split", "val", "--las", "-o", pred),
    ]  # fmt: skip
    for args in steps:
        result = cli(*args)
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
    voxels = pq.read_table(vox / "voxels.parquet").to_pydict()
    points = pq.read_table(vox / "points.parquet").to_pydict()
    val_tiles = {t for t, s in zip(voxels["tile"], voxels["split"], strict=True) if s == "val"}
    assert val_tiles and all(t % 2 == 0 for t in val_tiles)
    held_out = {
        i for i, t in zip(points["point_index"], points["tile"], strict=True) if t in val_tiles
    }
    predictions = pq.read_table(pred / "predictions.parquet")
    assert set(predictions["point_index"].to_pylist()) == held_out
    written = np.asarray(laspy.read(pred / "scan.las")["prediction"])
    others = np.setdiff1d(np.arange(written.size), sorted(held_out))
    assert (written[others] == 0).all()
    scored = cli("score", "--truth", scan, "--pred", pred, "--missing", "skip", "--json", "-q")
    assert scored.exit_code == 0, scored.output
    counts = json.loads(scored.stdout)["classes"]["ground"]
    assert counts["tp"] + counts["fn"] + sum(
        json.loads(scored.stdout)["classes"][name]["tp"]
        + json.loads(scored.stdout)["classes"][name]["fn"]
        for name in ("vegetation", "building")
    ) == len(held_out)

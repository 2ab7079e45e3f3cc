"""3D ``train`` and ``infer`` on voxel tables: learning a rare class, bit-identical resume,
--dry-run, the region losses, softmax means over overlapping tiles, the LAS round trip, and
the one-line errors (SPEC §4.5, §4.6)."""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_voxelize import write_las

from tinyseg_cli.io.checkpoint import load_checkpoint

CLASSES = ["ground", "pole", "building"]
# A sparse U-Net small enough to train in seconds on CPU.
TINY = ("--channels", "4,8", "--aspp-dilations", "1,2", "-b", "2", "--workers", "0")


def voxel_rows(scene: str, tile: int, rng: np.random.Generator, split: str | None) -> list[dict]:
    """An 8×8×3 block of voxels: ground at z 0, a 2-voxel pole (bright), a building corner."""
    rows = []
    px, py = (int(v) for v in rng.integers(0, 8, 2))
    for vx in range(8):
        for vy in range(8):
            for vz in range(3):
                building = vx >= 5 and vy >= 5
                pole = (vx, vy) == (px, py) and vz >= 1
                if vz and not (building or pole):
                    continue
                label = 1 if pole else 2 if building and vz else 0
                intensity = 400.0 if pole else 100.0 + rng.normal(0, 5)
                rows.append(
                    {
                        "scene": scene,
                        "tile": tile,
                        "vx": vx,
                        "vy": vy,
                        "vz": vz,
                        "x": vx + 0.5,
                        "y": vy + 0.5,
                        "z": vz + 0.5,
                        "intensity": intensity,
                        "label": label,
                        "n_points": 1,
                        **({"split": split} if split else {}),
                    }
                )
    return rows


def write_voxels(root: Path, n_train: int = 6, n_val: int = 2, split: bool = True) -> Path:
    """A voxel table with voxelize's schema and class map."""
    rng = np.random.default_rng(0)
    rows = []
    for t in range(n_train + n_val):
        rows += voxel_rows("s", t, rng, ("train" if t < n_train else "val") if split else None)
    schema = [
        ("scene", pa.string()),
        *((c, pa.int32()) for c in ("tile", "vx", "vy", "vz")),
        *((c, pa.float32()) for c in ("x", "y", "z", "intensity")),
        ("label", pa.int16()),
        ("n_points", pa.int32()),
        *((("split", pa.string()),) if split else ()),
    ]
    table = pa.Table.from_pylist(rows, pa.schema(schema)).replace_schema_metadata(
        {
            "tinyseg.classes": json.dumps(CLASSES),
            "tinyseg.voxelize": json.dumps({"ignore_index": -100, "label_map": None}),
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "voxels.parquet")
    return root / "voxels.parquet"


def weights_table(root: Path) -> Path:
    """A classweights table that weighs the 4-voxel pole class up."""
    path = root / "weights.parquet"
    pq.write_table(
        pa.table({"class_index": [0, 1, 2], "class_name": CLASSES, "weight": [1.0, 50.0, 5.0]}),
        path,
    )
    return path


def run(cli, *args: object, code: int = 0):
    """``tinyseg ARGS`` in-process; the exit code must be ``code``."""
    result = cli(*args)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def log_losses(run_dir: Path) -> list[float]:
    log = pq.read_table(run_dir / "log.parquet").to_pylist()
    return [row["loss"] for row in log if row["kind"] == "step"]


def test_3d_training_learns_the_rare_class(cli, tmp_path):
    table = write_voxels(tmp_path / "vox")
    run_dir = tmp_path / "run"
    weights = weights_table(tmp_path)
    run(
        cli,
        "train",
        table.parent,
        "-o",
        run_dir,
        *TINY,
        "--epochs",
        "10",
        "--val-every",
        "5",
        "--lr",
        "0.02",
        "--loss",
        "wce",
        "--class-weights",
        weights,
        "--select",
        "recall",
    )
    losses = log_losses(run_dir)
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    checkpoint = load_checkpoint(run_dir / "best.pt")
    config = checkpoint.config
    assert config["model"]["arch"] == "sparse-unet"
    assert config["input"] == {"modality": "voxels", "features": ["x", "y", "z", "intensity"]}
    assert len(config["normalisation"]["mean"]) == 4
    val = [r for r in pq.read_table(run_dir / "log.parquet").to_pylist() if r["kind"] == "val"]
    pole = [r for r in val if r["class_name"] == "pole"]
    assert pole[-1]["tp"] > 0  # the 4-voxel class is found on the val tiles


def test_3d_resume_is_bit_identical(cli, tmp_path):
    table = write_voxels(tmp_path / "vox", n_train=4, n_val=1)
    whole, part = tmp_path / "whole", tmp_path / "part"
    run(cli, "train", table, "-o", whole, *TINY, "--epochs", "2", "--seed", "3")
    run(cli, "train", table, "-o", part, *TINY, "--epochs", "1", "--seed", "3")
    run(cli, "train", table, "-o", part, "--resume", "--epochs", "2")
    a = load_checkpoint(whole / "last.pt").state_dict
    b = load_checkpoint(part / "last.pt").state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert log_losses(whole) == log_losses(part)


def test_3d_dry_run_json(cli, tmp_path):
    table = write_voxels(tmp_path / "vox", split=False)
    result = run(
        cli, "train", table, *TINY, "--no-aspp", "--features", "z,intensity", "--dry-run", "--json"
    )
    summary = json.loads(result.stdout)
    assert summary["arch"] == "sparse-unet" and summary["aspp_dilations"] is None
    assert summary["features"] == ["z", "intensity"]
    assert summary["train_tiles"] == 8 and summary["val_tiles"] == 0
    assert summary["voxels_per_tile"]["min"] >= 64 and summary["parameters"] > 0
    assert "nothing validates" in result.stderr


@pytest.mark.parametrize("loss", ["wce", "weighted-dice"])
def test_3d_weighted_losses_run(cli, tmp_path, loss):
    table = write_voxels(tmp_path / "vox", n_train=2, n_val=1)
    weights = weights_table(tmp_path)
    run_dir = tmp_path / "run"
    run(
        cli,
        "train",
        table,
        "-o",
        run_dir,
        *TINY,
        "--epochs",
        "1",
        "--loss",
        loss,
        "--class-weights",
        weights,
    )
    assert all(np.isfinite(log_losses(run_dir)))


def test_3d_train_errors(cli, tmp_path):
    table = write_voxels(tmp_path / "vox", n_train=2, n_val=1)
    unlabelled = tmp_path / "nolabel" / "voxels.parquet"
    unlabelled.parent.mkdir()
    t = pq.read_table(table)
    pq.write_table(t.drop_columns(["label"]), unlabelled)
    for args, message in (
        ((unlabelled,), "no 'label' column"),
        ((table, "--features", "x,red"), "feature 'red' is not a column"),
        ((table, "--arch", "unet"), "trains --arch sparse-unet"),
    ):
        result = run(cli, "train", *args, "-o", tmp_path / "r", *TINY, code=1)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # options of the other modality are usage errors, never silently ignored
    for option in (("--augment", "flip"), ("--patches", "p.parquet"), ("--resize", "8", "8")):
        result = run(cli, "train", table, *option, "-o", tmp_path / "u", *TINY, code=2)
        assert "for image manifests only" in result.output and option[0] in result.output
    assert not (tmp_path / "u").exists()


def hand_checkpoint(path: Path, features: list[str]) -> None:
    """A random 3-class sparse U-Net checkpoint taking ``features``."""
    from tinyseg_cli.io.checkpoint import Checkpoint, save_checkpoint
    from tinyseg_cli.models import build_model

    spec = {
        "arch": "sparse-unet",
        "in_channels": len(features),
        "out_channels": 3,
        "channels": [4, 8],
        "aspp_dilations": [1],
        "backend": "torch",
    }
    torch.manual_seed(0)
    config = {
        "model": spec,
        "classes": CLASSES,
        "normalisation": {"mean": [0.0] * len(features), "std": [1.0] * len(features)},
        "input": {"modality": "voxels", "features": features},
    }
    save_checkpoint(path, Checkpoint(config, build_model(spec).state_dict()))


def test_3d_infer_averages_overlapping_tiles(cli, tmp_path):
    """Two tiles share point 1: its probabilities are the mean of its two voxels'."""
    from tinyseg_cli.commands.infer import voxels as engine

    root = tmp_path / "vox"
    root.mkdir()
    voxels = pa.table(
        {
            "scene": ["s"] * 4,
            "tile": pa.array([0, 0, 1, 1], pa.int32()),
            "vx": pa.array([0, 1, 0, 1], pa.int32()),
            "vy": pa.array([0, 0, 0, 0], pa.int32()),
            "vz": pa.array([0, 0, 0, 1], pa.int32()),
            "z": pa.array([0.1, 0.9, 0.4, 2.0], pa.float32()),
        }
    ).replace_schema_metadata(
        {
            "tinyseg.scenes": json.dumps([{"scene": "s", "points": 3, "source": "none.las"}]),
        }
    )
    pq.write_table(voxels, root / "voxels.parquet")
    points = pa.table(
        {
            "scene": ["s"] * 4,
            "point_index": pa.array([0, 1, 1, 2], pa.int64()),
            "tile": pa.array([0, 0, 1, 1], pa.int32()),
            "voxel_row": pa.array([0, 1, 2, 3], pa.int64()),
        }
    )
    pq.write_table(points, root / "points.parquet")
    hand_checkpoint(tmp_path / "m.pt", ["z"])
    run(cli, "infer", "-c", tmp_path / "m.pt", root, "-o", tmp_path / "out", "--probs")
    out = pq.read_table(tmp_path / "out" / "predictions.parquet")
    assert out["point_index"].to_pylist() == [0, 1, 2]
    probs = np.stack([out[f"prob_{c}"].to_numpy() for c in CLASSES], 1)
    model = engine.load_voxel_model(tmp_path / "m.pt", torch.device("cpu"))
    source = engine.open_voxel_input(model, root / "voxels.parquet", None)
    tiles, tile_order_probs = engine.predict_voxels(model, source, None, 1)
    voxel_probs = np.empty_like(tile_order_probs)
    voxel_probs[tiles.rows] = tile_order_probs  # by table row
    np.testing.assert_allclose(probs[1], (voxel_probs[1] + voxel_probs[2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(probs[[0, 2]], voxel_probs[[0, 3]], rtol=1e-6)
    assert out["prediction"].to_pylist() == list(probs.argmax(1))
    # a point in no tile: an error, or the --fill class
    pq.write_table(
        voxels.replace_schema_metadata(
            {
                "tinyseg.scenes": json.dumps([{"scene": "s", "points": 4, "source": "none.las"}]),
            }
        ),
        root / "voxels.parquet",
    )
    result = run(cli, "infer", "-c", tmp_path / "m.pt", root, "-o", tmp_path / "o2", code=1)
    assert "1 of 4 points lie in no predicted tile" in result.stderr
    run(cli, "infer", "-c", tmp_path / "m.pt", root, "-o", tmp_path / "o2", "--fill", "building")
    filled = pq.read_table(tmp_path / "o2" / "predictions.parquet")
    assert filled["prediction"].to_pylist()[3] == 2


def test_3d_infer_las_round_trip_and_errors(cli, tmp_path):
    rng = np.random.default_rng(1)
    xyz = rng.random((400, 3)) * (20, 20, 3) + (100, 200, 10)
    codes = rng.choice([2, 6, 9], 400)  # 9 is unmapped: label -100
    las = write_las(tmp_path / "a.las", xyz, codes, rng.integers(0, 100, 400))
    vox = tmp_path / "vox"
    run(
        cli,
        "voxelize",
        las,
        "--voxel",
        "2",
        "--tile",
        "10",
        "--stride",
        "5",
        "--label-map",
        "2:ground,6:building",
        "-o",
        vox,
    )
    hand_checkpoint(tmp_path / "m.pt", ["x", "y", "z"])
    out = tmp_path / "out"
    summary = json.loads(
        run(cli, "infer", "-c", tmp_path / "m.pt", vox, "-o", out, "--las", "--json").stdout
    )
    assert summary["points"] == 400
    table = pq.read_table(out / "predictions.parquet")
    written = laspy.read(out / "a.las")
    assert "prediction" in written.point_format.dimension_names
    # classes back to the source codes: ground 2, building 6; pole has no code → 0
    expected = np.array([2, 0, 6])[table["prediction"].to_numpy()]
    assert np.array_equal(np.asarray(written.prediction), expected)
    assert np.array_equal(np.asarray(written.classification), codes)
    result = run(cli, "infer", "-c", tmp_path / "m.pt", vox, "-o", out, code=1)
    assert "already exists" in result.stderr
    hand_checkpoint(tmp_path / "m2.pt", ["x", "curvature"])
    result = run(cli, "infer", "-c", tmp_path / "m2.pt", vox, "-o", out, "--force", code=1)
    assert "needs feature 'curvature'" in result.stderr
    result = run(cli, "infer", "-c", tmp_path / "m.pt", vox, "-o", out, "--shard", "0/2", code=2)
    assert "voxelize --shard" in result.output


def test_3d_infer_streams_scene_by_scene(cli, tmp_path, monkeypatch):
    """Two scenes (LAS and LAZ) whose rows share Parquet row groups, LAS copies written in
    chunks: the same predictions as in one piece, and exact copies of every source point."""
    from tinyseg_cli.io import las as las_io
    from tinyseg_cli.io import table_stream

    rng = np.random.default_rng(2)
    sources = {}
    for name in ("a.las", "b.laz"):
        xyz = rng.random((300, 3)) * (20, 20, 3) + (100, 200, 10)
        codes = rng.choice([2, 6], 300)
        sources[name] = write_las(tmp_path / name, xyz, codes, rng.integers(0, 100, 300))
    hand_checkpoint(tmp_path / "m.pt", ["x", "y", "z"])
    common = ("--voxel", "2", "--tile", "10", "--stride", "5", "--label-map", "2:ground,6:building")
    run(cli, "voxelize", *sources.values(), *common, "-o", tmp_path / "whole")
    run(cli, "infer", "-c", tmp_path / "m.pt", tmp_path / "whole", "-o", tmp_path / "p1")
    monkeypatch.setattr(table_stream, "ROW_GROUP", 500)  # row groups straddle the scenes
    monkeypatch.setattr(las_io, "WRITE_CHUNK", 64)
    run(cli, "voxelize", *sources.values(), *common, "-o", tmp_path / "small")
    for table in ("voxels", "points"):
        meta = pq.ParquetFile(tmp_path / "small" / f"{table}.parquet").metadata
        scenes = [meta.row_group(g).column(0).statistics for g in range(meta.num_row_groups)]
        assert any(stats.min != stats.max for stats in scenes), table  # a group with both
    out = tmp_path / "p2"
    run(cli, "infer", "-c", tmp_path / "m.pt", tmp_path / "small", "-o", out, "--las", "--probs")
    streamed = pq.read_table(out / "predictions.parquet")
    whole = pq.read_table(tmp_path / "p1" / "predictions.parquet")
    assert streamed.select(whole.column_names).equals(whole)
    assert streamed["scene"].to_pylist() == ["a"] * 300 + ["b"] * 300
    for name, source in sources.items():
        copy, original = laspy.read(out / name), laspy.read(source)
        for field in original.points.array.dtype.names:
            assert np.array_equal(copy.points.array[field], original.points.array[field]), field
        scene = streamed.filter(pa.compute.equal(streamed["scene"], Path(name).stem))
        expected = np.array([2, 6, 0])[scene["prediction"].to_numpy()]  # pole has no code
        assert np.array_equal(np.asarray(copy.prediction), expected)


def test_3d_distributed_training_under_torchrun(tmp_path):
    from conftest import run_torchrun

    table = write_voxels(tmp_path / "vox")
    run_dir = tmp_path / "ddp"
    done = run_torchrun(
        "train", table, *TINY, "--iterations", "3", "--val-every", "3", "--distributed",
        "--device", "cpu", "-o", run_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    checkpoint = load_checkpoint(run_dir / "last.pt")
    assert checkpoint.step == 3 and checkpoint.config["train"]["distributed"] is True
    assert checkpoint.config["input"]["modality"] == "voxels"
    val = [r for r in pq.read_table(run_dir / "log.parquet").to_pylist() if r["kind"] == "val"]
    assert {r["step"] for r in val} == {3}
    per_class = [r for r in val if r["level"] == "class"]
    assert len(per_class) == len(checkpoint.config["classes"])  # logged once, not per rank


def test_3d_torchsparse_is_checked_before_training(cli, tmp_path):
    from tinyseg_cli.sparse import backends

    table = write_voxels(tmp_path / "vox", n_train=2, n_val=1)
    args = ("train", table, "--sparse-backend", "torchsparse", *TINY, "-o", tmp_path / "r")
    result = run(cli, *args, code=1)
    if backends.installed("torchsparse"):  # the ASPP bridge dilates: torchsparse ignores it
        assert "dilation 2 refused" in result.stderr and "--no-aspp" in result.stderr
    else:
        assert "torchsparse: not installed (it is not on PyPI" in result.stderr
    assert not (tmp_path / "r" / "last.pt").exists()

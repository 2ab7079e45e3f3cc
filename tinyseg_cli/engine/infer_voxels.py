"""3D ``infer`` (SPEC §4.6): a voxel table through a sparse U-Net checkpoint, the voxels'
softmax averaged per original point over all its (point, tile) voxels, so overlapping tiles
vote, then written as ``predictions.parquet`` (one row per point) and, with ``--las``, as
copies of the source point clouds with a ``prediction`` extra dimension.

Every point of a predicted scene gets a row. A point whose tiles voxelize dropped
(``--min-points``) has no voxel to predict from: that is an error, unless ``fill`` names the
class such points get (their probabilities are then NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from tinyseg_cli.data.voxels import TileDataset
from tinyseg_cli.engine.checkpoint import load_checkpoint
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.voxels import tile_probs
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.voxels import (
    POINTS_NAME,
    Tiles,
    choose_features,
    read_point_map,
    read_tiles,
    schema_metadata,
)

PREDICTIONS = "predictions.parquet"
POINT_KEY_BITS = 40  # point indices below 2^40 (a trillion points per scene)


@dataclass(frozen=True)
class VoxelModel:
    """A sparse U-Net checkpoint ready for inference."""

    path: Path
    network: torch.nn.Module
    classes: ClassMap
    features: tuple[str, ...]
    mean: list[float]
    std: list[float]
    backend: str
    device: torch.device


def load_voxel_model(path: str | Path, device: torch.device) -> VoxelModel:
    """The checkpoint's network in eval mode on ``device``; a 2D checkpoint is an error."""
    from tinyseg_cli.models import build_model

    path = Path(path)
    config = load_checkpoint(path).config
    if (config.get("input") or {}).get("modality") != "voxels":
        raise TinysegError(f"{path}: a 2D checkpoint cannot predict a voxel table")
    network = build_model(config["model"])
    network.load_state_dict(load_checkpoint(path).state_dict)
    network.to(device).eval()
    return VoxelModel(
        path=path,
        network=network,
        classes=ClassMap(tuple(config["classes"])),
        features=tuple(config["input"]["features"]),
        mean=list(config["normalisation"]["mean"]),
        std=list(config["normalisation"]["std"]),
        backend=config["model"].get("backend", "auto"),
        device=device,
    )


@dataclass(frozen=True)
class VoxelInput:
    """A checked voxel table, its point map and metadata."""

    table: Path
    points: Path
    rows: int  # rows of the whole table (the point map's voxel_row range)
    metadata: dict[str, Any]


def open_voxel_input(model: VoxelModel, table: Path, points: Path | None) -> VoxelInput:
    """Check that the table has the checkpoint's features and that the point map exists."""
    schema = pq.read_schema(table)
    missing = [name for name in model.features if name not in schema.names]
    if missing:
        raise TinysegError(
            f"{table}: the checkpoint {model.path.name} needs feature {missing[0]!r}, which the "
            "voxel table lacks (voxelize with the same --features)"
        )
    choose_features(table, schema, model.features)
    points = points or table.parent / POINTS_NAME
    if not points.is_file():
        raise TinysegError(f"{points}: no point map beside the voxel table (give --points)")
    return VoxelInput(table, points, pq.read_metadata(table).num_rows, schema_metadata(schema))


def predict_voxels(
    model: VoxelModel,
    source: VoxelInput,
    split: str | None,
    tiles_per_batch: int,
    on_tiles: Callable[[int], None] = lambda n: None,
) -> tuple[Tiles, np.ndarray]:
    """Softmax (rows, C) for every row of the table in ``split`` (zeros elsewhere), and the
    tiles predicted."""
    tiles = read_tiles(source.table, model.features, split, labels=False)
    if len(tiles) == 0:
        raise TinysegError(f"{source.table}: no rows{f' with split == {split}' if split else ''}")
    probs = np.zeros((source.rows, len(model.classes)), np.float32)
    dataset = TileDataset(tiles, model.mean, model.std)
    for span, values in tile_probs(
        model.network,
        dataset,
        tiles_per_batch=tiles_per_batch,
        backend=model.backend,
        device=model.device,
        on_batch=on_tiles,
    ):
        probs[tiles.rows[span]] = values
    return tiles, probs


def scene_sizes(source: VoxelInput, scenes: list[str], point_map: pa.Table) -> dict[str, int]:
    """Points per scene: the voxelize record, else the largest point index in the map + 1."""
    recorded = {r["scene"]: int(r["points"]) for r in source.metadata.get("scenes") or []}
    sizes = {}
    for scene in scenes:
        if scene in recorded:
            sizes[scene] = recorded[scene]
        else:
            mask = pc.equal(point_map["scene"], scene)
            sizes[scene] = int(pc.max(point_map.filter(mask)["point_index"]).as_py()) + 1
    return sizes


def point_means(
    probs: np.ndarray, predicted: np.ndarray, point_map: pa.Table, scenes: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per scene: the point indices that lie in a predicted voxel and their softmax mean
    over all those voxels (one per tile holding the point)."""
    codes = {name: i for i, name in enumerate(scenes)}
    scene = pc.dictionary_encode(point_map["scene"]).combine_chunks()
    lookup = np.array([codes.get(name, -1) for name in scene.dictionary.to_pylist()], np.int64)
    code = lookup[scene.indices.to_numpy()] if len(lookup) else np.zeros(0, np.int64)
    rows = point_map["voxel_row"].to_numpy()
    if rows.size and (int(rows.max()) >= predicted.size or int(rows.min()) < 0):
        raise TinysegError(
            f"point map: voxel_row {int(rows.max())} outside the voxel table's {predicted.size} "
            "rows (a point map of another table?)"
        )
    keep = (code >= 0) & predicted[rows]
    key = (code[keep] << POINT_KEY_BITS) | point_map["point_index"].to_numpy()[keep]
    unique, inverse = np.unique(key, return_inverse=True)
    votes = probs[rows[keep]]
    counts = np.bincount(inverse, minlength=unique.size)
    mean = (
        np.stack([np.bincount(inverse, votes[:, c], unique.size) for c in range(probs.shape[1])], 1)
        / np.maximum(counts, 1)[:, None]
    )
    out = {}
    unique_scene = unique >> POINT_KEY_BITS
    for name, i in codes.items():
        mine = unique_scene == i
        out[name] = (unique[mine] & ((1 << POINT_KEY_BITS) - 1), mean[mine].astype(np.float32))
    return out


def prediction_table(
    means: dict[str, tuple[np.ndarray, np.ndarray]],
    sizes: dict[str, int],
    classes: ClassMap,
    fill: int | None,
    with_probs: bool,
) -> pa.Table:
    """One row per point of every scene, by scene then point index."""
    parts = []
    for name in sorted(means):
        index, mean = means[name]
        size = sizes[name]
        missing = size - index.size
        if missing and fill is None:
            first = int(np.setdiff1d(np.arange(size), index)[0])
            raise TinysegError(
                f"scene {name!r}: {missing} of {size} points lie in no predicted tile (e.g. "
                f"point {first}; voxelize --min-points dropped their tiles, or their tiles are "
                "in another split); pass --fill CLASS to give them a class"
            )
        prediction = np.full(size, -1 if fill is None else fill, np.int16)
        prediction[index] = mean.argmax(1)
        columns: dict[str, Any] = {
            "scene": pa.array([name] * size, pa.string()),
            "point_index": pa.array(np.arange(size, dtype=np.int64)),
            "prediction": pa.array(prediction),
        }
        if with_probs:
            full = np.full((size, len(classes)), np.nan, np.float32)
            full[index] = mean
            for c, class_name in enumerate(classes.names):
                columns[f"prob_{class_name}"] = pa.array(full[:, c])
        parts.append(pa.table(columns))
    return pa.concat_tables(parts)


def predict_points(
    model: VoxelModel,
    source: VoxelInput,
    *,
    split: str | None,
    fill: int | None,
    with_probs: bool,
    tiles_per_batch: int = 4,
    on_tiles: Callable[[int], None] = lambda n: None,
) -> pa.Table:
    """The predictions table of a voxel table (see the module docstring)."""
    tiles, probs = predict_voxels(model, source, split, tiles_per_batch, on_tiles)
    predicted = np.zeros(source.rows, bool)
    predicted[tiles.rows] = True
    point_map = read_point_map(source.points)
    scenes = sorted(set(tiles.scenes))
    means = point_means(probs, predicted, point_map, scenes)
    sizes = scene_sizes(source, scenes, point_map)
    return prediction_table(means, sizes, model.classes, fill, with_probs)


def source_codes(voxelize: dict[str, Any], n_classes: int) -> np.ndarray:
    """Class index → the input's own label code: the inverse of voxelize's ``--label-map``
    (several codes of one class give its lowest code; a class no code maps to gives 0, ASPRS
    "created, never classified"); without a label map the classes were the codes."""
    label_map = voxelize.get("label_map")
    if not label_map:
        return np.arange(n_classes, dtype=np.int64)
    codes = np.zeros(n_classes, np.int64)
    for code, index in sorted(label_map.items(), key=lambda item: -int(item[0])):
        if 0 <= int(index) < n_classes:
            codes[int(index)] = int(code)
    return codes


def scene_sources(source: VoxelInput) -> dict[str, Path]:
    """Each scene's source LAS/LAZ (recorded relative to the table by voxelize)."""
    out = {}
    for record in source.metadata.get("scenes") or []:
        path = Path(record["source"])
        out[record["scene"]] = path if path.is_absolute() else source.table.parent / path
    return out


def las_outputs(
    source: VoxelInput, scenes: list[str], out_dir: Path
) -> dict[str, tuple[Path, Path]]:
    """Per scene: (source file, OUT_DIR/<scene>.las or .laz like the source)."""
    sources = scene_sources(source)
    out = {}
    for scene in scenes:
        if scene not in sources:
            raise TinysegError(f"{source.table}: no source file recorded for scene {scene!r}")
        path = sources[scene]
        if not path.is_file():
            raise TinysegError(f"{path}: source of scene {scene!r} not found (--las)")
        out[scene] = (path, out_dir / f"{scene}{path.suffix.lower()}")
    return out


def scenes_and_tiles(source: VoxelInput, split: str | None) -> tuple[list[str], int]:
    """The scenes and the number of tiles ``split`` selects (checked before any work)."""
    columns = ["scene", "tile", *(("split",) if split else ())]
    table = pq.read_table(source.table, columns=columns)
    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    if table.num_rows == 0:
        raise TinysegError(f"{source.table}: no rows{f' with split == {split}' if split else ''}")
    pairs = set(zip(table["scene"].to_pylist(), table["tile"].to_pylist(), strict=True))
    return sorted({scene for scene, _ in pairs}), len(pairs)


def write_las_prediction(
    predictions: pa.Table, scene: str, codes: np.ndarray, source: Path, target: Path
) -> None:
    """``target``: ``source`` with the scene's predictions as a ``prediction`` dimension in
    the source's label codes (a point without a prediction gets 0)."""
    from tinyseg_cli.io.las import write_with_dimension

    rows = predictions.filter(pc.equal(predictions["scene"], scene))
    classes = rows["prediction"].to_numpy().astype(np.int64)
    values = np.where(classes >= 0, codes[np.clip(classes, 0, None)], 0)
    dtype = np.uint8 if values.max(initial=0) <= 255 else np.uint16
    write_with_dimension(source, target, "prediction", values.astype(dtype))

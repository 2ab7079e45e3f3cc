"""3D ``infer`` (SPEC §4.6): a voxel table through a sparse U-Net checkpoint, the voxels'
softmax averaged per original point over all its (point, tile) voxels, so overlapping tiles
vote, then written as ``predictions.parquet`` (one row per point) and, with ``--las``, as
copies of the source point clouds with a ``prediction`` extra dimension.

Every point of a predicted scene gets a row. A point whose tiles voxelize dropped
(``--min-points``) has no voxel to predict from: that is an error, unless ``fill`` names the
class such points get (their probabilities are then NaN). With ``--split`` (and no
``fill``), only the points of that split's tiles get rows: the others belong to another
split, such as the training tiles of a scan held out by ``voxelize --val-every``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from tinyseg_cli.data.voxels import TileDataset
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.voxels import tile_probs
from tinyseg_cli.io.checkpoint import load_checkpoint
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.paths import check_file_name, name_limit
from tinyseg_cli.io.voxels import (
    POINTS_NAME,
    Tiles,
    choose_features,
    read_point_map,
    read_tiles,
    scene_groups,
    schema_metadata,
)

PREDICTIONS = "predictions.parquet"


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
    scene: str | None = None,
    groups: list[int] | None = None,
) -> tuple[Tiles, np.ndarray]:
    """The tiles of ``split`` (of ``scene``, read from its row ``groups``, when given) and
    the softmax (n, C) of their rows, row i for the table's row ``tiles.rows[i]``."""
    tiles = read_tiles(source.table, model.features, split, False, scene, groups)
    if len(tiles) == 0:
        raise TinysegError(f"{source.table}: no rows{f' with split == {split}' if split else ''}")
    probs = np.empty((tiles.rows.size, len(model.classes)), np.float32)
    dataset = TileDataset(tiles, model.mean, model.std)
    for span, values in tile_probs(
        model.network,
        dataset,
        tiles_per_batch=tiles_per_batch,
        backend=model.backend,
        device=model.device,
        on_batch=on_tiles,
    ):
        probs[span] = values
    return tiles, probs


def point_means(
    voxel_rows: np.ndarray, probs: np.ndarray, point_map: pa.Table, table_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The point indices of one scene's point map that lie in a predicted voxel (table row
    ``voxel_rows[i]`` has softmax ``probs[i]``), and their softmax mean over all those voxels
    (one per tile holding the point)."""
    rows = point_map["voxel_row"].to_numpy()
    if rows.size and (int(rows.max()) >= table_rows or int(rows.min()) < 0):
        raise TinysegError(
            f"point map: voxel_row {int(rows.max())} outside the voxel table's {table_rows} "
            "rows (a point map of another table?)"
        )
    order = np.argsort(voxel_rows)
    known = voxel_rows[order]
    at = np.searchsorted(known, rows).clip(max=max(known.size - 1, 0))
    hit = known[at] == rows if known.size else np.zeros(rows.size, bool)
    points = point_map["point_index"].to_numpy()[hit]
    unique, inverse = np.unique(points, return_inverse=True)
    votes = probs[order[at[hit]]]
    counts = np.bincount(inverse, minlength=unique.size)
    sums = [np.bincount(inverse, votes[:, c], unique.size) for c in range(probs.shape[1])]
    mean = np.stack(sums, 1) / np.maximum(counts, 1)[:, None] if sums else votes
    return unique, mean.astype(np.float32)


def prediction_schema(classes: ClassMap, with_probs: bool) -> pa.Schema:
    """The columns of ``predictions.parquet`` (SPEC §4.6, 3D)."""
    fields = [
        pa.field("scene", pa.string()),
        pa.field("point_index", pa.int64()),
        pa.field("prediction", pa.int16()),
    ]
    if with_probs:
        fields += [pa.field(f"prob_{name}", pa.float32()) for name in classes.names]
    return pa.schema(fields)


def prediction_table(
    scene: str,
    index: np.ndarray,
    mean: np.ndarray,
    size: int,
    classes: ClassMap,
    fill: int | None,
    with_probs: bool,
    only_predicted: bool = False,
) -> pa.Table:
    """One row per point of ``scene``, by point index; with ``only_predicted`` (and no
    ``fill``) one per point that some voxel predicts."""
    if only_predicted and fill is None:
        columns = {
            "scene": pa.array([scene] * index.size, pa.string()),
            "point_index": pa.array(index.astype(np.int64)),
            "prediction": pa.array(mean.argmax(1).astype(np.int16)),
        }
        if with_probs:
            for c, class_name in enumerate(classes.names):
                columns[f"prob_{class_name}"] = pa.array(mean[:, c].astype(np.float32))
        return pa.table(columns)
    missing = size - index.size
    if missing and fill is None:
        first = int(np.setdiff1d(np.arange(size), index)[0])
        raise TinysegError(
            f"scene {scene!r}: {missing} of {size} points lie in no predicted tile (e.g. "
            f"point {first}; voxelize --min-points dropped their tiles, or their tiles are "
            "in another split); pass --fill CLASS to give them a class"
        )
    prediction = np.full(size, -1 if fill is None else fill, np.int16)
    prediction[index] = mean.argmax(1)
    columns: dict[str, Any] = {
        "scene": pa.array([scene] * size, pa.string()),
        "point_index": pa.array(np.arange(size, dtype=np.int64)),
        "prediction": pa.array(prediction),
    }
    if with_probs:
        full = np.full((size, len(classes)), np.nan, np.float32)
        full[index] = mean
        for c, class_name in enumerate(classes.names):
            columns[f"prob_{class_name}"] = pa.array(full[:, c])
    return pa.table(columns)


def scene_predictions(
    model: VoxelModel,
    source: VoxelInput,
    scenes: list[str],
    *,
    split: str | None,
    fill: int | None,
    with_probs: bool,
    tiles_per_batch: int = 4,
    on_tiles: Callable[[int], None] = lambda n: None,
) -> Iterator[tuple[str, pa.Table]]:
    """The predictions table of each scene in turn (see the module docstring). One scene's
    voxels, point map rows and predictions are in memory at a time, whatever the table."""
    voxel_groups = scene_groups(source.table)
    point_groups = scene_groups(source.points)
    recorded = {r["scene"]: int(r["points"]) for r in source.metadata.get("scenes") or []}
    for scene in scenes:
        tiles, probs = predict_voxels(
            model, source, split, tiles_per_batch, on_tiles, scene, voxel_groups.get(scene, [])
        )
        point_map = read_point_map(source.points, scene, point_groups.get(scene, []))
        index, mean = point_means(tiles.rows, probs, point_map, source.rows)
        if scene in recorded:
            size = recorded[scene]
        else:  # a table voxelize did not write: the largest point index + 1
            size = int(pc.max(point_map["point_index"]).as_py() or -1) + 1
        yield (
            scene,
            prediction_table(
                scene, index, mean, size, model.classes, fill, with_probs, split is not None
            ),
        )


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
    limit = name_limit(out_dir)
    for scene in scenes:  # scene names come from the table: they must name a file here
        check_file_name(scene, str(source.table), ".laz", limit, "scene")
    for scene in scenes:
        if scene not in sources:
            raise TinysegError(f"{source.table}: no source file recorded for scene {scene!r}")
        path = sources[scene]
        if not path.is_file():
            raise TinysegError(f"{path}: source of scene {scene!r} not found (--las)")
        out[scene] = (path, out_dir / f"{scene}{path.suffix.lower()}")
    return out


def scenes_and_tiles(source: VoxelInput, split: str | None) -> tuple[list[str], int]:
    """The scenes and the number of tiles ``split`` selects (checked before any work; read
    one row group at a time)."""
    columns = ["scene", "tile", *(("split",) if split else ())]
    file = pq.ParquetFile(source.table)
    pairs: set[tuple[str, int]] = set()
    for group in range(file.num_row_groups):
        table = file.read_row_group(group, columns=columns)
        if split is not None:
            table = table.filter(pc.equal(table["split"], split))
        unique = table.group_by(["scene", "tile"]).aggregate([])
        pairs.update(zip(unique["scene"].to_pylist(), unique["tile"].to_pylist(), strict=True))
    if not pairs:
        raise TinysegError(f"{source.table}: no rows{f' with split == {split}' if split else ''}")
    return sorted({scene for scene, _ in pairs}), len(pairs)


def write_las_prediction(
    predictions: pa.Table, codes: np.ndarray, source: Path, target: Path
) -> None:
    """``target``: ``source`` with one scene's predictions as a ``prediction`` dimension in
    the source's label codes (a point without a prediction, or without a row, gets 0)."""
    from tinyseg_cli.io.las import point_count, write_with_dimension

    classes = np.full(point_count(source), -1, np.int64)
    rows = predictions["point_index"].to_numpy()
    classes[rows] = predictions["prediction"].to_numpy().astype(np.int64)
    values = np.where(classes >= 0, codes[np.clip(classes, 0, None)], 0)
    dtype = np.uint8 if values.max(initial=0) <= 255 else np.uint16
    write_with_dimension(source, target, "prediction", values.astype(dtype))

"""``voxelize``: LAS/LAZ point clouds -> the voxel table and the point map (SPEC §3, §4.4).

Two passes with bounded memory: chunks of points are spilled to per-tile partitions in a
temporary folder inside the output folder, then each tile is quantised and aggregated alone
(see ``passes``). Output order is deterministic: scenes by name, tiles by id, voxels by
(vx, vy, vz); the point map lists each tile's points in source order.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyseg_cli.commands.voxelize.labels import ClassRanks
from tinyseg_cli.commands.voxelize.passes import (
    ClassTally,
    Progress,
    SpillJob,
    WriteJob,
    no_progress,
    spill_points,
    write_tiles,
)
from tinyseg_cli.commands.voxelize.reader import Scene, choose_features, open_scenes
from tinyseg_cli.commands.voxelize.spill import BUFFERED_CHUNKS, TileSpill, record_dtype
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import output_folder
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.label_map import IGNORE, INT16, LabelMap
from tinyseg_cli.runtime.parallel import shard

VOXELS, POINTS = "voxels.parquet", "points.parquet"


@dataclass(frozen=True)
class VoxelizeOptions:
    """The parameters of one ``voxelize`` call (lengths in the files' units, metres)."""

    voxel: float = 0.02
    tile: float = 50.0
    stride: float | None = None  # None: = tile (no overlap)
    min_points: int = 1
    features: tuple[str, ...] | None = None  # None: every feature all inputs have
    label_dim: str = "classification"
    label_map: LabelMap | None = None
    class_map: ClassMap | None = None
    label_rule: str = "majority"
    chunk_size: int = 250_000
    shard: tuple[int, int] = (0, 1)
    split: str | None = None  # one split for every voxel
    splits: dict[str, str] | None = None  # scene -> split
    val_every: int | None = None  # tiles whose id is a multiple of it validate, the rest train

    @property
    def step(self) -> float:
        return self.tile if self.stride is None else self.stride


@dataclass(frozen=True)
class ClassSurvival:
    """How one label fared: input points, voxels labelled with it, members kept (SPEC §4.4)."""

    label: int
    name: str
    points: int
    voxels: int
    members: int  # (point, tile) memberships in this call's tiles
    kept: int  # of those, in a kept tile and in a voxel that carries this label

    @property
    def share_kept(self) -> float | None:
        return self.kept / self.members if self.members else None


@dataclass(frozen=True)
class VoxelizeSummary:
    scenes: list[str]
    points: int
    features: tuple[str, ...]
    tiles: int
    dropped_tiles: int
    voxels: int
    point_rows: int
    classes: list[ClassSurvival]
    shard_by: str | None
    metadata: dict[str, Any]


def voxelize(
    paths: list[str],
    out_dir: Path,
    options: VoxelizeOptions,
    metadata: dict[str, Any],
    warn: Callable[[str], None] = lambda _message: None,
    progress: Progress = no_progress,
) -> VoxelizeSummary:
    """Voxelize ``paths`` into ``out_dir``/voxels.parquet and points.parquet.

    Every input is checked before anything is written; on error or Ctrl-C neither table is
    left behind (nor ``out_dir`` when this call created it). ``metadata`` (provenance, …)
    goes into both tables' schema metadata beside the voxelization parameters.
    """
    scenes = open_scenes(paths, options.tile, options.step, options.voxel, options.label_dim)
    scenes, tile_shard, shard_by = _shard(scenes, options.shard)
    features = choose_features(options.features, scenes, warn)
    split_of = _split_of(scenes, options)
    tally = ClassTally()
    with output_folder(out_dir), tempfile.TemporaryDirectory(dir=out_dir, prefix=".spill-") as tmp:
        dtype = record_dtype(len(features))
        buffer = BUFFERED_CHUNKS * options.chunk_size * dtype.itemsize
        spill = TileSpill(Path(tmp), dtype, buffer)
        names = _class_names(options)
        job = SpillJob(
            options.chunk_size,
            options.label_dim,
            options.label_map,
            len(names) if names is not None else None,
            features,
            tile_shard,
        )
        spill_points(scenes, job, spill, tally, progress)
        tiles = _kept_tiles(spill, options.min_points, tile_shard)
        _warn_absent_codes(options.label_map, tally, warn)
        ranks = ClassRanks.from_counts(tally.points)
        meta = {
            **metadata,
            "classes": names.to_metadata() if names is not None else None,
            "voxelize": _parameters(options, features, ranks, shard_by),
            "scenes": [_scene_record(scene, out_dir) for scene in scenes],
        }
        write = WriteJob(
            out_dir / VOXELS, out_dir / POINTS, features, options.label_rule, split_of, meta,
            val_every=options.val_every,
        )  # fmt: skip
        voxels = write_tiles(scenes, tiles, spill, ranks, write, tally, progress)
    return VoxelizeSummary(
        [scene.name for scene in scenes],
        sum(scene.info.point_count for scene in scenes),
        features,
        len(tiles),
        len(spill.counts) - len(tiles),
        voxels,
        int(tally.members.sum() - _dropped_members(spill, tiles)),
        _survival(tally, names),
        shard_by,
        meta,
    )


def _shard(
    scenes: list[Scene], part: tuple[int, int]
) -> tuple[list[Scene], tuple[int, int] | None, str | None]:
    """``--shard K/N`` over files when there are at least N, else over every file's tiles."""
    if part == (0, 1):
        return scenes, None, None
    if len(scenes) >= part[1]:
        return shard(scenes, *part), None, "files"
    return scenes, part, "tiles"


def _split_of(scenes: list[Scene], options: VoxelizeOptions) -> dict[str, str] | None:
    if options.val_every is not None:  # train, but for the held-out tiles (WriteJob)
        return {scene.name: "train" for scene in scenes}
    if options.split is not None:
        return {scene.name: options.split for scene in scenes}
    if options.splits is None:
        return None
    missing = [scene.name for scene in scenes if scene.name not in options.splits]
    if missing:
        raise TinysegError(f"--splits: no split for scene {missing[0]!r} (scene = file stem)")
    return {scene.name: options.splits[scene.name] for scene in scenes}


def _kept_tiles(
    spill: TileSpill, min_points: int, tile_shard: tuple[int, int] | None
) -> list[tuple[int, int]]:
    """Tiles with at least ``min_points`` points (the others' partitions deleted), in order."""
    if not spill.counts:  # only a shard over tiles can miss every tile
        shard_ = "" if tile_shard is None else f"{tile_shard[0]}/{tile_shard[1]} "
        raise TinysegError(f"shard {shard_}holds no tile with points")
    kept = sorted(key for key, count in spill.counts.items() if count >= min_points)
    if not kept:
        largest = max(spill.counts.values())
        raise TinysegError(
            f"no tile has at least {min_points} points (--min-points; the largest has {largest})"
        )
    for key in spill.counts.keys() - set(kept):
        spill.discard(*key)
    return kept


def _dropped_members(spill: TileSpill, kept: list[tuple[int, int]]) -> int:
    return sum(spill.counts.values()) - sum(spill.counts[key] for key in kept)


def _warn_absent_codes(
    label_map: LabelMap | None, tally: ClassTally, warn: Callable[[str], None]
) -> None:
    if label_map is None or tally.code_hits is None:
        return
    absent = label_map.codes[tally.code_hits == 0].tolist()
    if absent:
        listed = ", ".join(str(code) for code in absent)
        warn(f"--label-map: code {listed} does not occur in the input")


def _class_names(options: VoxelizeOptions) -> ClassMap | None:
    if options.class_map is not None:
        return options.class_map
    return options.label_map.names if options.label_map is not None else None


def _parameters(
    options: VoxelizeOptions, features: tuple[str, ...], ranks: ClassRanks, shard_by: str | None
) -> dict[str, Any]:
    """The voxelization parameters stored in both tables, so later steps can map back."""
    part = options.shard
    return {
        "voxel": options.voxel,
        "tile": options.tile,
        "stride": options.step,
        "min_points": options.min_points,
        "features": list(features),
        "label_dim": options.label_dim,
        "label_map": None if options.label_map is None else options.label_map.to_metadata(),
        "label_rule": options.label_rule,
        "rarest_first": ranks.labels.tolist(),
        "ignore_index": IGNORE,
        "shard": None if part == (0, 1) else f"{part[0]}/{part[1]}",
        "shard_by": shard_by,
        "split": options.split,
        "val_every": options.val_every,
    }


def _scene_record(scene: Scene, out_dir: Path) -> dict[str, Any]:
    """A scene's source file (relative to the tables, SPEC §3) and tile grid."""
    source = os.path.relpath(scene.info.path.resolve(), out_dir.resolve())
    return {
        "scene": scene.name,
        "source": source,
        "points": scene.info.point_count,
        **scene.grid.to_metadata(),
    }


def _survival(tally: ClassTally, names: ClassMap | None) -> list[ClassSurvival]:
    rows = []
    for slot in np.flatnonzero(tally.points | tally.members).tolist():
        label = slot + INT16[0]
        name = "(ignored)" if label == IGNORE else names.name(label) if names else str(label)
        rows.append(
            ClassSurvival(
                label,
                name,
                int(tally.points[slot]),
                int(tally.voxels[slot]),
                int(tally.members[slot]),
                int(tally.kept[slot]),
            )
        )
    return rows

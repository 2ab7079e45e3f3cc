"""``voxelize``: LAS/LAZ point clouds -> the voxel table and the point map (SPEC §3, §4.4).

Two passes with bounded memory: chunks of points are spilled to per-tile partitions in a
temporary folder inside the output folder, then each tile is quantised and aggregated alone
(see ``passes``). Output order is deterministic: scenes by name, tiles by id, voxels by
(vx, vy, vz); the point map lists each tile's points in source order.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyseg_cli.commands.voxelize.labels import SLOTS, ClassRanks
from tinyseg_cli.commands.voxelize.passes import (
    ClassTally,
    Progress,
    SpillJob,
    WriteJob,
    no_progress,
    spill_points,
    write_tiles,
    written_labels,
)
from tinyseg_cli.commands.voxelize.reader import Scene, choose_features, open_scenes
from tinyseg_cli.commands.voxelize.spill import BUFFERED_CHUNKS, TileSpill, record_dtype
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import output_folder
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.label_map import IGNORE, INT16, LabelMap
from tinyseg_cli.io.las_meta import UNLABELLED_CODES, Unit, asprs_name
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
    region: tuple[str, float] | None = None  # the tiles on one side of each scan validate
    units: Unit | None = None  # --units: the horizontal unit of files whose CRS says none

    @property
    def step(self) -> float:
        return self.tile if self.stride is None else self.stride


@dataclass(frozen=True)
class ClassSurvival:
    """How one label fared: input points, voxels labelled with it, members kept (SPEC §4.4)."""

    label: int  # as the voxel table stores it (-100: ignored)
    code: int  # in the input (the label itself without a label map)
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
    units = {scene.name: scene_unit(scene, options, warn) for scene in scenes}
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
        _check_kept(options.label_map, tally)
        asprs = _asprs_labels(options, tally)
        label_map = options.label_map or asprs
        names = asprs.names if asprs is not None else names
        relabel = _relabel(asprs)
        ranks = ClassRanks.from_counts(tally.points)
        parameters = _parameters(options, features, ranks, shard_by, label_map, relabel)
        meta = {
            **metadata,
            "classes": names.to_metadata() if names is not None else None,
            "voxelize": parameters,
            "scenes": [_scene_record(scene, out_dir, units[scene.name]) for scene in scenes],
        }
        write = WriteJob(
            out_dir / VOXELS, out_dir / POINTS, features, options.label_rule, split_of, meta,
            held_out=_held_out(scenes, options), relabel=relabel,
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
        _survival(tally, names, relabel),
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
    if options.val_every is not None or options.region is not None:  # train, but held out
        return {scene.name: "train" for scene in scenes}
    if options.split is not None:
        return {scene.name: options.split for scene in scenes}
    if options.splits is None:
        return None
    missing = [scene.name for scene in scenes if scene.name not in options.splits]
    if missing:
        raise TinysegError(f"--splits: no split for scene {missing[0]!r} (scene = file stem)")
    return {scene.name: options.splits[scene.name] for scene in scenes}


REGION_SIDES = ("west", "east", "south", "north")


def _held_out(scenes: list[Scene], options: VoxelizeOptions) -> dict[str, frozenset[int]] | None:
    """Per scene, the tiles that validate: ids that are multiples of --val-every, or the
    columns (rows) of tiles on the --region side, a share of the scan's extent."""
    if options.val_every is None and options.region is None:
        return None
    held = {}
    for scene in scenes:
        grid = scene.grid
        ids = np.arange(grid.nx * grid.ny)
        if options.val_every is not None:
            held[scene.name] = frozenset(ids[ids % options.val_every == 0].tolist())
            continue
        assert options.region is not None
        side, share = options.region
        across = grid.nx if side in ("west", "east") else grid.ny
        position = ids % grid.nx if side in ("west", "east") else ids // grid.nx
        count = round(share * across)
        if across < 2 or not 1 <= count < across:
            raise TinysegError(
                f"{scene.info.path}: --region {side}:{share:g} of {across} tile(s) across "
                f"holds out {count}: it needs at least one tile on each side (a smaller --tile?)"
            )
        chosen = position >= across - count if side in ("east", "north") else position < count
        held[scene.name] = frozenset(ids[chosen].tolist())
    return held


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


def _check_kept(label_map: LabelMap | None, tally: ClassTally) -> None:
    """A --label-map that keeps no point would write a table of ignored voxels only."""
    if label_map is None or (tally.code_hits is not None and tally.code_hits.any()):
        return
    seen = sorted(tally.codes_seen)
    shown = ", ".join(f"{code} ({asprs_name(code)})" for code in seen[:12])
    more = f" and {len(seen) - 12} more" if len(seen) > 12 else ""
    raise TinysegError(
        f"--label-map keeps no point: it maps codes "
        f"{', '.join(str(c) for c in label_map.codes.tolist())}, the input holds {shown}{more}"
    )


def _asprs_labels(options: VoxelizeOptions, tally: ClassTally) -> LabelMap | None:
    """Without --label-map or --classes, a classification's codes become classes: those
    present, compacted to 0..K-1 in code order and named by the ASPRS standard; 0 and 1
    (never classified, unclassified) are ignored. A scan of only those has no classes."""
    if options.label_map is not None or options.class_map is not None:
        return None
    if options.label_dim != "classification":
        return None
    present = (np.flatnonzero(tally.points) + INT16[0]).tolist()
    classes = [code for code in present if code not in UNLABELLED_CODES and code != IGNORE]
    indices = [classes.index(code) if code in classes else IGNORE for code in present]
    names = ClassMap(tuple(asprs_name(code) for code in classes)) if classes else None
    return LabelMap(np.asarray(present, np.int64), np.asarray(indices, np.int16), names)


def _relabel(asprs: LabelMap | None) -> np.ndarray | None:
    """label + 32768 → the label written, for the ASPRS classes (None: labels as read)."""
    if asprs is None:
        return None
    table = np.full(SLOTS, IGNORE, np.int16)
    table[asprs.codes - INT16[0]] = asprs.indices
    return table


def scene_unit(scene: Scene, options: VoxelizeOptions, warn: Callable[[str], None]) -> Unit | None:
    """The horizontal unit of a scene (its CRS, else --units); a unit other than the metre
    is named with the voxel and tile sizes in both units, as those are in the file's."""
    unit, stated = scene.info.unit, options.units
    if unit is not None and stated is not None and abs(unit.metres - stated.metres) > 1e-9:
        raise TinysegError(
            f"{scene.info.path}: its CRS says the unit is {unit.name} ({unit.metres:.7g} m), "
            f"--units says {stated.name} ({stated.metres:.7g} m)"
        )
    unit = unit or stated
    if unit is None or unit.is_metre:
        return unit
    if math.isnan(unit.metres):
        raise TinysegError(
            f"{scene.info.path}: geographic coordinates (degrees): voxelize needs a projected "
            "CRS in linear units (reproject the file, e.g. with PDAL)"
        )
    sizes = ", ".join(
        f"--{name} {value:g} = {value * unit.metres:.4g} m"
        for name, value in (("voxel", options.voxel), ("tile", options.tile))
    )
    warn(
        f"{scene.info.path}: coordinates are in {unit.name} ({unit.metres:.7g} m); sizes are in "
        f"the file's units: {sizes}"
    )
    return unit


def _class_names(options: VoxelizeOptions) -> ClassMap | None:
    if options.class_map is not None:
        return options.class_map
    return options.label_map.names if options.label_map is not None else None


def _parameters(
    options: VoxelizeOptions,
    features: tuple[str, ...],
    ranks: ClassRanks,
    shard_by: str | None,
    label_map: LabelMap | None,
    relabel: np.ndarray | None,
) -> dict[str, Any]:
    """The voxelization parameters stored in both tables, so later steps can map back."""
    part = options.shard
    rarest = ranks.labels if relabel is None else written_labels(ranks.labels, relabel)
    asprs = relabel is not None
    return {
        "voxel": options.voxel,
        "tile": options.tile,
        "stride": options.step,
        "min_points": options.min_points,
        "features": list(features),
        "label_dim": options.label_dim,
        "label_map": None if label_map is None else label_map.to_metadata(),
        "labels_from": "asprs" if asprs else "label_map" if label_map else "codes",
        "unclassified": asprs and label_map is not None and label_map.names is None,
        "label_rule": options.label_rule,
        "rarest_first": [int(v) for v in rarest if v != IGNORE],
        "ignore_index": IGNORE,
        "shard": None if part == (0, 1) else f"{part[0]}/{part[1]}",
        "shard_by": shard_by,
        "split": options.split,
        "val_every": options.val_every,
        "region": None if options.region is None else "{}:{:g}".format(*options.region),
    }


def _scene_record(scene: Scene, out_dir: Path, unit: Unit | None) -> dict[str, Any]:
    """A scene's source file (relative to the tables, SPEC §3), unit and tile grid."""
    source = os.path.relpath(scene.info.path.resolve(), out_dir.resolve())
    return {
        "scene": scene.name,
        "source": source,
        "points": scene.info.point_count,
        "unit": None if unit is None else {"name": unit.name, "metres": unit.metres},
        **scene.grid.to_metadata(),
    }


def _survival(
    tally: ClassTally, names: ClassMap | None, relabel: np.ndarray | None
) -> list[ClassSurvival]:
    rows = []
    for slot in np.flatnonzero(tally.points | tally.members).tolist():
        code = slot + INT16[0]
        label = code if relabel is None else int(relabel[slot])
        name = "(ignored)" if label == IGNORE else names.name(label) if names else str(label)
        rows.append(
            ClassSurvival(
                label,
                code,
                name,
                int(tally.points[slot]),
                int(tally.voxels[slot]),
                int(tally.members[slot]),
                int(tally.kept[slot]),
            )
        )
    return rows

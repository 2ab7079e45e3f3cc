"""The two passes of ``voxelize``: spill every chunk's points to per-tile partitions on disk
(and count the classes of the whole input), then aggregate and write one tile at a time.
Memory holds one chunk in the first pass and one tile in the second, whatever the file size."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tinyseg_cli.commands.voxelize.aggregate import TileVoxels, aggregate_tile
from tinyseg_cli.commands.voxelize.labels import SLOTS, ClassRanks, label_counts
from tinyseg_cli.commands.voxelize.output import (
    POINT_DELTA,
    POINT_SCHEMA,
    constant_strings,
    voxel_schema,
)
from tinyseg_cli.commands.voxelize.pipeline import ordered_map, prefetch
from tinyseg_cli.commands.voxelize.reader import XYZ, PointChunk, Scene, read_points
from tinyseg_cli.commands.voxelize.spill import TileSpill
from tinyseg_cli.commands.voxelize.tiles import TileGrid, memberships
from tinyseg_cli.io.label_map import INT16, LabelMap
from tinyseg_cli.io.table_stream import table_stream
from tinyseg_cli.runtime.parallel import default_jobs

Progress = Callable[[str, int], AbstractContextManager[Callable[[Any], None]]]


@contextlib.contextmanager
def no_progress(_description: str, _total: int) -> Iterator[Callable[[Any], None]]:
    yield lambda _item: None


@dataclass
class ClassTally:
    """Per int16 label value: input points, (point, tile) memberships, voxels, kept members."""

    points: np.ndarray = field(default_factory=lambda: np.zeros(SLOTS, np.int64))
    members: np.ndarray = field(default_factory=lambda: np.zeros(SLOTS, np.int64))
    voxels: np.ndarray = field(default_factory=lambda: np.zeros(SLOTS, np.int64))
    kept: np.ndarray = field(default_factory=lambda: np.zeros(SLOTS, np.int64))
    code_hits: np.ndarray | None = None
    codes_seen: set[int] = field(default_factory=set)  # with a label map: the input's codes

    def add_chunk(self, points: np.ndarray, members: np.ndarray, chunk: PointChunk) -> None:
        self.points += points
        self.members += members
        hits = chunk.code_hits
        if hits is not None:
            self.code_hits = hits if self.code_hits is None else self.code_hits + hits
        if chunk.codes is not None:
            self.codes_seen.update(chunk.codes.tolist())


@dataclass(frozen=True)
class SpillJob:
    """What the first pass needs besides the scenes."""

    chunk_size: int
    label_dim: str
    label_map: LabelMap | None
    n_classes: int | None  # labels checked against the class map when known
    features: tuple[str, ...]
    tile_shard: tuple[int, int] | None  # keep tiles with id % N == K


@dataclass(frozen=True)
class ChunkRecords:
    """One chunk's (point, tile) records, sorted by tile, and its class counts."""

    chunk: PointChunk
    tiles: np.ndarray
    records: np.ndarray
    point_counts: np.ndarray
    member_counts: np.ndarray


def chunk_records(
    chunk: PointChunk, grid: TileGrid, job: SpillJob, dtype: np.dtype
) -> ChunkRecords:
    """The spill records of one chunk: its points in every tile (of this shard) holding them."""
    member = memberships(chunk.xyz, grid)
    point, tile, offset, key = member.point, member.tile, member.offset, member.key
    if job.tile_shard is not None:
        mine = np.flatnonzero(tile % job.tile_shard[1] == job.tile_shard[0])
        point, tile, key = point[mine], tile[mine], key[mine]
        offset = (offset[0][mine], offset[1][mine], offset[2][mine])
    records = np.empty(len(point), dtype)
    records["point"] = chunk.start + point
    records["key"] = key
    records["label"] = chunk.labels[point]
    features = records["features"]
    xyz_columns = [k for k, name in enumerate(XYZ) if name in job.features]
    for column, axis in enumerate(xyz_columns):
        features[:, column] = offset[axis]
    features[:, len(xyz_columns) :] = chunk.attributes[point]
    return ChunkRecords(
        chunk, tile, records, label_counts(chunk.labels), label_counts(records["label"])
    )


def spill_points(
    scenes: list[Scene], job: SpillJob, spill: TileSpill, tally: ClassTally, progress: Progress
) -> None:
    """First pass: every point to each tile partition it belongs to; class counts of all.

    Chunks decode on one thread, their records are built on ``default_jobs()`` others and
    appended in chunk order here.
    """
    attributes = tuple(name for name in job.features if name not in XYZ)
    total = sum(-(-scene.info.point_count // job.chunk_size) for scene in scenes)
    with progress("reading points", total) as advance:
        for index, scene in enumerate(scenes):
            chunks = read_points(
                scene, job.chunk_size, job.label_dim, job.label_map, job.n_classes, attributes
            )
            build = partial(chunk_records, grid=scene.grid, job=job, dtype=spill.dtype)
            # closed at once on an error, so that the threads stop before the spill is removed
            with contextlib.closing(ordered_map(build, prefetch(chunks), default_jobs())) as built:
                for done in built:
                    tally.add_chunk(done.point_counts, done.member_counts, done.chunk)
                    spill.add(index, done.tiles, done.records)
                    advance(done)
    spill.flush()


@dataclass(frozen=True)
class WriteJob:
    """What the second pass needs besides the spilled records."""

    voxels_path: Path
    points_path: Path
    features: tuple[str, ...]
    rule: str
    split_of: dict[str, str] | None  # scene -> split; None: no split column
    metadata: dict[str, Any]
    # scene -> tiles held out as "val" (voxelize --val-every, --region); the rest keep split_of
    held_out: dict[str, frozenset[int]] | None = None
    # labels as written: relabel[label + 32768] (the ASPRS codes compacted to 0..K-1)
    relabel: np.ndarray | None = None

    def split(self, scene: str, tile: int) -> str:
        """The split of a tile's voxels (only with a split column)."""
        assert self.split_of is not None
        if self.held_out is not None and tile in self.held_out[scene]:
            return "val"
        return self.split_of[scene]


def written_labels(labels: np.ndarray, relabel: np.ndarray | None) -> np.ndarray:
    """Voxel labels as the table stores them (aggregation works on the input's labels)."""
    return labels if relabel is None else relabel[labels.astype(np.int64) - INT16[0]]


def write_tiles(
    scenes: list[Scene],
    tiles: list[tuple[int, int]],
    spill: TileSpill,
    ranks: ClassRanks,
    job: WriteJob,
    tally: ClassTally,
    progress: Progress,
) -> int:
    """Second pass: aggregate the kept tiles one at a time into the two tables; voxel count."""
    schema = voxel_schema(job.features, job.split_of is not None)

    def aggregate(at: tuple[int, int]) -> tuple[np.ndarray, TileVoxels]:
        records = spill.take(*at)
        keys = scenes[at[0]].grid.keys
        result = aggregate_tile(
            records["key"], records["label"], records["features"], ranks, job.rule, keys
        )
        return records, result

    row = 0
    with (
        table_stream(job.voxels_path, schema, job.metadata) as voxel_table,
        table_stream(job.points_path, POINT_SCHEMA, job.metadata, POINT_DELTA) as point_table,
        progress("voxelizing tiles", len(tiles)) as advance,
        contextlib.closing(ordered_map(aggregate, tiles, default_jobs())) as done,
    ):
        for (scene_index, tile), (records, result) in zip(tiles, done, strict=True):
            scene = scenes[scene_index].name
            size = len(result.label)
            columns: dict[str, Any] = {
                "scene": constant_strings(scene, size),
                "tile": np.full(size, tile, np.int32),
                "label": written_labels(result.label, job.relabel),
                "n_points": result.n_points,
                **{axis: result.voxel[:, k] for k, axis in enumerate(("vx", "vy", "vz"))},
                **{name: result.features[:, k] for k, name in enumerate(job.features)},
            }
            if job.split_of is not None:
                columns["split"] = constant_strings(job.split(scene, tile), size)
            voxel_table.append(columns)
            point_table.append(
                {
                    "scene": constant_strings(scene, len(records)),
                    "point_index": records["point"],
                    "tile": np.full(len(records), tile, np.int32),
                    "voxel_row": row + result.record_voxel,
                }
            )
            labels = records["label"]
            tally.voxels += label_counts(result.label)
            tally.kept += label_counts(labels[labels == result.label[result.record_voxel]])
            row += size
            advance(tile)
    return row

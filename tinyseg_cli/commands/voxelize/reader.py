"""Input side of ``voxelize``: every LAS/LAZ header validated before any point is read, then
chunks of points checked (finite coordinates inside the header box) and turned into labels and
the feature columns asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyseg_cli.commands.voxelize.tiles import TileGrid
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.label_map import LabelMap, point_labels
from tinyseg_cli.io.las import RGB, LasInfo, iter_chunks, read_header, require_dimension
from tinyseg_cli.io.paths import check_storable

XYZ = ("x", "y", "z")
FEATURE_GROUPS = {"xyz": XYZ, "rgb": RGB, "intensity": ("intensity",)}
FEATURES = (*XYZ, *RGB, "intensity")  # column order of the voxel table


@dataclass(frozen=True)
class Scene:
    """One input file: its scene name (the file stem), header and tile grid."""

    name: str
    info: LasInfo
    grid: TileGrid

    @property
    def sample_id(self) -> str:  # for runtime.parallel.shard
        return self.name


@dataclass(frozen=True)
class PointChunk:
    """Checked points of a chunk: coordinates, int16 labels and the non-xyz features."""

    start: int
    xyz: np.ndarray  # (n, 3) float64
    labels: np.ndarray  # (n,) int16
    attributes: np.ndarray  # (n, k) float32: RGB, intensity as asked
    code_hits: np.ndarray | None  # points per label-map code
    codes: np.ndarray | None = None  # with a label map: the distinct codes of the chunk


def parse_features(spec: str) -> tuple[str, ...]:
    """``--features``: groups (xyz, rgb, intensity) or single columns, in table order."""
    chosen: set[str] = set()
    for item in (part.strip().lower() for part in spec.split(",")):
        if item in FEATURE_GROUPS:
            chosen.update(FEATURE_GROUPS[item])
        elif item in FEATURES:
            chosen.add(item)
        else:
            raise TinysegError(
                f"--features: unknown feature {item!r} (choose from xyz, rgb, intensity, "
                f"{', '.join(FEATURES)})"
            )
    return tuple(name for name in FEATURES if name in chosen)


def open_scenes(
    paths: list[str], tile: float, stride: float, voxel: float, label_dim: str
) -> list[Scene]:
    """Headers of every input, checked before any work: readable, the label dimension
    present, unique scene names."""
    scenes: dict[str, Scene] = {}
    for path in paths:
        check_storable(Path(path).stem, str(path), "scene names")
        info = read_header(path)
        require_dimension(info, label_dim, "the labels")
        name = info.path.stem
        if name in scenes:
            raise TinysegError(
                f"{info.path}: scene name {name!r} (the file stem) is also "
                f"{scenes[name].info.path}; rename one"
            )
        grid = TileGrid.for_bounds(info.mins, info.maxs, tile, stride, voxel)
        scenes[name] = Scene(name, info, grid)
    return [scenes[name] for name in sorted(scenes)]


def choose_features(
    requested: tuple[str, ...] | None, scenes: list[Scene], warn: Callable[[str], None]
) -> tuple[str, ...]:
    """The feature columns: those asked for (every input must have them), or by default every
    feature all inputs have."""

    def missing(name: str) -> list[Scene]:
        return [s for s in scenes if name not in XYZ and not s.info.has(name)]

    if requested is not None:
        for name in requested:
            if lacking := missing(name):
                raise TinysegError(f"{lacking[0].info.path}: no dimension {name!r} (--features)")
        return requested
    kept = tuple(name for name in FEATURES if not missing(name))
    partial = [n for n in FEATURES if n not in kept and any(s.info.has(n) for s in scenes)]
    if partial:
        warn(f"{', '.join(partial)} left out of the features: not every input has them")
    return kept


def read_points(
    scene: Scene,
    chunk_size: int,
    label_dim: str,
    label_map: LabelMap | None,
    n_classes: int | None,
    attributes: tuple[str, ...],
) -> Iterator[PointChunk]:
    """The points of one scene in chunks, checked and labelled."""
    info = scene.info
    low = np.asarray(info.mins) - scene.grid.voxel
    high = np.asarray(info.maxs) + scene.grid.voxel
    wanted = tuple(dict.fromkeys((label_dim, *attributes)))
    for chunk in iter_chunks(info, chunk_size, wanted, parallel=True):
        _check_coordinates(chunk.xyz, chunk.start, low, high, info)
        codes = chunk.dimensions[label_dim]
        labels, hits = point_labels(codes, label_map, n_classes, chunk.start, str(info.path))
        columns = np.empty((len(chunk), len(attributes)), np.float32)
        for k, name in enumerate(attributes):
            columns[:, k] = chunk.dimensions[name]
        seen = np.unique(codes) if label_map is not None else None
        yield PointChunk(chunk.start, chunk.xyz, labels, columns, hits, seen)


def _check_coordinates(
    xyz: np.ndarray, first: int, low: np.ndarray, high: np.ndarray, info: LasInfo
) -> None:
    inside = ((xyz >= low) & (xyz <= high)).all(axis=1)  # NaN compares False: outside too
    if inside.all():
        return
    at = int(np.argmin(inside))
    if not np.isfinite(xyz[at]).all():
        raise TinysegError(
            f"{info.path}: point {first + at}: coordinates are not finite "
            f"({', '.join(f'{v:g}' for v in xyz[at])})"
        )
    raise TinysegError(
        f"{info.path}: point {first + at} ({', '.join(f'{v:.3f}' for v in xyz[at])}) lies "
        "outside the header's bounds; the header is stale (rewrite the file, e.g. with "
        "PDAL or laspy, to update it)"
    )


def read_scene_splits(path: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """``--splits``: a table with columns scene and split -> {scene: split}."""
    from tinyseg_cli.io.tables import read_table

    table = read_table(path)
    missing = {"scene", "split"} - set(table.column_names)
    if missing:
        raise TinysegError(f"{path}: --splits needs columns scene and split (no {min(missing)})")
    out: dict[str, str] = {}
    rows = zip(table["scene"].to_pylist(), table["split"].to_pylist(), strict=True)
    for row, (scene, split) in enumerate(rows):
        if split not in allowed:
            raise TinysegError(f"{path}: row {row}: split {split!r} is not {'/'.join(allowed)}")
        if out.get(str(scene), split) != split:
            raise TinysegError(f"{path}: row {row}: scene {scene!r} is in two splits")
        out[str(scene)] = split
    return out

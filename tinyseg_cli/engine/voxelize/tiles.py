"""Square XY tiles of a scene (SPEC §4.4): tile (i, j) has its origin at
(x0 + i·stride, y0 + j·stride, z0) and covers [origin, origin + tile) in x and y; with
stride < tile, tiles overlap and a point belongs to each tile that covers it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyseg_cli.errors import TinysegError

MAX_COORDINATE = (1 << 31) - 1  # voxel indices are int32 (SPEC §3)


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one scene, laid from the header's minimum corner.

    Tiles start at the minimum corner and step by ``stride`` until the last one reaches past
    the maximum, so every point of the header's box is covered; a point outside the box (a
    stale header) goes to the nearest tile, with offsets outside [0, tile).
    """

    origin: tuple[float, float, float]
    tile: float
    stride: float
    voxel: float
    nx: int
    ny: int

    @classmethod
    def for_bounds(
        cls,
        mins: tuple[float, float, float],
        maxs: tuple[float, float, float],
        tile: float,
        stride: float,
        voxel: float,
    ) -> TileGrid:
        def count(extent: float) -> int:
            return 1 if extent < tile else math.floor((extent - tile) / stride) + 2

        grid = cls(mins, tile, stride, voxel, count(maxs[0] - mins[0]), count(maxs[1] - mins[1]))
        if max(maxs[2] - mins[2], tile) / voxel >= MAX_COORDINATE:
            raise TinysegError(f"--voxel {voxel} is too fine: voxel indices would overflow int32")
        return grid

    @property
    def reach(self) -> int:
        """How many tiles along one axis can cover one point."""
        return math.ceil(self.tile / self.stride)

    def tile_origin(self, tile_id: int) -> tuple[float, float, float]:
        i, j = tile_id % self.nx, tile_id // self.nx
        return (
            self.origin[0] + i * self.stride,
            self.origin[1] + j * self.stride,
            self.origin[2],
        )

    def to_metadata(self) -> dict[str, object]:
        return {"origin": list(self.origin), "tiles_x": self.nx, "tiles_y": self.ny}


@dataclass(frozen=True)
class Memberships:
    """(point, tile) pairs of a chunk, ordered by tile then point."""

    point: np.ndarray  # (m,) int64, row in the chunk
    tile: np.ndarray  # (m,) int64
    voxel: np.ndarray  # (m, 3) int32, floor((p - tile origin) / voxel)
    offset: np.ndarray  # (m, 3) float32, p - tile origin


def _last_tile(offset: np.ndarray, grid: TileGrid, count: int) -> np.ndarray:
    """Along one axis, the last tile whose origin is at or before the point (the nearest
    tile for points beyond the header box)."""
    return np.floor(offset / grid.stride).astype(np.int64).clip(0, count - 1)


def _overlapping(
    relative: np.ndarray, last_x: np.ndarray, last_y: np.ndarray, grid: TileGrid
) -> tuple[np.ndarray, np.ndarray]:
    """(point, tile) pairs when tiles overlap, ordered by tile then point."""
    points, tiles = [], []
    for back_x in range(grid.reach):
        ix = last_x - back_x
        in_x = (ix >= 0) & (relative[:, 0] - ix * grid.stride < grid.tile) | (back_x == 0)
        for back_y in range(grid.reach):
            iy = last_y - back_y
            in_y = (iy >= 0) & (relative[:, 1] - iy * grid.stride < grid.tile) | (back_y == 0)
            rows = np.flatnonzero(in_x & in_y)
            points.append(rows)
            tiles.append(iy[rows] * grid.nx + ix[rows])
    point, tile = np.concatenate(points), np.concatenate(tiles)
    order = np.argsort(tile * len(relative) + point)  # unique keys: the one stable order
    return point[order], tile[order]


def memberships(xyz: np.ndarray, grid: TileGrid) -> Memberships:
    """Every tile each point of ``xyz`` belongs to, with its voxel and offset in that tile.

    Pairs are ordered by tile, then point: the spill order, hence the output, must not
    depend on how the file was cut into chunks.
    """
    relative = xyz - np.asarray(grid.origin)
    last_x = _last_tile(relative[:, 0], grid, grid.nx)
    last_y = _last_tile(relative[:, 1], grid, grid.ny)
    if grid.reach > 1:
        point, tile = _overlapping(relative, last_x, last_y, grid)
    else:  # no overlap: one tile per point; a stable sort by tile keeps the points in order
        tile = last_y * grid.nx + last_x
        small = np.int16 if grid.nx * grid.ny <= np.iinfo(np.int16).max else np.int64
        point = np.argsort(tile.astype(small), kind="stable")  # a radix sort for int16
        tile = tile[point]
    offset = relative[point]
    offset[:, 0] -= (tile % grid.nx) * grid.stride
    offset[:, 1] -= (tile // grid.nx) * grid.stride
    voxel = np.floor(offset / grid.voxel).astype(np.int32)
    return Memberships(point, tile, voxel, offset.astype(np.float32))

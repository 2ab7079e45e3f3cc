"""Square XY tiles of a scene (SPEC §4.4): tile (i, j) has its origin at
(x0 + i·stride, y0 + j·stride, z0) and covers [origin, origin + tile) in x and y; with
stride < tile, tiles overlap and a point belongs to each tile that covers it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyseg_cli.errors import TinysegError

MAX_COORDINATE = (1 << 31) - 1  # voxel indices are int32 (SPEC §3)
MARGIN = 2  # voxels beyond a tile's nominal range on each side (points up to one voxel
# outside the header box are accepted, and floor() may round onto the next index)
KEY_BITS = 63 - 17  # room left in an int64 key for a class slot (at most 65,537 slots)


@dataclass(frozen=True)
class VoxelKeys:
    """A tile's voxel indices packed into one int64, ((vx·ny + vy)·nz + vz) over the ranges
    every tile of the scene can hold, so keys sort as (vx, vy, vz) and one integer sort
    groups a tile's points by voxel (shared/notes/sparse-3d-measurements.md)."""

    low: tuple[int, int, int]
    span: tuple[int, int, int]

    @property
    def bits(self) -> int:
        return (self.span[0] * self.span[1] * self.span[2] - 1).bit_length()

    def pack(self, vx: np.ndarray, vy: np.ndarray, vz: np.ndarray) -> np.ndarray:
        """Voxel indices per axis (integers, or floats holding them) -> (m,) int64 keys."""
        shifted = []
        for axis, values in enumerate((vx, vy, vz)):
            low, high = self.low[axis], self.low[axis] + self.span[axis] - 1
            if len(values) and (values.min() < low or values.max() > high):
                # cannot happen for points the reader accepted; a wrong key would merge voxels
                raise TinysegError("internal error: a voxel index lies outside its tile's range")
            shifted.append(values.astype(np.int64) - low)
        key = shifted[0] * self.span[1]
        key += shifted[1]
        key *= self.span[2]
        key += shifted[2]
        return key

    def unpack(self, key: np.ndarray) -> np.ndarray:
        """(V,) keys -> (V, 3) int32 voxel indices."""
        rest, vz = np.divmod(key, self.span[2])
        vx, vy = np.divmod(rest, self.span[1])
        voxel = np.empty((len(key), 3), np.int32)
        voxel[:, 0], voxel[:, 1], voxel[:, 2] = vx, vy, vz
        voxel += np.asarray(self.low, np.int32)
        return voxel


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
    height: float  # of the header box, metres

    @property
    def keys(self) -> VoxelKeys:
        across = math.ceil(self.tile / self.voxel) + 2 * MARGIN
        up = math.ceil(self.height / self.voxel) + 2 * MARGIN
        return VoxelKeys((-MARGIN, -MARGIN, -MARGIN), (across, across, up))

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

        height = maxs[2] - mins[2]
        nx, ny = count(maxs[0] - mins[0]), count(maxs[1] - mins[1])
        if max(height, tile) / voxel >= MAX_COORDINATE:
            raise TinysegError(f"--voxel {voxel} is too fine: voxel indices would overflow int32")
        grid = cls(mins, tile, stride, voxel, nx, ny, height)
        if grid.keys.bits > KEY_BITS:
            raise TinysegError(
                f"--voxel {voxel} is too fine for --tile {tile:g} over a height of {height:g} m: "
                f"a tile would span {list(grid.keys.span)} voxels, too many to index; raise "
                "--voxel or lower --tile"
            )
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
    key: np.ndarray  # (m,) int64, the packed floor((p - tile origin) / voxel)
    offset: tuple[np.ndarray, np.ndarray, np.ndarray]  # (m,) float64 each: p - tile origin


def _last_tile(offset: np.ndarray, grid: TileGrid, count: int) -> np.ndarray:
    """Along one axis, the last tile whose origin is at or before the point (the nearest
    tile for points beyond the header box)."""
    return np.floor(offset / grid.stride).astype(np.int64).clip(0, count - 1)


def _overlapping(
    x: np.ndarray, y: np.ndarray, last_x: np.ndarray, last_y: np.ndarray, grid: TileGrid
) -> tuple[np.ndarray, np.ndarray]:
    """(point, tile) pairs when tiles overlap, ordered by tile then point."""
    points, tiles = [], []
    for back_x in range(grid.reach):
        ix = last_x - back_x
        in_x = (ix >= 0) & (x - ix * grid.stride < grid.tile) | (back_x == 0)
        for back_y in range(grid.reach):
            iy = last_y - back_y
            in_y = (iy >= 0) & (y - iy * grid.stride < grid.tile) | (back_y == 0)
            rows = np.flatnonzero(in_x & in_y)
            points.append(rows)
            tiles.append(iy[rows] * grid.nx + ix[rows])
    point, tile = np.concatenate(points), np.concatenate(tiles)
    order = np.argsort(tile * len(x) + point)  # unique keys: the one stable order
    return point[order], tile[order]


def memberships(xyz: np.ndarray, grid: TileGrid) -> Memberships:
    """Every tile each point of ``xyz`` belongs to, with its voxel and offset in that tile.

    Pairs are ordered by tile, then point: the spill order, hence the output, must not
    depend on how the file was cut into chunks. Axes are handled as separate contiguous
    columns: on (n, 3) arrays every step strides, at twice the time.
    """
    x = xyz[:, 0] - grid.origin[0]
    y = xyz[:, 1] - grid.origin[1]
    last_x = _last_tile(x, grid, grid.nx)
    last_y = _last_tile(y, grid, grid.ny)
    if grid.reach > 1:
        point, tile = _overlapping(x, y, last_x, last_y, grid)
        ix, iy = tile % grid.nx, tile // grid.nx
    else:  # no overlap: one tile per point; a stable sort by tile keeps the points in order
        tile = last_y * grid.nx + last_x
        small = np.int16 if grid.nx * grid.ny <= np.iinfo(np.int16).max else np.int64
        point = np.argsort(tile.astype(small), kind="stable")  # a radix sort for int16
        tile, ix, iy = tile[point], last_x[point], last_y[point]
    x, y = x[point], y[point]
    z = xyz[point, 2] - grid.origin[2]
    x -= ix * grid.stride
    y -= iy * grid.stride
    key = grid.keys.pack(*(np.floor(axis / grid.voxel) for axis in (x, y, z)))
    return Memberships(point, tile, key, (x, y, z))

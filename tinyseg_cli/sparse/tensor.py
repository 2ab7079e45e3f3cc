"""The adapter's sparse tensor (SPEC §7.3): integer voxel coordinates shared by every layer
that keeps them, features that change from layer to layer.

A :class:`Geometry` holds the coordinates of one resolution level, the backend that convolves
over them and a cache of kernel maps, so the second submanifold convolution of a block reuses
the first one's map, and a transposed convolution reuses the map of the strided convolution
that made its input. A :class:`SparseTensor` is a geometry plus features (N, C).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tinyseg_cli.errors import TinysegError

INT64_LIMIT = 2**62  # packed keys stay below this, so key arithmetic never overflows


class Packing:
    """Packs (batch, x, y, z) into one int64 key over the bounding box of some coordinates.

    Keys order sites by batch, then x, y, z, so sorting keys sorts sites. A query outside the
    box matches no site, so neighbour offsets never need padding.
    """

    def __init__(self, coords: torch.Tensor, batch: torch.Tensor):
        n = coords.shape[0]
        lo = coords.min(0).values if n else torch.zeros(3, dtype=coords.dtype)
        hi = coords.max(0).values if n else torch.zeros(3, dtype=coords.dtype)
        self.lo = lo.to(torch.int64)
        self.span = (hi.to(torch.int64) - self.lo + 1).tolist()
        self.batches = int(batch.max()) + 1 if n else 1
        volume = self.batches * self.span[0] * self.span[1] * self.span[2]
        if volume >= INT64_LIMIT:
            raise TinysegError(
                f"sparse tensor: coordinate box {self.span} × {self.batches} batches is too "
                "large to index (quantise more coarsely or split into tiles)"
            )

    def keys(self, coords: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys of ``coords`` (int64) and a mask of the rows inside the box (keys of the rest
        are meaningless)."""
        local = coords.to(torch.int64) - self.lo.to(coords.device)
        span = torch.tensor(self.span, dtype=torch.int64, device=coords.device)
        inside = ((local >= 0) & (local < span)).all(1)
        local = local.clamp_min(0)
        key = batch.to(torch.int64)
        for axis in range(3):
            key = key * self.span[axis] + local[:, axis]
        return key, inside

    def unpack(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates (int32) and batch indices (int32) of ``keys``."""
        columns = []
        rest = keys
        for axis in (2, 1, 0):
            columns.append(rest % self.span[axis])
            rest = rest // self.span[axis]
        coords = torch.stack(columns[::-1], 1) + self.lo.to(keys.device)
        return coords.to(torch.int32), rest.to(torch.int32)


@dataclass(eq=False)
class Geometry:
    """Active sites of one resolution level: ``coords`` (N, 3) int32 ≥ 0 in this level's own
    grid units, ``batch`` (N,) int32, ``stride`` (1, 2, 4 … relative to the input grid) and the
    ``backend`` that convolves over them. Sites are sorted by (batch, x, y, z)."""

    coords: torch.Tensor
    batch: torch.Tensor
    backend: str
    stride: int = 1
    maps: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.packing = Packing(self.coords, self.batch)
        self.sorted_keys, _ = self.packing.keys(self.coords, self.batch)

    @property
    def n(self) -> int:
        """Number of active sites."""
        return int(self.coords.shape[0])

    @property
    def device(self) -> torch.device:
        return self.coords.device

    def find(self, coords: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Row of each queried site in this geometry, −1 where it is not active."""
        keys, inside = self.packing.keys(coords, batch)
        pos = torch.searchsorted(self.sorted_keys, keys).clamp_max(max(self.n - 1, 0))
        if self.n == 0:
            return torch.full_like(keys, -1)
        found = inside & (self.sorted_keys[pos] == keys)
        return torch.where(found, pos, torch.full_like(pos, -1))

    def cached(self, key: tuple[Any, ...], build: Any) -> Any:
        """The map stored under ``key``, built by ``build()`` on first use."""
        if key not in self.maps:
            self.maps[key] = build()
        return self.maps[key]


def make_geometry(
    coords: torch.Tensor, batch: torch.Tensor, backend: str, stride: int = 1
) -> tuple[Geometry, torch.Tensor]:
    """A geometry of unique, sorted sites and, for each input row, its row in the geometry.

    Raises a one-line error for coordinates that are not N×3 non-negative integers or a batch
    index of the wrong length.
    """
    if coords.dim() != 2 or coords.shape[1] != 3:
        raise TinysegError(f"sparse tensor: coordinates: expected N×3, found {tuple(coords.shape)}")
    if coords.dtype.is_floating_point or coords.dtype == torch.bool:
        raise TinysegError(f"sparse tensor: coordinates: expected integers, found {coords.dtype}")
    if batch.shape != (coords.shape[0],):
        raise TinysegError(
            f"sparse tensor: batch index: expected {coords.shape[0]} entries, found "
            f"{tuple(batch.shape)}"
        )
    if coords.numel() and (int(coords.min()) < 0 or int(batch.min()) < 0):
        raise TinysegError("sparse tensor: coordinates and batch indices must be non-negative")
    coords = coords.to(torch.int32)
    batch = batch.to(torch.int32)
    packing = Packing(coords, batch)
    keys, _ = packing.keys(coords, batch)
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    sorted_coords, sorted_batch = packing.unpack(unique)
    return Geometry(sorted_coords, sorted_batch, backend, stride), inverse


class SparseTensor:
    """Features (N, C) on the active sites of a :class:`Geometry`."""

    def __init__(self, features: torch.Tensor, geometry: Geometry):
        if features.dim() != 2 or features.shape[0] != geometry.n:
            raise TinysegError(
                f"sparse tensor: features: expected {geometry.n}×C, found {tuple(features.shape)}"
            )
        self.features = features
        self.geometry = geometry

    @classmethod
    def from_points(
        cls,
        coords: torch.Tensor,
        features: torch.Tensor,
        batch: torch.Tensor | None = None,
        backend: str = "auto",
    ) -> SparseTensor:
        """A tensor from voxel coordinates (N, 3), features (N, C) and a batch index (N,)
        (zeros when omitted). Rows must be unique sites; they are reordered by (batch, x, y, z):
        use :meth:`order` to map per-row values onto the tensor."""
        from tinyseg_cli.sparse.backends import resolve_backend

        if batch is None:
            batch = torch.zeros(coords.shape[0], dtype=torch.int32, device=coords.device)
        name = resolve_backend(backend, features.device)
        geometry, inverse = make_geometry(
            coords.to(features.device), batch.to(features.device), name
        )
        if geometry.n != coords.shape[0]:
            raise TinysegError(
                f"sparse tensor: {coords.shape[0] - geometry.n} duplicate sites; expected one "
                "row per voxel"
            )
        order = torch.empty_like(inverse)
        order[inverse] = torch.arange(inverse.numel(), device=inverse.device)
        tensor = cls(features[order], geometry)
        tensor.order = order
        return tensor

    order: torch.Tensor | None = None  # input row of each site, set by from_points

    def replace(self, features: torch.Tensor) -> SparseTensor:
        """The same sites with new features."""
        return SparseTensor(features, self.geometry)

    @property
    def coords(self) -> torch.Tensor:
        return self.geometry.coords

    @property
    def batch(self) -> torch.Tensor:
        return self.geometry.batch

    @property
    def stride(self) -> int:
        return self.geometry.stride

    @property
    def backend(self) -> str:
        return self.geometry.backend

    def __repr__(self) -> str:
        return (
            f"SparseTensor(n={self.geometry.n}, channels={self.features.shape[1]}, "
            f"stride={self.stride}, backend={self.backend!r})"
        )

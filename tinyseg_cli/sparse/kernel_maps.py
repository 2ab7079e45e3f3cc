"""Kernel maps over hashed integer coordinates (SPEC §7.3), the `torch` backend's maps.

A kernel map lists, for every kernel offset k, the pairs (input row, output row) that the
weight slice ``W[k]`` connects. Offsets are numbered x-major over the cube of side ``kernel``
(k = (a·kernel + b)·kernel + c for the kernel position (a, b, c)), the order of a dense
``conv3d`` weight's last three axes, so ``W[k] = dense_weight[:, :, a, b, c].T``.

Within one offset every output row occurs at most once (a site has one neighbour in a given
direction), which is what makes the scatter in :mod:`tinyseg_cli.sparse.torch_backend`
deterministic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.sparse.tensor import Geometry, make_geometry

DOWN = ("down", 2, 1)  # cache key of the kernel-2 stride-2 map: (op, kernel, dilation)


@dataclass(eq=False)
class KernelMap:
    """Per-offset (input rows, output rows); ``None`` marks the identity (every row to
    itself, the centre of a submanifold kernel). ``n_in``/``n_out`` are the row counts;
    ``extras`` holds a backend's own form of the map, built once."""

    pairs: list[tuple[torch.Tensor, torch.Tensor] | None]
    n_in: int
    n_out: int
    extras: dict[str, Any] = field(default_factory=dict)

    def transposed(self) -> KernelMap:
        """The same connections read backwards (output rows become input rows)."""
        pairs = [None if p is None else (p[1], p[0]) for p in self.pairs]
        return KernelMap(pairs, self.n_out, self.n_in)


def kernel_positions(kernel: int) -> list[tuple[int, int, int]]:
    """Kernel positions (a, b, c) in weight order (x-major)."""
    return list(itertools.product(range(kernel), repeat=3))


def submanifold_map(geometry: Geometry, kernel: int, dilation: int) -> KernelMap:
    """Output site = input site; offset (a, b, c) reads the input at
    ``site + ((a, b, c) − kernel // 2) · dilation``, as dense ``conv3d`` with 'same' padding."""
    centre = kernel // 2
    rows = torch.arange(geometry.n, device=geometry.device)
    pairs: list[tuple[torch.Tensor, torch.Tensor] | None] = []
    for position in kernel_positions(kernel):
        if all(p == centre for p in position):
            pairs.append(None)
            continue
        delta = torch.tensor(
            [(p - centre) * dilation for p in position], dtype=torch.int32, device=geometry.device
        )
        found = geometry.find(geometry.coords + delta, geometry.batch)
        hit = found >= 0
        pairs.append((found[hit], rows[hit]))
    return KernelMap(pairs, geometry.n, geometry.n)


def downsample(fine: Geometry) -> tuple[Geometry, KernelMap]:
    """The kernel-2 stride-2 map: output sites are the unique ``floor(site / 2)``; a fine site
    feeds its parent through the offset ``site mod 2`` (dense ``conv3d(kernel 2, stride 2)``)."""
    coarse, parent = make_geometry(
        torch.div(fine.coords, 2, rounding_mode="floor"), fine.batch, fine.backend, fine.stride * 2
    )
    return coarse, _parent_map(fine, coarse.n, parent)


def _parent_map(fine: Geometry, n_coarse: int, parent: torch.Tensor) -> KernelMap:
    remainder = (fine.coords % 2).to(torch.int64)
    offset = (remainder[:, 0] * 2 + remainder[:, 1]) * 2 + remainder[:, 2]
    rows = torch.arange(fine.n, device=fine.device)
    pairs: list[tuple[torch.Tensor, torch.Tensor] | None] = []
    for k in range(8):
        chosen = offset == k
        pairs.append((rows[chosen], parent[chosen]))
    return KernelMap(pairs, fine.n, n_coarse)


def upsample_map(coarse: Geometry, fine: Geometry) -> KernelMap:
    """The kernel-2 stride-2 transposed map from ``coarse`` back onto ``fine``'s sites.

    Reuses the strided convolution's map when ``coarse`` was made from ``fine`` (whichever
    backend built it); otherwise looks every fine site's parent up in ``coarse`` and refuses
    when one is missing.
    """
    cached = fine.maps.get(DOWN)
    if cached is not None and cached[0] is coarse:
        return fine.cached(("up", coarse), cached[1].transposed)

    def build() -> KernelMap:
        if coarse.stride != fine.stride * 2:
            raise TinysegError(
                f"transposed convolution: expected an input of stride {fine.stride * 2} for "
                f"target sites of stride {fine.stride}, found stride {coarse.stride}"
            )
        parent = coarse.find(torch.div(fine.coords, 2, rounding_mode="floor"), fine.batch)
        missing = int((parent < 0).sum())
        if missing:
            raise TinysegError(
                f"transposed convolution: {missing} target sites have no parent site in the "
                "input (the target must be the encoder tensor the input was made from)"
            )
        return _parent_map(fine, coarse.n, parent).transposed()

    return fine.cached(("up", coarse), build)

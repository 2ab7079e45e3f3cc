"""The `torchsparse` backend (torchsparse v2.0, built from source: it is not on PyPI).

torchsparse builds the kernel maps: its coordinate hashing (``sphash``), hash-table lookup
(``sphashquery``), kernel offsets (``get_kernel_offsets``) and, for the strided
convolution, its choice of output sites (``spdownsample``), the steps of its own
``build_kernel_map`` minus the CUDA-only masks (the CPU build has no
``build_mask_from_kmap``, upstream issue 201, so these functions run unpatched). The maps
are read into the adapter's :class:`KernelMap` form with the adapter's site order and
kernel-position order, so tensors, weights and checkpoints are the same whatever the backend.
Every hit of the hash lookup is checked against the coordinates it should have found: the
hash is a 60-bit FNV, so a collision would otherwise connect the wrong sites silently.

Dilation is refused: torchsparse's kernel maps and ``conv3d`` ignore it (a dilation-2
convolution returns the dilation-1 result), so it fails the conformance test there.

The arithmetic is the `torch` backend's :class:`KernelMapConv` over these maps, on every
device. On CPU torchsparse's own conv kernels were about 5× slower (11.3 s against 2.4 s per
forward and backward on ~95 k voxels, one thread) and collapsed at 2 threads under load
(shared/notes/sparse-3d-measurements.md); for one 32-channel 3×3×3 layer on 94 k random
sites, 0.56 s against 0.07 s at 1 thread and 0.82 s against 0.04 s at 2. On CUDA its conv
(``ConvolutionFunction``) could not be tested against dense ``conv3d`` here (no GPU; the CPU
build lacks its CUDA kernels), and an untested path is not offered. The maps are built on
CPU and moved to the device.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.sparse import torch_backend
from tinyseg_cli.sparse.backends import check_dilation
from tinyseg_cli.sparse.kernel_maps import KernelMap
from tinyseg_cli.sparse.tensor import Geometry, make_geometry

__all__ = ["convolve", "downsample", "submanifold_map"]


def _library() -> tuple[ModuleType, Any]:
    """torchsparse's functional module and ``get_kernel_offsets``, imported without the
    FutureWarnings v2.0 raises for its ``torch.cuda.amp`` decorators."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="torchsparse")
        from torchsparse.nn import functional
        from torchsparse.nn.utils import get_kernel_offsets
    return functional, get_kernel_offsets


def _coords(geometry: Geometry) -> torch.Tensor:
    """torchsparse's (N, 4) int32 [x, y, z, batch] coordinates, on CPU."""
    return torch.cat([geometry.coords, geometry.batch[:, None]], 1).to("cpu", torch.int32)


def _lookup(
    queries: torch.Tensor, references: torch.Tensor, offsets: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per torchsparse offset k, (reference rows, query rows) where ``query + offsets[k]``
    is an active reference site."""
    F, _ = _library()
    found = F.sphashquery(F.sphash(queries, offsets), F.sphash(references))  # (K, N_query)
    hit = found >= 0
    shift = torch.cat([offsets, torch.zeros_like(offsets[:, :1])], 1)  # batch column unshifted
    expected = queries[None] + shift[:, None]
    wrong = hit & (references[found.clamp_min(0)] != expected).any(2)
    if bool(wrong.any()):
        raise TinysegError(
            f"sparse backend torchsparse: {int(wrong.sum())} hash collisions in a kernel map; "
            "use --sparse-backend torch or spconv"
        )
    rows = torch.arange(queries.shape[0])
    return [(found[k][hit[k]], rows[hit[k]]) for k in range(offsets.shape[0])]


def _positions(offsets: torch.Tensor, kernel: int) -> list[int]:
    """The adapter's kernel position (x-major) of each torchsparse offset; torchsparse orders
    odd kernels x-fastest, even ones x-major."""
    position = (offsets - offsets.min(0).values).tolist()
    return [(a * kernel + b) * kernel + c for a, b, c in position]


def _kernel_map(
    pairs: list[tuple[torch.Tensor, torch.Tensor]],
    offsets: torch.Tensor,
    kernel: int,
    n_in: int,
    n_out: int,
    device: torch.device,
) -> KernelMap:
    """A :class:`KernelMap` from per-offset pairs in torchsparse's offset order."""
    ordered: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * kernel**3
    for k, position in enumerate(_positions(offsets, kernel)):
        ordered[position] = (pairs[k][0].to(device), pairs[k][1].to(device))
    return KernelMap(ordered, n_in, n_out)


def submanifold_map(geometry: Geometry, kernel: int, dilation: int) -> KernelMap:
    """torchsparse's submanifold map; the centre offset becomes the identity."""
    check_dilation("torchsparse", dilation)
    _, get_kernel_offsets = _library()
    coords = _coords(geometry)
    offsets = get_kernel_offsets(kernel, stride=1, dilation=1)
    kmap = _kernel_map(
        _lookup(coords, coords, offsets), offsets, kernel, geometry.n, geometry.n, geometry.device
    )
    kmap.pairs[kernel**3 // 2] = None
    return kmap


def downsample(fine: Geometry) -> tuple[Geometry, KernelMap]:
    """torchsparse's kernel-2 stride-2 map; its output sites (``spdownsample``, in fine grid
    units) are renumbered in the adapter's sorted order."""
    F, get_kernel_offsets = _library()
    coords = _coords(fine)
    parents = F.spdownsample(coords, 2, 2, 1)
    offsets = get_kernel_offsets(2, stride=1, dilation=1)
    pairs = _lookup(parents, coords, offsets)
    device = fine.device
    coarse, row = make_geometry(
        torch.div(parents[:, :3], 2, rounding_mode="floor").to(device),
        parents[:, 3].to(device),
        fine.backend,
        fine.stride * 2,
    )
    row = row.cpu()
    kmap = _kernel_map(
        [(src, row[dst]) for src, dst in pairs], offsets, 2, fine.n, coarse.n, device
    )
    return coarse, kmap


def convolve(features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Output features of ``kmap`` (the `torch` backend's arithmetic: module docstring)."""
    return torch_backend.convolve(features, weight, kmap)

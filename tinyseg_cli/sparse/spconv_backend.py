"""The `spconv` backend (PyPI ``spconv``; the CPU build, or ``spconv-cu1xx`` on GPU machines).

spconv builds the kernel maps (its own hashing, its own choice of output sites for the
strided convolution); they are read into the adapter's :class:`KernelMap` form with the
adapter's site order, so tensors, weights and checkpoints are the same whatever the backend.

The arithmetic depends on the device:
- CUDA: spconv's own gather – GEMM – scatter (``SparseConvFunction``, native algorithm).
- CPU: the `torch` backend's :class:`KernelMapConv` over spconv's maps. spconv 2.3.8's CPU
  arithmetic is wrong in two ways (shared/notes/sparse-3d-measurements.md): its backward pass
  asks torch for the current CUDA stream unconditionally (``ops.indice_conv_backward``), so
  it fails without an NVIDIA driver, and ``SpconvOps.scatter_add_cpu`` lets OpenMP threads
  add into the same output rows, so sums race at 2 threads or more. Replacing exactly that
  part keeps spconv's maps in use (tested against dense ``conv3d`` by the conformance test)
  without touching spconv's globals or the process's thread count.
"""

from __future__ import annotations

import torch

from tinyseg_cli.sparse import torch_backend
from tinyseg_cli.sparse.kernel_maps import KernelMap, kernel_positions
from tinyseg_cli.sparse.tensor import Geometry, make_geometry


def _indices(geometry: Geometry) -> tuple[torch.Tensor, int, list[int]]:
    """spconv's (N, 4) [batch, x, y, z] indices, batch size and an even spatial shape (a
    stride-2 convolution of an odd extent would drop the last plane)."""
    indices = torch.cat([geometry.batch[:, None], geometry.coords], 1).to(torch.int32)
    top = geometry.coords.max(0).values.tolist() if geometry.n else [0, 0, 0]
    shape = [int(t) + 2 - int(t) % 2 for t in top]
    return indices.contiguous(), int(geometry.batch.max()) + 1 if geometry.n else 1, shape


def _read_pairs(pair: torch.Tensor, out_rows: torch.Tensor | None = None) -> list:
    """Per-offset (input rows, output rows) from spconv's (2, K, N) table padded with −1.

    The valid entries of each offset are counted rather than read from spconv's per-offset
    counts: its CPU submanifold generator leaves the counts of the second half of the kernel
    at zero and mirrors them from the first half."""
    pairs = []
    for k in range(pair.shape[1]):
        n = int((pair[0, k] >= 0).sum())
        src, dst = pair[0, k, :n].long(), pair[1, k, :n].long()
        pairs.append((src, dst if out_rows is None else out_rows[dst]))
    return pairs


def _get_pairs(
    geometry: Geometry, kernel: int, stride: int, dilation: int, subm: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """spconv's output indices and (2, K, N) pair table for one convolution."""
    from spconv.core import ConvAlgo
    from spconv.pytorch import ops

    indices, batch_size, shape = _indices(geometry)
    padding = kernel // 2 * dilation if subm else 0
    out, pair, _ = ops.get_indice_pairs(
        indices,
        batch_size,
        shape,
        ConvAlgo.Native,
        [kernel] * 3,
        [stride] * 3,
        [padding] * 3,
        [dilation] * 3,
        [0] * 3,
        subm=subm,
    )
    return out, pair


def submanifold_map(geometry: Geometry, kernel: int, dilation: int) -> KernelMap:
    """spconv's submanifold map; the centre offset becomes the identity."""
    _, pair = _get_pairs(geometry, kernel, 1, dilation, subm=True)
    pairs = _read_pairs(pair)
    pairs[len(kernel_positions(kernel)) // 2] = None
    return KernelMap(pairs, geometry.n, geometry.n)


def downsample(fine: Geometry) -> tuple[Geometry, KernelMap]:
    """spconv's kernel-2 stride-2 map; its output sites are renumbered in the adapter's
    sorted order."""
    out, pair = _get_pairs(fine, 2, 2, 1, subm=False)
    coarse, row = make_geometry(out[:, 1:], out[:, 0], fine.backend, fine.stride * 2)
    return coarse, KernelMap(_read_pairs(pair, row), fine.n, coarse.n)


def _pair_table(kmap: KernelMap, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The map as spconv's (2, K, N) int32 table padded with −1, and the per-offset counts."""
    rows = torch.arange(kmap.n_in, device=device)
    pairs = [(rows, rows) if p is None else p for p in kmap.pairs]
    width = max([1, *(int(p[0].numel()) for p in pairs)])
    table = torch.full((2, len(pairs), width), -1, dtype=torch.int32, device=device)
    for k, (src, dst) in enumerate(pairs):
        table[0, k, : src.numel()] = src.to(torch.int32)
        table[1, k, : dst.numel()] = dst.to(torch.int32)
    counts = torch.tensor([int(p[0].numel()) for p in pairs], dtype=torch.int32, device=device)
    return table, counts


def convolve(features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Output features of ``kmap`` (see the module docstring for who does the arithmetic)."""
    if features.device.type != "cuda":
        return torch_backend.convolve(features, weight, kmap)
    from spconv.core import ConvAlgo
    from spconv.pytorch.functional import SparseConvFunction

    if "spconv" not in kmap.extras:
        kmap.extras["spconv"] = _pair_table(kmap, features.device)
    table, counts = kmap.extras["spconv"]
    kernel_volume, c_in, c_out = weight.shape
    side = round(kernel_volume ** (1 / 3))
    # spconv's KRSC filter layout: (C_out, kx, ky, kz, C_in), kernel positions x-major as ours
    filters = weight.permute(2, 0, 1).reshape(c_out, side, side, side, c_in).contiguous()
    return SparseConvFunction.apply(
        features.contiguous(), filters, table, counts, kmap.n_out, ConvAlgo.Native
    )

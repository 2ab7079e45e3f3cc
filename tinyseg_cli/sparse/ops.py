"""The operations the sparse U-Net needs (SPEC §7.3), dispatched to the tensor's backend.

Weights have one layout for every backend: (K, C_in, C_out), K kernel positions x-major
(:mod:`tinyseg_cli.sparse.kernel_maps`), so a checkpoint moves between backends. For a dense
``conv3d`` weight ``w`` (C_out, C_in, k, k, k) that is ``w.flatten(2).permute(2, 1, 0)``; for a
``conv_transpose3d`` weight (C_in, C_out, 2, 2, 2) it is ``w.flatten(2).permute(2, 0, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.sparse.kernel_maps import DOWN, upsample_map
from tinyseg_cli.sparse.tensor import SparseTensor


def implementation(name: str) -> ModuleType:
    """The module of the resolved backend ``name``."""
    if name == "spconv":
        from tinyseg_cli.sparse import spconv_backend

        return spconv_backend
    if name == "torch":
        from tinyseg_cli.sparse import torch_backend

        return torch_backend
    if name == "torchsparse":
        from tinyseg_cli.sparse import torchsparse_backend

        return torchsparse_backend
    raise TinysegError(f"sparse backend: {name!r} is not a resolved backend")


def _check_weight(weight: torch.Tensor, volume: int, channels: int, what: str) -> None:
    if weight.dim() != 3 or weight.shape[0] != volume or weight.shape[1] != channels:
        raise TinysegError(
            f"{what}: expected a weight of shape ({volume}, {channels}, C_out), found "
            f"{tuple(weight.shape)}"
        )


def submanifold_conv(x: SparseTensor, weight: torch.Tensor, dilation: int = 1) -> SparseTensor:
    """Submanifold convolution (output sites = input sites) with an odd kernel of side
    ``round(K ** (1/3))`` and any dilation, as ``conv3d(padding=kernel // 2 · dilation)``
    read at the active sites."""
    kernel = round(weight.shape[0] ** (1 / 3))
    if kernel % 2 == 0 or dilation < 1:
        raise TinysegError(
            f"submanifold convolution: expected an odd kernel and dilation ≥ 1, found kernel "
            f"{kernel}, dilation {dilation}"
        )
    _check_weight(weight, kernel**3, x.features.shape[1], "submanifold convolution")
    backend = implementation(x.backend)
    kmap = x.geometry.cached(
        ("subm", kernel, dilation), lambda: backend.submanifold_map(x.geometry, kernel, dilation)
    )
    return x.replace(backend.convolve(x.features, weight, kmap))


def strided_conv(x: SparseTensor, weight: torch.Tensor) -> SparseTensor:
    """Kernel-2 stride-2 convolution onto the unique ``floor(site / 2)`` sites."""
    _check_weight(weight, 8, x.features.shape[1], "strided convolution")
    backend = implementation(x.backend)
    coarse, kmap = x.geometry.cached(DOWN, lambda: backend.downsample(x.geometry))
    return SparseTensor(backend.convolve(x.features, weight, kmap), coarse)


def transposed_conv(x: SparseTensor, weight: torch.Tensor, target: SparseTensor) -> SparseTensor:
    """Kernel-2 stride-2 transposed convolution from ``x`` back onto the sites of ``target``
    (the finer tensor ``x`` was made from, usually an encoder stage)."""
    _check_weight(weight, 8, x.features.shape[1], "transposed convolution")
    _same_backend(x, target, "transposed convolution")
    kmap = upsample_map(x.geometry, target.geometry)
    return SparseTensor(
        implementation(x.backend).convolve(x.features, weight, kmap), target.geometry
    )


def _same_backend(a: SparseTensor, b: SparseTensor, what: str) -> None:
    if a.backend != b.backend:
        raise TinysegError(f"{what}: tensors of backends {a.backend} and {b.backend}")


def _same_sites(a: SparseTensor, b: SparseTensor, what: str) -> None:
    if a.geometry is b.geometry:
        return
    _same_backend(a, b, what)
    if not (
        a.geometry.n == b.geometry.n
        and torch.equal(a.coords, b.coords)
        and torch.equal(a.batch, b.batch)
    ):
        raise TinysegError(f"{what}: expected tensors on identical sites, found different ones")


def cat(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    """Channel concatenation of two tensors on identical sites."""
    _same_sites(a, b, "concatenation")
    return a.replace(torch.cat([a.features, b.features], 1))


def add(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    """Element-wise sum of two tensors on identical sites (residual connections)."""
    _same_sites(a, b, "addition")
    return a.replace(a.features + b.features)


def map_features(x: SparseTensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> SparseTensor:
    """``fn`` applied to the features alone (batch norm, activation, linear layers)."""
    return x.replace(fn(x.features))

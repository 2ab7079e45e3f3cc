"""``torch.nn`` layers over :class:`SparseTensor` (SPEC §7.3). Their parameters have the same
names and shapes whatever the backend (weights (K, C_in, C_out), see :mod:`.ops`), so a
state dict trained with one backend loads into a network run with another."""

from __future__ import annotations

import math

import torch
from torch import nn

from tinyseg_cli.sparse import ops
from tinyseg_cli.sparse.tensor import SparseTensor

BN_MOMENTUM = 0.1
BN_EPS = 1e-3


class _SparseConv(nn.Module):
    """Weight (volume, C_in, C_out) and optional bias, initialised as ``nn.Conv3d`` does
    (uniform in ±1/√fan_in)."""

    def __init__(self, in_channels: int, out_channels: int, volume: int, bias: bool):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform initialisation in ±1/√(C_in · volume)."""
        bound = 1 / math.sqrt(self.weight.shape[0] * self.in_channels)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _biased(self, x: SparseTensor) -> SparseTensor:
        return x if self.bias is None else x.replace(x.features + self.bias)


class SubMConv3d(_SparseConv):
    """Submanifold convolution: odd ``kernel_size``, any ``dilation``; sites unchanged."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        bias: bool = False,
    ):
        super().__init__(in_channels, out_channels, kernel_size**3, bias)
        self.kernel_size, self.dilation = kernel_size, dilation

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Features of the same sites, ``out_channels`` wide."""
        return self._biased(ops.submanifold_conv(x, self.weight, self.dilation))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"dilation={self.dilation}, bias={self.bias is not None}"
        )


class DownConv3d(_SparseConv):
    """Kernel-2 stride-2 sparse convolution (halves the resolution)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__(in_channels, out_channels, 8, bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Features of the stride-2 sites ``floor(site / 2)``."""
        return self._biased(ops.strided_conv(x, self.weight))


class UpConv3d(_SparseConv):
    """Kernel-2 stride-2 transposed sparse convolution back onto a finer tensor's sites."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__(in_channels, out_channels, 8, bias)

    def forward(self, x: SparseTensor, target: SparseTensor) -> SparseTensor:
        """Features of ``target``'s sites."""
        return self._biased(ops.transposed_conv(x, self.weight, target))


class BatchNorm(nn.BatchNorm1d):
    """Batch norm over the features of every active site of the batch."""

    def __init__(self, channels: int, eps: float = BN_EPS, momentum: float = BN_MOMENTUM):
        super().__init__(channels, eps=eps, momentum=momentum)

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        """Normalised features, same sites."""
        return x.replace(super().forward(x.features))


class ReLU(nn.Module):
    """ReLU of the features."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Rectified features, same sites."""
        return x.replace(torch.relu(x.features))


class Linear(nn.Linear):
    """A point-wise (1×1×1) layer over the features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        """Transformed features, same sites."""
        return x.replace(super().forward(x.features))

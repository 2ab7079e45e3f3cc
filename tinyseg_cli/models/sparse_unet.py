"""The sparse 3D U-Net with an optional ASPP bridge (SPEC §7.3), built from the layers of
:mod:`tinyseg_cli.sparse`, so it runs on every sparse backend with one set of weights.

Choices the SPEC leaves open, made here once:
- a stem (submanifold 3×3×3 convolution + BN + ReLU) lifts the input features to the first
  width; stage i then works at ``channels[i]`` and stride 2^i, the last width is the bridge's;
- residual blocks are two submanifold convolutions with BN, ReLU after the first and after the
  sum; the shortcut is the identity, or a point-wise layer + BN where the width changes;
- strided and transposed convolutions are followed by BN + ReLU; no convolution followed by
  BN has a bias;
- an ASPP branch is one residual block with dilated convolutions (the dilation in cells of
  the bridge's own grid); the branches are concatenated and fused by a 1×1×1 layer + BN +
  ReLU;
- the head is a point-wise MLP (linear, BN, ReLU, linear with bias) to the class logits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.sparse import (
    BatchNorm,
    DownConv3d,
    Linear,
    ReLU,
    SparseTensor,
    SubMConv3d,
    UpConv3d,
    add,
    cat,
    resolve_backend,
)

DEFAULT_CHANNELS = (32, 64, 128, 256)
DEFAULT_DILATIONS = (6, 12, 18)


class ResidualBlock(nn.Module):
    """Two submanifold 3×3×3 convolutions with BN and ReLU, plus a shortcut."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = SubMConv3d(in_channels, out_channels, 3, dilation)
        self.norm1 = BatchNorm(out_channels)
        self.conv2 = SubMConv3d(out_channels, out_channels, 3, dilation)
        self.norm2 = BatchNorm(out_channels)
        self.relu = ReLU()
        self.shortcut = (
            None
            if in_channels == out_channels
            else nn.Sequential(
                Linear(in_channels, out_channels, bias=False), BatchNorm(out_channels)
            )
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Same sites, ``out_channels`` features."""
        y = self.norm2(self.conv2(self.relu(self.norm1(self.conv1(x)))))
        return self.relu(add(y, x if self.shortcut is None else self.shortcut(x)))


def _conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, BatchNorm(channels), ReLU())


class ASPP(nn.Module):
    """Parallel residual branches with dilated submanifold convolutions, concatenated and
    fused by a point-wise layer."""

    def __init__(self, channels: int, dilations: Sequence[int] = DEFAULT_DILATIONS):
        super().__init__()
        self.branches = nn.ModuleList(ResidualBlock(channels, channels, d) for d in dilations)
        self.fuse = nn.Sequential(
            Linear(channels * len(dilations), channels, bias=False), BatchNorm(channels), ReLU()
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Same sites and width."""
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = cat(out, branch(x))
        return self.fuse(out)


class SparseUNet(nn.Module):
    """Sparse U-Net: ``len(channels) − 1`` encoder stages, a bridge (ASPP or a residual block),
    mirrored decoder stages and a point-wise head; logits (N, n_classes) per input voxel."""

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        aspp: bool = True,
        aspp_dilations: Sequence[int] = DEFAULT_DILATIONS,
        backend: str = "auto",
    ):
        super().__init__()
        channels = tuple(channels)
        if len(channels) < 2 or min(channels) < 1 or (aspp and not aspp_dilations):
            raise TinysegError(
                f"sparse-unet: expected at least two positive channel widths and, with ASPP, "
                f"one dilation; found channels {channels}, dilations {tuple(aspp_dilations)}"
            )
        self.backend = backend
        self.stem = _conv_bn_relu(SubMConv3d(in_channels, channels[0]), channels[0])
        self.encoder = nn.ModuleList(ResidualBlock(c, c) for c in channels[:-1])
        self.down = nn.ModuleList(
            _conv_bn_relu(DownConv3d(a, b), b) for a, b in itertools.pairwise(channels)
        )
        top = channels[-1]
        self.bridge = ASPP(top, aspp_dilations) if aspp else ResidualBlock(top, top)
        self.up = nn.ModuleList(UpConv3d(b, a) for a, b in itertools.pairwise(channels))
        self.up_norm = nn.ModuleList(nn.Sequential(BatchNorm(c), ReLU()) for c in channels[:-1])
        self.decoder = nn.ModuleList(ResidualBlock(2 * c, c) for c in channels[:-1])
        width = channels[0]
        self.head = nn.Sequential(
            Linear(width, width, bias=False), BatchNorm(width), ReLU(), Linear(width, n_classes)
        )

    def forward(self, x: SparseTensor) -> torch.Tensor:
        """Logits (N, n_classes), one row per site of ``x`` in ``x``'s order."""
        wanted = resolve_backend(self.backend, x.features.device)
        if wanted != x.backend:
            raise TinysegError(
                f"sparse-unet: the input tensor uses backend {x.backend}, the network {wanted}; "
                "build the input with SparseUNet.input(...)"
            )
        x = self.stem(x)
        skips = []
        for block, down in zip(self.encoder, self.down, strict=True):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bridge(x)
        for i in reversed(range(len(skips))):
            x = self.up_norm[i](self.up[i](x, skips[i]))
            x = self.decoder[i](cat(x, skips[i]))
        return self.head(x).features

    def input(
        self, coords: torch.Tensor, features: torch.Tensor, batch: torch.Tensor | None = None
    ) -> SparseTensor:
        """The network's input tensor for voxels ``coords`` (N, 3), ``features`` (N, C) and
        a batch index; ``.order`` maps its rows back to the given rows."""
        return SparseTensor.from_points(coords, features, batch, backend=self.backend)

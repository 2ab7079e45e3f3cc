"""The seed studies' own networks (SPEC §7.2): a baseline U-Net, a half U-Net and MultiResUNet
with 4, 2 and 1 encoder stages. Plain PyTorch, logits out (no final activation).

Choices the SPEC leaves open, made here once:
- convolutions followed by batch norm have no bias (the norm's shift replaces it); the last
  layer has one. Batch norm everywhere is momentum 0.1, eps 1e-3 (SPEC §7.2).
- U-Nets upsample with a 2×2 stride-2 transposed convolution to the stage width, followed by
  batch norm and ReLU like every other convolution; ``half-unet``'s bottleneck keeps the width
  of the stage above it instead of doubling it (the "reduced-channel bottleneck").
- MultiResUNet follows the paper's reference code (Ibtehaz & Rahman 2020): block width
  W = 1.67·U split into int(0.167·W), int(0.333·W), int(0.5·W) channels; residual paths of
  lengths 4, 3, 2, 1 from the top stage down (the shallower variants keep the lengths of the
  stages they keep); bias-carrying transposed convolutions; a 1×1 convolution head.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from tinyseg_cli.errors import TinysegError

BN_MOMENTUM = 0.1
BN_EPS = 1e-3
DEFAULT_WIDTH = 32
MULTIRES_ALPHA = 1.67
MULTIRES_SPLIT = (0.167, 0.333, 0.5)  # the paper code's rounding of 1/6, 2/6, 3/6
RESPATH_LENGTHS = (4, 3, 2, 1)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """The seed studies' batch norm (SPEC §7.2)."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class ConvBN(nn.Sequential):
    """A k×k 'same' convolution without bias, batch norm, and optionally ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
            batch_norm(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeedNetwork(nn.Module):
    """Base class: the input side must be a multiple of ``stride`` (2 ** pooling steps)."""

    stride: int = 1

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line error for an input the poolings cannot halve evenly."""
        height, width = x.shape[-2:]
        if height % self.stride or width % self.stride:
            raise TinysegError(
                f"network input: expected height and width divisible by {self.stride}, "
                f"found {height}×{width} (pad it to the network stride)"
            )


class UNet(SeedNetwork):
    """U-Net with ``depth`` poolings; stage i has ``width``·2^i feature maps (SPEC §7.2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = DEFAULT_WIDTH,
        depth: int = 4,
        bottleneck_growth: int = 2,
    ):
        super().__init__()
        widths = [width * 2**i for i in range(depth)]
        bottleneck = widths[-1] * bottleneck_growth
        self.stride = 2**depth
        self.encoder = nn.ModuleList()
        previous = in_channels
        for stage in widths:
            self.encoder.append(nn.Sequential(ConvBN(previous, stage, 3), ConvBN(stage, stage, 3)))
            previous = stage
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = nn.Sequential(
            ConvBN(previous, bottleneck, 3), ConvBN(bottleneck, bottleneck, 3)
        )
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        previous = bottleneck
        for stage in reversed(widths):
            self.up.append(
                nn.Sequential(
                    nn.ConvTranspose2d(previous, stage, 2, stride=2, bias=False),
                    batch_norm(stage),
                    nn.ReLU(inplace=True),
                )
            )
            self.decoder.append(nn.Sequential(ConvBN(2 * stage, stage, 3), ConvBN(stage, stage, 3)))
            previous = stage
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, out_channels, H, W)."""
        self.check_input(x)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, stage, skip in zip(self.up, self.decoder, reversed(skips), strict=True):
            x = stage(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class MultiResBlock(nn.Module):
    """Three chained 3×3 convolutions (receptive fields 3, 5, 7) concatenated, plus a 1×1
    residual projection; then ReLU and batch norm, as in the paper's code."""

    def __init__(self, in_channels: int, units: int, alpha: float = MULTIRES_ALPHA):
        super().__init__()
        block_width = alpha * units
        small, medium, large = (int(block_width * share) for share in MULTIRES_SPLIT)
        self.out_channels = small + medium + large
        self.conv3 = ConvBN(in_channels, small, 3)
        self.conv5 = ConvBN(small, medium, 3)
        self.conv7 = ConvBN(medium, large, 3)
        self.shortcut = ConvBN(in_channels, self.out_channels, 1, relu=False)
        self.merge_norm = batch_norm(self.out_channels)
        self.out_norm = batch_norm(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features with ``out_channels`` channels at the input's resolution."""
        a = self.conv3(x)
        b = self.conv5(a)
        c = self.conv7(b)
        merged = self.merge_norm(torch.cat([a, b, c], dim=1)) + self.shortcut(x)
        return self.out_norm(torch.relu(merged))


class ResPath(nn.Module):
    """``length`` residual units (3×3 convolution + 1×1 projection, summed, ReLU, batch norm)
    carrying an encoder stage to its decoder stage in place of a plain skip connection."""

    def __init__(self, in_channels: int, channels: int, length: int):
        super().__init__()
        ins = [in_channels] + [channels] * (length - 1)
        self.convs = nn.ModuleList(ConvBN(c, channels, 3) for c in ins)
        self.shortcuts = nn.ModuleList(ConvBN(c, channels, 1, relu=False) for c in ins)
        self.norms = nn.ModuleList(batch_norm(channels) for _ in ins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features with ``channels`` channels at the input's resolution."""
        for conv, shortcut, norm in zip(self.convs, self.shortcuts, self.norms, strict=True):
            x = norm(torch.relu(conv(x) + shortcut(x)))
        return x


class MultiResUNet(SeedNetwork):
    """MultiResUNet with ``depth`` encoder stages of ``width``·2^i units (SPEC §7.2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = DEFAULT_WIDTH,
        depth: int = 4,
        alpha: float = MULTIRES_ALPHA,
    ):
        super().__init__()
        units = [width * 2**i for i in range(depth)]
        self.stride = 2**depth
        self.encoder = nn.ModuleList()
        self.paths = nn.ModuleList()
        previous = in_channels
        for stage, length in zip(units, RESPATH_LENGTHS, strict=False):
            block = MultiResBlock(previous, stage, alpha)
            self.encoder.append(block)
            self.paths.append(ResPath(block.out_channels, stage, length))
            previous = block.out_channels
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = MultiResBlock(previous, width * 2**depth, alpha)
        previous = self.bottleneck.out_channels
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for stage in reversed(units):
            self.up.append(nn.ConvTranspose2d(previous, stage, 2, stride=2))
            block = MultiResBlock(2 * stage, stage, alpha)
            self.decoder.append(block)
            previous = block.out_channels
        self.head = nn.Conv2d(previous, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, out_channels, H, W)."""
        self.check_input(x)
        skips = []
        for block, path in zip(self.encoder, self.paths, strict=True):
            x = block(x)
            skips.append(path(x))
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


# name -> constructor(in_channels, out_channels, width)
NETWORKS = {
    "unet-baseline": partial(UNet, depth=4),
    "half-unet": partial(UNet, depth=2, bottleneck_growth=1),
    "multiresunet": partial(MultiResUNet, depth=4),
    "half-multiresunet": partial(MultiResUNet, depth=2),
    "quarter-multiresunet": partial(MultiResUNet, depth=1),
}


def seed_stride(name: str) -> int:
    """The side an input of network ``name`` must be a multiple of: 2 ** poolings."""
    return 2 ** NETWORKS[name].keywords["depth"]


def build_seed_network(name: str, in_channels: int, out_channels: int, width: int) -> SeedNetwork:
    """One of :data:`NETWORKS` by its (lower-case) name."""
    return NETWORKS[name](in_channels, out_channels, width=width)

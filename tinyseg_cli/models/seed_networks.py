"""The seed studies' own networks (SPEC §7.2): the battery-foil thesis's baseline U-Net, and
the microplastic study's U-Net, Half U-Net and MultiResUNet with 4, 2 and 1 encoder stages
(Lee & Jhang, "Neural Network Analysis for Microplastic Segmentation", Sensors 21(21):7030,
2021). Plain PyTorch, logits out (no final activation).

The microplastic study states its equations but not every channel width; its Table 4 gives
parameters and FLOPs at 512×512. The widths below are the ones whose counts come closest to
both (``benchmarks/seed_network_widths.py`` searches them; 3 input channels, 1 output; FLOPs
count a multiply-add as 2, convolutions only, as ``describe`` and ``train --dry-run`` do)::

    network               stages (first … last) + bottleneck   parameters    FLOPs
    unet-64               64 128 256 512 + 512                 20.55 M       364.1 B
      study "U-Net"                                            21.9776 M     329.7 B
    half-unet             64 128 + 256                         1.865 M       203.1 B
      study "Half U-Net"                                       1.7724 M      204.0 B
    multiresunet          U = 42 84 168 336 + 672              12.49 M       218.0 B
      study "MultiResUNet"                                     13.5469 M     204.8 B
    half-multiresunet     U = 24 48 + 48                       0.2274 M      39.8 B
      study                                                    0.2149 M      42.9 B
    quarter-multiresunet  U = 24 + 24                          0.0495 M      21.0 B
      study                                                    0.0445 M      21.9 B

The study's reduced networks keep the first encoder stages of the full ones (its kernel
weight histograms show the later stages capture no small features). Its Half U-Net is that,
not the Half-UNet of Lu et al. (2022: unified widths, full-scale fusion by addition, Ghost
modules), a later and different design. No single first width fits both the study's
MultiResUNet and its reduced variants, so they get their own. ``unet-baseline`` stays as the
battery-foil thesis defines it (32 feature maps first); ``unet-64`` is the study's U-Net.

Choices the SPEC leaves open, made here once:
- convolutions followed by batch norm have no bias (the norm's shift replaces it); the last
  layer has one. Batch norm everywhere is momentum 0.1, eps 1e-3 (SPEC §7.2).
- U-Nets upsample with a 2×2 stride-2 transposed convolution to the stage width, followed by
  batch norm and ReLU like every other convolution. The bottleneck has
  ``bottleneck_growth`` × the last stage's width: 2 (doubling, as at every stage) for
  ``unet-baseline`` and ``half-unet`` (whose bottleneck, 256 maps, is the U-Net's third
  stage), 1 for ``unet-64`` (512 maps, not 1024: Table 4's 21.98 M has no room for 1024).
- MultiResUNet follows the paper's reference code (Ibtehaz & Rahman 2020): block width
  W = 1.67·U split into int(0.167·W), int(0.333·W), int(0.5·W) channels; residual paths of
  lengths 4, 3, 2, 1 from the top stage down (the shallower variants keep the lengths of the
  stages they keep); bias-carrying transposed convolutions; a 1×1 convolution head. The
  bottleneck block has 2·U of the last stage in ``multiresunet`` (as in the paper) and the
  last stage's U in the half and quarter variants (their reduced bottleneck).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tinyseg_cli.errors import TinysegError

BN_MOMENTUM = 0.1
BN_EPS = 1e-3
DEFAULT_WIDTH = 32  # the battery-foil thesis's first stage
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
    """U-Net with ``depth`` poolings; stage i has ``width``·2^i feature maps, the bottleneck
    ``bottleneck_growth`` × the last stage's (SPEC §7.2)."""

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
    """MultiResUNet with ``depth`` encoder stages of ``width``·2^i units and a bottleneck block
    of ``bottleneck_growth`` × the last stage's units (SPEC §7.2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = DEFAULT_WIDTH,
        depth: int = 4,
        alpha: float = MULTIRES_ALPHA,
        bottleneck_growth: int = 2,
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
        self.bottleneck = MultiResBlock(previous, units[-1] * bottleneck_growth, alpha)
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


@dataclass(frozen=True)
class SeedDesign:
    """What a seed network's name stands for: its class, poolings, default first-stage width
    and bottleneck growth (see the module docstring for where the numbers come from)."""

    network: type[UNet] | type[MultiResUNet]
    depth: int
    width: int
    bottleneck_growth: int

    def build(self, in_channels: int, out_channels: int, width: int | None = None) -> SeedNetwork:
        """The network, with ``width`` feature maps (U-Net) or units (MultiResUNet) first."""
        return self.network(
            in_channels,
            out_channels,
            width=self.width if width is None else width,
            depth=self.depth,
            bottleneck_growth=self.bottleneck_growth,
        )


NETWORKS = {
    "unet-baseline": SeedDesign(UNet, depth=4, width=DEFAULT_WIDTH, bottleneck_growth=2),
    "unet-64": SeedDesign(UNet, depth=4, width=64, bottleneck_growth=1),
    "half-unet": SeedDesign(UNet, depth=2, width=64, bottleneck_growth=2),
    "multiresunet": SeedDesign(MultiResUNet, depth=4, width=42, bottleneck_growth=2),
    "half-multiresunet": SeedDesign(MultiResUNet, depth=2, width=24, bottleneck_growth=1),
    "quarter-multiresunet": SeedDesign(MultiResUNet, depth=1, width=24, bottleneck_growth=1),
}


def seed_stride(name: str) -> int:
    """The side an input of network ``name`` must be a multiple of: 2 ** poolings."""
    return 2 ** NETWORKS[name].depth


def default_width(name: str) -> int:
    """The first-stage width network ``name`` has unless a spec says otherwise."""
    return NETWORKS[name].width


def build_seed_network(
    name: str, in_channels: int, out_channels: int, width: int | None = None
) -> SeedNetwork:
    """One of :data:`NETWORKS` by its (lower-case) name; ``width`` overrides its default."""
    return NETWORKS[name].build(in_channels, out_channels, width)

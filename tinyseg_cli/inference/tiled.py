"""Full-region and sliding-window inference with blended logits, one row of tiles at a time
(SPEC §4.6, §8).

An image that fits ``--max-pixels`` is one tile: a single forward pass over the image padded
to the network stride (``padding.py``), cropped back. A larger one is padded the same way
and covered by equal tiles whose origins are multiples of the stride: every tile then sees
the pooling grid the full pass sees, so tiled and full-region predictions agree away from
the tile borders. The tiles of an axis are spread evenly, the fewest that overlap by at
least ``overlap`` pixels, so an 8192-pixel side with 1024-pixel tiles and a 64-pixel
overlap costs 9 tiles of 992 rather than 9 of 1024.

Logits are blended with separable weights (a linear ramp over the overlap, or a Gaussian of
σ = tile/8 as in nnU-Net) and divided by the summed weights. Rows of the output are finished
once the next row of tiles starts below them; they are handed out as a band and dropped, so
memory holds one row of tiles (and their batch), never the full-size logits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.padding import padded_size

BLENDS = ("linear", "gaussian")
GAUSSIAN_SIGMA = 1 / 8  # of the tile size (nnU-Net's choice)
EDGE_WEIGHT = 1e-3  # not 0: a pixel covered by one tile only still needs a weight

Run = Callable[[torch.Tensor], torch.Tensor]  # (N, C, h, w) -> logits (N, K, h, w)
ReadBand = Callable[[int, int], Sequence[torch.Tensor]]  # padded rows a:b -> (C, b-a, Wp) each


@dataclass(frozen=True)
class Axis:
    """How one axis is covered: its size, padded size, tile length and tile origins."""

    size: int
    padded: int
    tile: int
    starts: tuple[int, ...]

    def ends(self) -> list[int]:
        """Row after which the output is finished, per tile row: the next tile's origin."""
        return [*self.starts[1:], self.size]


@dataclass(frozen=True)
class Grid:
    """The tiles over an image: rows × columns, with the blending of their overlaps."""

    rows: Axis
    cols: Axis
    overlap: int
    blend: str

    @property
    def tiled(self) -> bool:
        """More than one tile."""
        return len(self.rows.starts) * len(self.cols.starts) > 1

    def bands_from(self, start_row: int) -> int:
        """How many output bands remain when rows before ``start_row`` are done."""
        return sum(end > start_row for end in self.rows.ends())


def _plan_axis(size: int, stride: int, minimum: int, tile: int, overlap: int, whole: bool) -> Axis:
    padded = padded_size(size, stride, minimum)
    if whole or padded <= tile:
        return Axis(size, padded, padded, (0,))
    count = -(-(padded - overlap) // (tile - overlap))
    length = padded_size(-(-(padded + (count - 1) * overlap) // count), stride)
    units = (padded - length) // stride  # origins are whole strides apart
    starts = {stride * ((2 * i * units + count - 1) // (2 * (count - 1))) for i in range(count)}
    return Axis(size, padded, length, tuple(sorted(starts)))


def plan_grid(
    height: int,
    width: int,
    stride: int,
    *,
    max_pixels: int,
    tile: int,
    overlap: int,
    blend: str = "linear",
    minimum: int = 1,
) -> Grid:
    """One tile (a full pass) when ``height × width <= max_pixels``, else tiles of at most
    ``tile`` pixels a side overlapping by at least ``overlap`` (both rounded to the stride).
    ``minimum``: the smallest side the network accepts; smaller images are padded to it."""
    if blend not in BLENDS:
        raise TinysegError(f"--blend {blend!r}: expected {' or '.join(BLENDS)}")
    tile_ = tile // stride * stride
    overlap_ = padded_size(overlap, stride)
    if tile_ < max(stride, minimum):
        raise TinysegError(
            f"--tile {tile} is smaller than the network's smallest input "
            f"{padded_size(1, stride, minimum)}"
        )
    if overlap_ >= tile_:
        raise TinysegError(
            f"--overlap {overlap} (rounded up to the stride: {overlap_}) must be smaller than "
            f"--tile {tile} (rounded down to the stride: {tile_})"
        )
    whole = height * width <= max_pixels
    return Grid(
        _plan_axis(height, stride, minimum, tile_, overlap_, whole),
        _plan_axis(width, stride, minimum, tile_, overlap_, whole),
        overlap_,
        blend,
    )


def blend_profile(axis: Axis, overlap: int, blend: str) -> np.ndarray:
    """1D weights over one tile of ``axis``; the 2D weight is the outer product of two."""
    length = axis.tile
    if len(axis.starts) == 1:
        return np.ones(length, np.float32)
    k = np.arange(length, dtype=np.float64)
    if blend == "gaussian":
        sigma = length * GAUSSIAN_SIGMA
        weights = np.exp(-0.5 * ((k - (length - 1) / 2) / sigma) ** 2)
    else:  # a ramp over the middle half of the overlap; the outer quarter next to the
        # edge, where the tile lacks context, is left to the neighbour
        margin = overlap // 4
        edge = np.minimum(k, length - 1 - k) - margin + 1
        weights = np.clip(edge / (overlap - 2 * margin + 1), EDGE_WEIGHT, 1.0)
    return weights.astype(np.float32)


def coverage(axis: Axis, profile: np.ndarray) -> np.ndarray:
    """Summed tile weights along ``axis`` (padded length); tiles of a grid multiply out."""
    total = np.zeros(axis.padded, np.float64)
    for start in axis.starts:
        total[start : start + axis.tile] += profile
    return total


class _Accumulator:
    """Weighted logits of the unfinished rows ``lo …`` of one model, over the padded width."""

    def __init__(self, lo: int, width: int) -> None:
        self.lo, self.width = lo, width
        self.sum: torch.Tensor | None = None

    def add(self, y: int, x: int, logits: torch.Tensor, weight: torch.Tensor) -> None:
        channels, height, width = logits.shape
        need = y + height - self.lo
        if self.sum is None or self.sum.shape[1] < need:
            grown = torch.zeros(channels, need, self.width)
            if self.sum is not None:
                grown[:, : self.sum.shape[1]] = self.sum
            self.sum = grown
        self.sum[:, y - self.lo : y - self.lo + height, x : x + width].addcmul_(logits, weight)

    def take(self, end: int) -> torch.Tensor:
        """The weighted sums of rows ``lo:end``, removed from the accumulator."""
        assert self.sum is not None
        finished, self.sum = self.sum[:, : end - self.lo], self.sum[:, end - self.lo :].clone()
        self.lo = end
        return finished


def _tile_logits(
    run: Run, band: torch.Tensor, cols: Axis, batch: int
) -> Iterator[tuple[int, torch.Tensor]]:
    starts = cols.starts
    for first in range(0, len(starts), batch):
        chunk = starts[first : first + batch]
        logits = run(torch.stack([band[:, :, x : x + cols.tile] for x in chunk]))
        yield from zip(chunk, logits, strict=True)


def iter_bands(
    runs: Sequence[Run],
    read_band: ReadBand,
    grid: Grid,
    *,
    batch: int = 1,
    start_row: int = 0,
) -> Iterator[tuple[int, int, list[torch.Tensor]]]:
    """Blended logits of every model, one band of finished rows per row of tiles.

    Yields ``(y0, y1, [logits (K_m, y1 − y0, W) per model])`` in image rows, top to bottom.
    Rows before ``start_row`` are not handed out, and tile rows that only touch them are not
    run (resuming an interrupted image).
    """
    rows, cols = grid.rows, grid.cols
    row_profile = blend_profile(rows, grid.overlap, grid.blend)
    col_profile = blend_profile(cols, grid.overlap, grid.blend)
    weight = torch.from_numpy(np.outer(row_profile, col_profile))
    row_norm = torch.from_numpy((1 / coverage(rows, row_profile)).astype(np.float32))
    col_norm = torch.from_numpy((1 / coverage(cols, col_profile)).astype(np.float32))
    sums: list[_Accumulator] = []
    for y, end in zip(rows.starts, rows.ends(), strict=True):
        if y + rows.tile <= start_row:
            continue
        if not sums:
            sums = [_Accumulator(y, cols.padded) for _ in runs]
        bands = read_band(y, y + rows.tile)
        for run, band, acc in zip(runs, bands, sums, strict=True):
            for x, logits in _tile_logits(run, band, cols, batch):
                acc.add(y, x, logits, weight)
        lo = sums[0].lo
        finished = [acc.take(end) for acc in sums]
        y0 = max(lo, start_row)
        if y0 >= end:
            continue
        scale = row_norm[y0:end, None] * col_norm[None, : cols.size]
        yield y0, end, [f[:, y0 - lo :, : cols.size] * scale for f in finished]

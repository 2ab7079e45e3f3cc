"""Pixels per class over the training samples (SPEC §6.1): the counts ``classweights`` weighs
and ``split`` reports and stratifies by, counted mask by mask in blocks of rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.masks import open_mask
from tinyseg_cli.io.paths import not_a_file
from tinyseg_cli.io.sources import MapRef
from tinyseg_cli.metrics.counts import LabelOutOfRange, label_counts
from tinyseg_cli.runtime.parallel import parallel_map
from tinyseg_cli.scoring.pairs import CountOptions


@dataclass(frozen=True)
class ClassCounts:
    """Pixels of each class over the training samples (SPEC §6.1)."""

    pixels: np.ndarray  # (C,) int64
    samples: tuple[int | None, ...]  # training samples holding each class; None: unknown
    n_samples: int | None
    per_sample: np.ndarray | None = None  # (S, C) when counted sample by sample

    @classmethod
    def from_samples(cls, per_sample: np.ndarray) -> ClassCounts:
        """Totals of a (samples, classes) matrix of pixel counts."""
        present = np.count_nonzero(per_sample, axis=0)
        return cls(
            per_sample.sum(axis=0, dtype=np.int64),
            tuple(int(n) for n in present),
            int(per_sample.shape[0]),
            per_sample,
        )

    @property
    def n_classes(self) -> int:
        return int(self.pixels.size)

    def widened(self, n_classes: int) -> ClassCounts:
        """The same counts over ``n_classes`` classes; the added ones have no pixels."""
        extra = n_classes - self.n_classes
        if extra <= 0:
            return self
        if self.per_sample is not None:
            return ClassCounts.from_samples(np.pad(self.per_sample, ((0, 0), (0, extra))))
        pixels = np.concatenate([self.pixels, np.zeros(extra, np.int64)])
        return ClassCounts(pixels, (*self.samples, *([0] * extra)), self.n_samples)

    def one_vs_rest(self, index: int) -> ClassCounts:
        """Two classes: every class but ``index`` (the rest), then ``index``."""
        if self.per_sample is not None:
            positive = self.per_sample[:, index]
            rest = self.per_sample.sum(axis=1) - positive
            return ClassCounts.from_samples(np.stack([rest, positive], axis=1))
        positive_pixels = int(self.pixels[index])
        rest_pixels = int(self.pixels.sum()) - positive_pixels
        return ClassCounts(
            np.array([rest_pixels, positive_pixels], np.int64),
            (None, self.samples[index]),  # a union of samples is unknown from class totals
            self.n_samples,
        )


def count_mask(ref: MapRef, options: CountOptions) -> np.ndarray:
    """Pixels per class of one mask inside its ROI, counted in blocks of rows."""
    mask = open_mask(ref.path, palette=options.palette, roi=ref.roi, rule=ref.rule)
    try:
        return label_counts(mask, options.n_classes, options.ignore_index, options.block_pixels)
    except LabelOutOfRange as error:
        y, x = divmod(error.flat_index, mask.shape[1])
        y0, x0 = ref.roi[:2] if ref.roi else (0, 0)  # report image, not ROI, coordinates
        raise TinysegError(f"{ref.path}: pixel (y={y0 + y}, x={x0 + x}): {error}") from None


def count_masks(
    refs: list[MapRef],
    options: CountOptions,
    jobs: int = 1,
    on_done: Callable[[np.ndarray], None] | None = None,
) -> ClassCounts:
    """Class pixel counts of every mask, over ``jobs`` worker processes."""
    missing = [ref.path for ref in refs if not ref.path.is_file()]
    if missing:  # before any work starts (SPEC §9)
        raise TinysegError(f"{not_a_file(missing[0])} (sample {_sample_of(refs, missing[0])})")
    rows = parallel_map(partial(count_mask, options=options), refs, jobs, on_done)
    width = max([options.n_classes or 0, *(row.size for row in rows)])
    per_sample = np.zeros((len(rows), width), np.int64)
    for i, row in enumerate(rows):
        per_sample[i, : row.size] = row
    return ClassCounts.from_samples(per_sample)


def _sample_of(refs: list[MapRef], path: Path) -> str:
    return next(repr(ref.sample_id) for ref in refs if ref.path == path)

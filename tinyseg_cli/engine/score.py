"""The ``score`` engine: pair truth and prediction maps, count each pair in row blocks, in
parallel worker processes, and hand the counts to the metrics (SPEC §4.7)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.palette import Palette
from tinyseg_cli.io.rasters import LabelMap, open_label_map
from tinyseg_cli.io.sources import MapRef
from tinyseg_cli.metrics.counts import (
    BLOCK_PIXELS,
    LabelOutOfRange,
    confusion_matrix,
    row_blocks,
)

Missing = Literal["error", "skip"]


@dataclass(frozen=True)
class Pair:
    """The truth and prediction maps of one sample."""

    sample_id: str
    truth: MapRef
    pred: MapRef


@dataclass(frozen=True)
class CountOptions:
    """How maps become labels and which labels count."""

    n_classes: int | None = None
    ignore_index: int | None = 255
    threshold: float | None = None
    palette: Palette | None = None
    block_pixels: int = BLOCK_PIXELS


@dataclass
class Pairing:
    pairs: list[Pair]
    truth_only: list[str]
    pred_only: list[str]


def pair_maps(
    truth: dict[str, MapRef], pred: dict[str, MapRef], missing: Missing, single_files: bool = False
) -> Pairing:
    """Match maps by sample id; unmatched ones are an error unless ``missing`` is ``skip``.

    ``single_files``: truth and prediction were each given as one file, so they pair
    whatever their names.
    """
    if single_files:
        (t,), (p,) = truth.values(), pred.values()
        return Pairing([Pair(t.sample_id, t, p)], [], [])
    common = sorted(truth.keys() & pred.keys())
    truth_only = sorted(truth.keys() - pred.keys())
    pred_only = sorted(pred.keys() - truth.keys())
    if missing == "error" and (truth_only or pred_only):
        side, names = ("prediction", truth_only) if truth_only else ("ground truth", pred_only)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise TinysegError(
            f"no {side} for {len(names)} sample(s): {shown} (pass --missing skip to score the rest)"
        )
    if not common:
        raise TinysegError("no sample has both a ground truth and a prediction (compare the names)")
    return Pairing([Pair(s, truth[s], pred[s]) for s in common], truth_only, pred_only)


def shard(pairs: list[Pair], index: int, count: int) -> list[Pair]:
    """Every ``count``-th pair starting at ``index`` (sorted by sample id)."""
    return sorted(pairs, key=lambda pair: pair.sample_id)[index::count]


def _open_pair(pair: Pair, options: CountOptions) -> tuple[LabelMap, LabelMap]:
    truth = open_label_map(pair.truth.path, "truth", palette=options.palette)
    pred = open_label_map(
        pair.pred.path, "prediction", palette=options.palette, threshold=options.threshold
    )
    roi = pair.truth.roi
    if roi is not None:
        y0, x0, y1, x1 = roi
        if y1 > truth.full_shape[0] or x1 > truth.full_shape[1]:
            raise TinysegError(
                f"{pair.truth.path}: ROI ({y0}, {x0}, {y1}, {x1}) exceeds the image "
                f"{truth.full_shape[0]}×{truth.full_shape[1]}"
            )
        truth.roi = roi
        if pred.full_shape == truth.full_shape:  # a full-size prediction: score its ROI
            pred.roi = roi
    if truth.shape != pred.shape:
        raise TinysegError(
            f"sample {pair.sample_id}: shape mismatch: truth {pair.truth.path} is "
            f"{truth.shape[0]}×{truth.shape[1]}, prediction {pair.pred.path} is "
            f"{pred.shape[0]}×{pred.shape[1]}"
        )
    return truth, pred


def count_pair(pair: Pair, options: CountOptions) -> tuple[str, np.ndarray]:
    """The confusion matrix of one sample, counted in blocks of rows."""
    truth, pred = _open_pair(pair, options)
    try:
        matrix = confusion_matrix(
            truth, pred, options.n_classes, options.ignore_index, options.block_pixels
        )
    except LabelOutOfRange as error:
        y, x = divmod(error.flat_index, truth.shape[1])
        path = pair.truth.path if error.role == "truth" else pair.pred.path
        raise TinysegError(f"{path}: pixel (y={y}, x={x}): {error}") from None
    ignore = options.ignore_index
    if options.n_classes is None and ignore is not None and 0 <= ignore < matrix.shape[0]:
        # Only predictions can reach this label (ignored truth pixels are dropped).
        raise TinysegError(
            f"{pair.pred.path}: pixel {_first_position(pred, ignore)}: prediction holds the "
            f"ignore index {ignore} (a 0/255 mask? map it with --palette, or pass --classes)"
        )
    return pair.sample_id, matrix


def _first_position(label_map: LabelMap, value: int) -> str:
    height, width = label_map.shape
    for block in row_blocks(height, width):
        hits = np.flatnonzero(label_map[block] == value)
        if hits.size:
            y, x = divmod(int(hits[0]), width)
            return f"(y={block.start + y}, x={x})"
    return "(unknown)"


def _count_star(args: tuple[Pair, CountOptions]) -> tuple[str, np.ndarray]:
    return count_pair(*args)


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def count_pairs(
    pairs: list[Pair],
    options: CountOptions,
    jobs: int = 1,
    on_done: Callable[[str], None] | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Confusion matrices of all pairs, in pair order, over ``jobs`` worker processes."""
    results: list[tuple[str, np.ndarray]] = []
    for sample_id, matrix in _iter_counts(pairs, options, jobs):
        results.append((sample_id, matrix))
        if on_done is not None:
            on_done(sample_id)
    return results


def _iter_counts(
    pairs: list[Pair], options: CountOptions, jobs: int
) -> Iterator[tuple[str, np.ndarray]]:
    if jobs <= 1 or len(pairs) <= 1:
        for pair in pairs:
            yield count_pair(pair, options)
        return
    chunksize = max(1, min(16, len(pairs) // (jobs * 4)))
    with ProcessPoolExecutor(max_workers=min(jobs, len(pairs))) as pool:
        yield from pool.map(_count_star, ((pair, options) for pair in pairs), chunksize=chunksize)

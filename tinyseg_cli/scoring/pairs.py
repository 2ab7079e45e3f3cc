"""Truth/prediction pairs (``score``, ``overlay``, ``tune-oii``): pair the maps by sample id,
count each pair in row blocks, in parallel worker processes, and hand the counts to the
metrics (SPEC §4.7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata
from tinyseg_cli.io.masks import open_mask
from tinyseg_cli.io.palette import Palette
from tinyseg_cli.io.rasters import LabelMap, open_label_map
from tinyseg_cli.io.sources import MapRef
from tinyseg_cli.io.tables import file_metadata, is_table_path
from tinyseg_cli.metrics.counts import (
    BLOCK_PIXELS,
    LabelOutOfRange,
    confusion_matrix,
    row_blocks,
)
from tinyseg_cli.metrics.objects import (
    ObjectCounts,
    ObjectOptions,
    match_objects,
    object_counts,
    object_records,
)
from tinyseg_cli.runtime.parallel import parallel_map

Missing = Literal["error", "skip"]
Ref = TypeVar("Ref")


@dataclass(frozen=True)
class Pair(Generic[Ref]):
    """The truth and prediction of one sample: maps (:class:`MapRef`) or a 3D scene's
    point labels."""

    sample_id: str
    truth: Ref
    pred: Ref


@dataclass(frozen=True)
class CountOptions:
    """How maps become labels and which labels count."""

    n_classes: int | None = None
    ignore_index: int | None = 255
    threshold: float | None = None
    palette: Palette | None = None  # of the truth masks
    pred_palette: Palette | None = None
    truth_remap: np.ndarray | None = None  # truth labels into the prediction's classes
    block_pixels: int = BLOCK_PIXELS
    objects: ObjectOptions | None = None  # score --objects


@dataclass
class Pairing(Generic[Ref]):
    pairs: list[Pair[Ref]]
    truth_only: list[str]
    pred_only: list[str]


def classes_of_inputs(specs: list[str | None]) -> ClassMap | None:
    """The class map that travels with the inputs: a manifest's metadata, or the
    ``predictions.parquet`` that ``tinyseg infer`` writes beside its label maps."""
    for spec in specs:
        if not spec or spec == "-":
            continue  # stdin can be read only once
        path = Path(spec)
        table_path = path / "predictions.parquet" if path.is_dir() else path
        if is_table_path(table_path) and table_path.is_file():
            found = class_map_from_metadata(file_metadata(table_path))
            if found is not None:
                return found
    return None


def pair_maps(
    truth: dict[str, Ref],
    pred: dict[str, Ref],
    missing: Missing,
    single_files: bool = False,
    noun: str = "sample",
) -> Pairing[Ref]:
    """Match maps (or scenes, ``noun``) by id; unmatched ones are an error unless ``missing``
    is ``skip``.

    ``single_files``: truth and prediction were each given as one file, so they pair
    whatever their names.
    """
    if single_files:
        ((name, t),), ((_, p),) = truth.items(), pred.items()
        return Pairing([Pair(name, t, p)], [], [])
    common = sorted(truth.keys() & pred.keys())
    truth_only = sorted(truth.keys() - pred.keys())
    pred_only = sorted(pred.keys() - truth.keys())
    if missing == "error" and (truth_only or pred_only):
        side, names = ("prediction", truth_only) if truth_only else ("ground truth", pred_only)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise TinysegError(
            f"no {side} for {len(names)} {noun}(s): {shown} (pass --missing skip to score the rest)"
        )
    if not common:
        raise TinysegError(
            f"no {noun} has both a ground truth and a prediction (compare the names)"
        )
    return Pairing([Pair(s, truth[s], pred[s]) for s in common], truth_only, pred_only)


def open_truth(
    pair: Pair[MapRef],
    palette: Palette | None,
    truth_remap: np.ndarray | None,
    ignore_index: int | None,
) -> LabelMap:
    """A pair's truth inside its ROI, its labels put into the prediction's classes
    (``truth_remap``), the ignore label kept as it is."""
    truth = open_mask(pair.truth.path, palette=palette, roi=pair.truth.roi, rule=pair.truth.rule)
    truth.remap, truth.keep = truth_remap, ignore_index
    return truth


def check_same_shape(
    pair: Pair[MapRef], truth: tuple[int, ...], pred: tuple[int, ...], pred_is: str
) -> None:
    """Refuse a pair whose truth and prediction differ in size; ``pred_is`` names the
    prediction ("prediction PATH is")."""
    if truth != pred:
        raise TinysegError(
            f"sample {pair.sample_id}: shape mismatch: truth {pair.truth.path} is "
            f"{truth[0]}×{truth[1]}, {pred_is} {pred[0]}×{pred[1]}"
        )


def open_pair(pair: Pair[MapRef], options: CountOptions) -> tuple[LabelMap, LabelMap]:
    """Truth (inside its ROI) and prediction of a pair, opened for reading in blocks; their
    shapes must agree."""
    truth = open_truth(pair, options.palette, options.truth_remap, options.ignore_index)
    pred = open_label_map(
        pair.pred.path, "prediction", palette=options.pred_palette, threshold=options.threshold
    )
    if pair.truth.roi is not None and pred.full_shape == truth.full_shape:
        pred.roi = pair.truth.roi  # a full-size prediction: score its ROI
    check_same_shape(pair, truth.shape, pred.shape, f"prediction {pair.pred.path} is")
    return truth, pred


def count_pair(pair: Pair[MapRef], options: CountOptions) -> tuple[str, np.ndarray]:
    """The confusion matrix of one sample, counted in blocks of rows."""
    truth, pred = open_pair(pair, options)
    return pair.sample_id, pair_confusion(pair, truth, pred, options)


@dataclass
class SampleObjects:
    """One sample's pixel counts, object counts and per-object rows (``score --objects``)."""

    sample_id: str
    matrix: np.ndarray
    objects: ObjectCounts
    records: dict[str, np.ndarray]


def count_pair_objects(pair: Pair[MapRef], options: CountOptions) -> SampleObjects:
    """Pixel counts as :func:`count_pair`, then the objects of the whole maps matched (after
    the pixel pass, so every label is known to be valid)."""
    truth, pred = open_pair(pair, options)
    matrix = pair_confusion(pair, truth, pred, options)
    assert options.objects is not None
    height = truth.shape[0]
    matching = match_objects(truth[0:height], pred[0:height], options.objects, options.ignore_index)
    n_classes = max(matrix.shape[0], options.n_classes or 0)
    counts = object_counts(matching, n_classes, options.objects.size_bins)
    return SampleObjects(pair.sample_id, matrix, counts, object_records(matching))


def pair_confusion(
    pair: Pair[MapRef], truth: LabelMap, pred: LabelMap, options: CountOptions
) -> np.ndarray:
    """The confusion matrix of an opened pair; a label outside the class map, or the ignore
    label in a prediction, is an error naming the file and pixel."""
    try:
        matrix = confusion_matrix(
            truth, pred, options.n_classes, options.ignore_index, options.block_pixels
        )
    except LabelOutOfRange as error:
        culprit = truth if error.role == "truth" else pred
        position = culprit.position(error.flat_index)
        raise TinysegError(f"{culprit.path}: pixel {position}: {error}") from None
    ignore = options.ignore_index
    if options.n_classes is None and ignore is not None and 0 <= ignore < matrix.shape[0]:
        # Only predictions can reach this label (ignored truth pixels are dropped).
        raise TinysegError(
            f"{pair.pred.path}: pixel {_first_position(pred, ignore)}: prediction holds the "
            f"ignore index {ignore} (a 0/255 mask? map it with --palette, or pass --classes)"
        )
    return matrix


def _first_position(label_map: LabelMap, value: int) -> str:
    height, width = label_map.shape
    for block in row_blocks(height, width):
        hits = np.flatnonzero(label_map[block] == value)
        if hits.size:
            return label_map.position(block.start * width + int(hits[0]))
    return "(unknown)"


def count_pairs(
    pairs: list[Pair[MapRef]],
    options: CountOptions,
    jobs: int = 1,
    on_done: Callable[[str], None] | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Confusion matrices of all pairs, in pair order, over ``jobs`` worker processes."""
    done = None if on_done is None else lambda result: on_done(result[0])
    return parallel_map(partial(count_pair, options=options), pairs, jobs, done)


def count_pairs_objects(
    pairs: list[Pair[MapRef]],
    options: CountOptions,
    jobs: int = 1,
    on_done: Callable[[str], None] | None = None,
) -> list[SampleObjects]:
    """:func:`count_pairs` with the objects of each pair, one image at a time per worker."""
    done = None if on_done is None else lambda result: on_done(result.sample_id)
    return parallel_map(partial(count_pair_objects, options=options), pairs, jobs, done)

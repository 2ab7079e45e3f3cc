"""3D ``score``: pair per-point labels by scene and point, count each scene in chunks with the
same counting kernel as the 2D maps (SPEC §4.7, §5).

A LAS file's points are numbered by their order in the file, so a LAS pairs with another LAS
of the same scene point by point, and with a table by ``point_index``. Two LAS files stream
side by side in chunks; a table side is held for one scene at a time (about 2 bytes per point
once read, 12 while reading).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.label_map import LabelMap, point_labels
from tinyseg_cli.io.las import iter_dimensions
from tinyseg_cli.io.points import (
    IGNORE,
    MISSING,
    PointSource,
    SceneRef,
    dense_labels,
    table_labels,
)
from tinyseg_cli.metrics.counts import BLOCK_PIXELS, LabelOutOfRange, add_matrices, confusion_matrix
from tinyseg_cli.runtime.parallel import parallel_map
from tinyseg_cli.scoring.pairs import Missing, Pair, Pairing, pair_maps

Blocks = Iterator[tuple[int, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class PointOptions:
    """How point labels become class indices, and what a missing counterpart does."""

    n_classes: int | None = None
    label_map: LabelMap | None = None  # LAS codes -> class indices (tables hold indices)
    missing: Missing = "error"
    ignore_index: int = IGNORE  # truth label left out, beside -100 (unlisted codes)
    chunk_points: int = BLOCK_PIXELS


@dataclass(frozen=True)
class SceneCounts:
    """The confusion matrix of one scene and the points left out by ``--missing skip``."""

    scene: str
    matrix: np.ndarray
    without_prediction: int = 0
    without_truth: int = 0


def pair_scenes(truth: PointSource, pred: PointSource, missing: Missing) -> Pairing[SceneRef]:
    """Scenes of both sides matched by name; LAS pairs must hold the same number of points."""
    single = len(truth.scenes) == len(pred.scenes) == 1 and truth.is_las and pred.is_las
    pairing = pair_maps(truth.scenes, pred.scenes, missing, single_files=single, noun="scene")
    for pair in pairing.pairs:
        t, p = pair.truth.las, pair.pred.las
        if t is not None and p is not None and t.point_count != p.point_count:
            raise TinysegError(
                f"scene {pair.sample_id}: mismatched point counts: truth {t.path} has "
                f"{t.point_count} points, prediction {p.path} has {p.point_count}"
            )
    return pairing


def count_scenes(
    pairs: list[Pair[SceneRef]],
    options: PointOptions,
    jobs: int = 1,
    on_done: Callable[[SceneCounts], None] | None = None,
) -> list[SceneCounts]:
    """The counts of every scene pair, in pair order, over ``jobs`` worker processes."""
    return parallel_map(partial(count_scene, options=options), pairs, jobs, on_done)


def count_scene(pair: Pair[SceneRef], options: PointOptions) -> SceneCounts:
    """Confusion matrix of one scene, counted chunk by chunk."""
    scene = pair.sample_id
    matrix = np.zeros((options.n_classes or 0,) * 2, np.int64)
    without_prediction = without_truth = 0
    for start, truth, pred in _blocks(pair, options):
        no_truth, no_pred = truth == MISSING, pred == MISSING
        without_prediction += _unpaired(
            no_pred & ~no_truth, start, options, f"has no prediction in {pair.pred.source}", scene
        )
        without_truth += _unpaired(
            no_truth & ~no_pred,
            start,
            options,
            f"has a prediction but no ground truth in {pair.truth.source}",
            scene,
        )
        left_out = no_truth | no_pred
        if options.ignore_index != IGNORE:
            left_out |= truth == options.ignore_index
        truth = np.where(left_out, np.int16(IGNORE), truth)
        try:
            counts = confusion_matrix(truth, pred, options.n_classes, IGNORE, options.chunk_points)
        except LabelOutOfRange as error:
            raise _label_error(pair, error, start, options) from None
        matrix = add_matrices(matrix, counts)
    return SceneCounts(scene, matrix, without_prediction, without_truth)


def _unpaired(
    unpaired: np.ndarray, start: int, options: PointOptions, what: str, scene: str
) -> int:
    """How many points of a block lack a counterpart; an error unless ``--missing skip``."""
    if not unpaired.any():
        return 0
    if options.missing == "error":
        point = start + int(np.argmax(unpaired))
        raise TinysegError(
            f"scene {scene}: point {point} {what} (pass --missing skip to score the rest)"
        )
    return int(np.count_nonzero(unpaired))


def _label_error(
    pair: Pair[SceneRef], error: LabelOutOfRange, start: int, options: PointOptions
) -> TinysegError:
    side = pair.truth if error.role == "truth" else pair.pred
    hint = ""
    if side.las is not None and options.label_map is None:
        hint = " (map LAS codes to classes with --label-map)"
    elif side.las is not None and error.value == IGNORE:
        hint = " (its code is not in the label map)"
    return TinysegError(
        f"scene {pair.sample_id}: point {start + error.flat_index}: {error}{hint} ({side.source})"
    )


def _blocks(pair: Pair[SceneRef], options: PointOptions) -> Blocks:
    """(first point, truth, prediction) int16 label blocks of one scene, in point order;
    :data:`MISSING` marks a point a table side holds no label for."""
    truth, pred = pair.truth, pair.pred
    if truth.las is not None and pred.las is not None and truth.las.path == pred.las.path:
        return _one_file_blocks(truth, pred.dimension, options)
    pred_table = table_labels(pred) if pred.las is None else None
    if truth.las is not None:
        size = truth.las.point_count
        truth_blocks = _las_blocks(truth, options)
    else:
        indices, labels = table_labels(truth)
        if pred.las is not None:
            size = pred.las.point_count
        else:  # the largest point index either table names, plus one
            size = int(max(indices.max(initial=-1), pred_table[0].max(initial=-1))) + 1  # type: ignore[index]
        truth_blocks = _array_blocks(_dense(indices, labels, size, truth), options.chunk_points)
    if pred_table is None:
        take = _Sequential(_las_blocks(pred, options)).take
    else:
        dense = _dense(*pred_table, size, pred)
        take = partial(_slice, dense)
    return ((start, block, take(start, start + len(block))) for start, block in truth_blocks)


def _dense(indices: np.ndarray, labels: np.ndarray, size: int, ref: SceneRef) -> np.ndarray:
    return dense_labels(indices, labels, size, f"{ref.source}: scene {ref.scene!r}")


def _slice(labels: np.ndarray, start: int, stop: int) -> np.ndarray:
    return labels[start:stop]


def _array_blocks(labels: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(labels), size):
        yield start, labels[start : start + size]


def _las_blocks(ref: SceneRef, options: PointOptions) -> Iterator[tuple[int, np.ndarray]]:
    """int16 class indices of a LAS dimension in chunks, through the label map."""
    assert ref.las is not None
    for start, values in iter_dimensions(ref.las, options.chunk_points, (ref.dimension,)):
        yield start, _classes(values[ref.dimension], ref, start, options)


def _one_file_blocks(truth: SceneRef, pred_dimension: str, options: PointOptions) -> Blocks:
    """Truth and prediction as two dimensions of one file (``infer --las`` keeps the source's
    classification beside its prediction), read once."""
    assert truth.las is not None
    dimensions = tuple(dict.fromkeys((truth.dimension, pred_dimension)))
    pred = SceneRef(truth.scene, pred_dimension, las=truth.las)
    for start, values in iter_dimensions(truth.las, options.chunk_points, dimensions):
        yield (
            start,
            _classes(values[truth.dimension], truth, start, options),
            _classes(values[pred_dimension], pred, start, options),
        )


def _classes(codes: np.ndarray, ref: SceneRef, start: int, options: PointOptions) -> np.ndarray:
    # The class map is checked when counting, where the error can say truth or prediction.
    labels, _ = point_labels(codes, options.label_map, None, start, ref.source)
    return labels


class _Sequential:
    """Consecutive point ranges served from a stream of chunks of any size."""

    def __init__(self, chunks: Iterator[tuple[int, np.ndarray]]) -> None:
        self._chunks = chunks
        self._start = 0
        self._buffer = np.empty(0, np.int16)

    def take(self, start: int, stop: int) -> np.ndarray:
        parts = [self._buffer[start - self._start :]]
        held = self._start + len(self._buffer)
        while held < stop:
            first, labels = next(self._chunks)  # LAS point counts were checked to match
            parts.append(labels)
            held = first + len(labels)
        self._buffer = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._start = start
        return self._buffer[: stop - start]

"""The counting kernel: confusion matrices from label blocks (SPEC §4.7, §8).

Counting is a ``bincount`` of ``truth * K + pred``. Blocks of about a million pixels keep
the temporaries small; with 8-bit labels and K <= 16 the combined index still fits in a
uint8, which halves the memory traffic of the index (the fastest plain-numpy variant we
measured). 8-bit maps with ignored pixels (or labels out of range) are counted as byte
pairs in a 256×256 table, checked on the table rather than pixel by pixel; only an error
takes the slow per-pixel path, to name the pixel. Counts are int64 throughout, so they
stay exact far beyond 2**24 pixels of one class (where float32 histograms such as
``smp.metrics.get_stats`` go wrong).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinyseg_cli.errors import TinysegError

BLOCK_PIXELS = 1 << 20
MAX_CLASSES = 1 << 16  # labels are uint8/uint16 class indices (palettes map to 0..65535)


class LabelOutOfRange(TinysegError):
    """A label that is neither a class of the class map nor the ignore index."""

    def __init__(self, role: str, flat_index: int, value: int, n_classes: int | None) -> None:
        self.role = role
        self.flat_index = flat_index
        self.value = value
        self.n_classes = n_classes
        expected = f"0..{n_classes - 1}" if n_classes else "a class index >= 0"
        super().__init__(f"{role} label {value} is outside the class map (expected {expected})")


def grow(matrix: np.ndarray, size: int) -> np.ndarray:
    """``matrix`` zero-padded to ``size``×``size`` (a no-op when it is that large already)."""
    if matrix.shape[0] >= size:
        return matrix
    out = np.zeros((size, size), dtype=np.int64)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def add_matrices(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of two square confusion matrices of possibly different sizes."""
    size = max(a.shape[0], b.shape[0])
    out = grow(a, size).copy()
    out += grow(b, size)
    return out


def confusion_block(
    truth: np.ndarray,
    pred: np.ndarray,
    n_classes: int | None = None,
    ignore_index: int | None = None,
    offset: int = 0,
) -> np.ndarray:
    """Confusion matrix (rows truth, columns prediction) of two flat label blocks.

    ``n_classes`` None infers K from the largest label seen. Pixels whose truth is
    ``ignore_index`` are skipped. Raises :class:`LabelOutOfRange` (with the flat index
    ``offset + i``) for any other label outside ``0..K-1``.
    """
    if truth.size == 0:
        return np.zeros((n_classes or 0, n_classes or 0), dtype=np.int64)
    t_max, p_max = int(truth.max()), int(pred.max())
    limit = n_classes if n_classes is not None else max(t_max, p_max) + 1
    fast = t_max < limit and p_max < limit
    fast &= truth.dtype.kind != "i" and pred.dtype.kind != "i"  # negatives need the check
    # An ignore index inside 0..K-1 cannot be told apart by the range test alone.
    fast &= ignore_index is None or not 0 <= ignore_index < limit
    if fast:
        return _bincount_square(truth, pred, limit)
    if truth.dtype == np.uint8 and pred.dtype == np.uint8:
        matrix = _byte_pair_counts(truth, pred, n_classes, ignore_index)
        if matrix is not None:
            return matrix
    return _checked_counts(truth, pred, n_classes, ignore_index, offset)


def _byte_pair_counts(
    truth: np.ndarray, pred: np.ndarray, n_classes: int | None, ignore_index: int | None
) -> np.ndarray | None:
    """Counts of 8-bit maps holding ignored or out-of-range labels, or None when a label
    is out of range (the checked path then finds and names it).

    Every (truth, prediction) byte pair is counted in a 256×256 table; ignored truth rows
    are dropped and the range is checked on the table, not per pixel. This avoids the
    checked path's masks and copies: 1.5x faster on masks with ignored pixels.
    """
    index = np.multiply(truth, np.uint16(256), out=_scratch(truth.size, np.uint16))
    np.add(index, pred, out=index)
    table = _sparse_bincount(index, 256 * 256).reshape(256, 256)
    if ignore_index is not None and 0 <= ignore_index < 256:
        table[ignore_index] = 0
    rows, cols = np.nonzero(table)
    if rows.size == 0:
        return np.zeros((n_classes or 0, n_classes or 0), dtype=np.int64)
    size = int(max(rows.max(), cols.max())) + 1
    if n_classes is not None:
        if size > n_classes:
            return None
        size = n_classes
    out = np.zeros((size, size), dtype=np.int64)
    used = min(size, 256)
    out[:used, :used] = table[:used, :used]
    return out


def _checked_counts(
    truth: np.ndarray,
    pred: np.ndarray,
    n_classes: int | None,
    ignore_index: int | None,
    offset: int,
) -> np.ndarray:
    """The slow path: drop ignored pixels, check every label, then count."""
    keep = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    for role, labels in (("truth", truth), ("prediction", pred)):
        bad = labels < 0
        if n_classes is not None:
            bad |= labels >= n_classes
        bad &= keep
        if bad.any():
            i = int(np.argmax(bad))
            raise LabelOutOfRange(role, offset + i, int(labels[i]), n_classes)
    truth, pred = truth[keep], pred[keep]
    if truth.size == 0:
        return np.zeros((n_classes or 0, n_classes or 0), dtype=np.int64)
    size = n_classes if n_classes is not None else int(max(truth.max(), pred.max())) + 1
    return _bincount_square(truth, pred, size)


def _bincount_square(truth: np.ndarray, pred: np.ndarray, size: int) -> np.ndarray:
    if size * size <= 256 and truth.dtype == np.uint8 and pred.dtype == np.uint8:
        index = np.multiply(truth, np.uint8(size), out=_scratch(truth.size, np.uint8))
        np.add(index, pred, out=index)
    else:
        index = np.multiply(truth, size, out=_scratch(truth.size, np.intp), dtype=np.intp)
        np.add(index, pred, out=index, casting="unsafe")  # labels were range-checked
    return _sparse_bincount(index, size * size).reshape(size, size)


def _sparse_bincount(index: np.ndarray, bins: int) -> np.ndarray:
    """``np.bincount(index, minlength=bins)`` as int64, fast when most indices are 0.

    Tiny targets put most pixels in cell (0, 0), and bincount slows down when most
    increments hit one counter; counting that cell with count_nonzero and bincounting
    only the rest is 2-4x faster on such blocks (benchmarks/bench_score.py).
    """
    background = index.size - np.count_nonzero(index)
    if background * 2 > index.size:
        counted = np.not_equal(index, 0, out=_scratch(index.size, np.bool_))
        counts = np.bincount(index[counted], minlength=bins)
        counts[0] += background
    else:
        counts = np.bincount(index, minlength=bins)
    return counts.astype(np.int64, copy=False)


_SCRATCH = threading.local()  # one set of work buffers per thread


def _scratch(size: int, dtype: type) -> np.ndarray:
    """A reused work buffer of ``size`` elements. Fresh block-sized temporaries cost page
    faults once decoding has churned the heap (3x the counting time between decodes)."""
    key = np.dtype(dtype)
    buffers = _SCRATCH.__dict__.setdefault("buffers", {})
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(max(size, BLOCK_PIXELS), key)
    return buffer[:size]


def row_blocks(rows: int, width: int, block_pixels: int = BLOCK_PIXELS) -> Iterator[slice]:
    """Slices of whole rows holding about ``block_pixels`` pixels each."""
    step = max(1, block_pixels // max(width, 1))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def confusion_matrix(
    truth: Any,
    pred: Any,
    n_classes: int | None = None,
    ignore_index: int | None = None,
    block_pixels: int = BLOCK_PIXELS,
) -> np.ndarray:
    """Confusion matrix of two label arrays of one shape, counted in blocks of rows.

    ``truth`` and ``pred`` are numpy arrays (memory-mapped ones too) or anything with a
    ``shape`` whose slices along the first axis give label arrays, such as
    :class:`~tinyseg_cli.io.rasters.LabelMap`. Memory beyond the inputs stays bounded by
    ``block_pixels``. A :class:`LabelOutOfRange` carries the flat index of the label.
    """
    if tuple(truth.shape) != tuple(pred.shape):
        raise TinysegError(f"shape mismatch: truth {truth.shape}, prediction {pred.shape}")
    rows = truth.shape[0] if len(truth.shape) else 1
    width = math.prod(truth.shape[1:])
    matrix = np.zeros((n_classes or 0, n_classes or 0), dtype=np.int64)
    for block in row_blocks(rows, width, block_pixels):
        counts = confusion_block(
            np.ascontiguousarray(truth[block]).reshape(-1),
            np.ascontiguousarray(pred[block]).reshape(-1),
            n_classes,
            ignore_index,
            offset=block.start * width,
        )
        matrix = add_matrices(matrix, counts)
    return matrix


def label_counts_block(
    labels: np.ndarray,
    n_classes: int | None = None,
    ignore_index: int | None = None,
    offset: int = 0,
) -> np.ndarray:
    """Pixels per class of a flat label block (SPEC §6.1), ``ignore_index`` left out.

    ``n_classes`` None sizes the result by the largest counted label (at most
    ``MAX_CLASSES``). Raises :class:`LabelOutOfRange` (flat index ``offset + i``) for a
    label outside ``0..K-1`` that is not the ignore index.
    """
    limit = MAX_CLASSES if n_classes is None else n_classes
    if labels.size == 0:
        return np.zeros(n_classes or 0, dtype=np.int64)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= limit or (ignore_index is not None and low <= ignore_index <= high):
        keep = labels != ignore_index if ignore_index is not None else np.ones(labels.shape, bool)
        bad = keep & ((labels < 0) | (labels >= limit))
        if bad.any():
            i = int(np.argmax(bad))
            raise LabelOutOfRange("mask", offset + i, int(labels[i]), limit)
        labels = labels[keep]
    if labels.dtype == np.uint64:  # bincount cannot cast uint64 safely; the values are small
        labels = labels.astype(np.int64)
    return np.bincount(labels, minlength=n_classes or 0).astype(np.int64, copy=False)


def label_counts(
    labels: Any,
    n_classes: int | None = None,
    ignore_index: int | None = None,
    block_pixels: int = BLOCK_PIXELS,
) -> np.ndarray:
    """Pixels per class of a label array (or :class:`~tinyseg_cli.io.rasters.LabelMap`),
    counted in blocks of rows so memory beyond the input stays bounded."""
    rows = labels.shape[0] if len(labels.shape) else 1
    width = math.prod(labels.shape[1:])
    total = np.zeros(n_classes or 0, dtype=np.int64)
    for block in row_blocks(rows, width, block_pixels):
        flat = np.ascontiguousarray(labels[block]).reshape(-1)
        counts = label_counts_block(flat, n_classes, ignore_index, offset=block.start * width)
        if counts.size > total.size:
            counts[: total.size] += total
            total = counts
        else:
            total[: counts.size] += counts
    return total


def one_vs_rest(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (TP, FP, FN, TN) from a confusion matrix (rows truth, columns prediction)."""
    tp = np.diagonal(matrix).astype(np.int64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    tn = matrix.sum() - tp - fp - fn
    return tp, fp, fn, tn

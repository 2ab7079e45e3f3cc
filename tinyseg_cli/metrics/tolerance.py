"""Counting within a distance of the truth (``score --tolerance D``), the way crack and edge
benchmarks count: a predicted pixel is right when a truth pixel lies within D (Euclidean,
``<= D``) and a truth pixel is found when a predicted pixel lies within D.

Two rules. ``relaxed``: each side on its own (distance transforms, as the masonry and
"relaxed" evaluators). ``matched``: one-to-one pairs within D, as the BSDS benchmark's
``correspondPixels`` makes them; here a maximum-cardinality bipartite matching
(Hopcroft–Karp, ``scipy.sparse.csgraph.maximum_bipartite_matching``), which is exact and
deterministic where the benchmark's CSA with random outlier edges can lose a match.

Predictions are thinned before counting as the benchmark thins them (MATLAB's
``bwmorph(E, 'thin', inf)``, the parallel algorithm of Lam, Lee and Suen 1992; the same
result as scikit-image's ``thin``, which the tests check): written here because
scikit-image's takes ~40 ms on a 480×320 map and a sweep thins once per threshold. It visits
only pixels on the boundary of what is left (a pixel can be removed only when a 4-neighbour
is background), so its cost follows the pixels removed, not the image size times the
number of passes.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from tinyseg_cli.metrics.sweep import SweepCounts, at_or_above

RULES = ("relaxed", "matched")
THIN = ("pred", "both", "none")
# 8-neighbours in the order of Lam, Lee and Suen: x1 = east, counter-clockwise to x8 = SE.
NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


@cache
def _thin_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each 8-neighbourhood code (bit i-1 = x_i), whether the first and the second
    subiteration of the thinning delete the centre pixel (conditions G1, G2, G3/G3')."""
    first = np.zeros(256, bool)
    second = np.zeros(256, bool)
    for code in range(256):
        x = [(code >> i) & 1 for i in range(8)]
        x = [x[7], *x, x[0]]  # x[0] = x8, x[1..8], x[9] = x1
        crossings = sum(1 for i in range(1, 5) if not x[2 * i - 1] and (x[2 * i] or x[2 * i + 1]))
        n1 = sum(1 for k in range(1, 5) if x[2 * k - 1] or x[2 * k])
        n2 = sum(1 for k in range(1, 5) if x[2 * k] or x[2 * k + 1])
        g12 = crossings == 1 and 2 <= min(n1, n2) <= 3
        first[code] = g12 and not ((x[2] or x[3] or not x[8]) and x[1])
        second[code] = g12 and not ((x[6] or x[7] or not x[4]) and x[5])
    return first, second


def thin(mask: np.ndarray) -> np.ndarray:
    """MATLAB's ``bwmorph(mask, 'thin', inf)``: both subiterations repeated until nothing
    changes. Returns a new boolean array.

    Each pixel's 8-neighbourhood code is kept in a byte image and updated where a pixel is
    deleted, so a subiteration reads one byte per candidate; candidates are the pixels with
    a background 4-neighbour (no other pixel can be deleted), renewed around deletions."""
    image = np.pad(mask.astype(bool), 1)
    height, width = image.shape
    flat = image.ravel()
    steps = np.array([dy * width + dx for dy, dx in NEIGHBOURS], np.int64)
    code = np.zeros((height, width), np.uint8)
    for bit, (dy, dx) in enumerate(NEIGHBOURS):
        code[1:-1, 1:-1] |= image[1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx].view(
            np.uint8
        ) << np.uint8(bit)
    code = code.ravel()
    four = np.uint8(0b01010101)  # x1, x3, x5, x7: E, N, W, S
    candidates = np.flatnonzero(flat)
    candidates = candidates[(code[candidates] & four) != four]
    marked = np.zeros(flat.size, bool)
    # clearing a deleted pixel's bit in each neighbour: the neighbour in direction k sees it
    # in the opposite direction, bit (k + 4) % 8
    clear = [np.uint8(~(1 << ((bit + 4) % 8)) & 0xFF) for bit in range(8)]
    tables = _thin_tables()
    idle = 0
    while idle < 2:  # a subiteration of each kind without a deletion: done
        for table in tables:
            if candidates.size == 0:
                return image[1:-1, 1:-1].copy()
            removed = table[code[candidates]]
            if not removed.any():
                idle += 1
                continue
            idle = 0
            deleted = candidates[removed]
            flat[deleted] = False
            marked[candidates[~removed]] = True
            for bit in range(8):
                neighbour = deleted + steps[bit]
                code[neighbour] &= clear[bit]
                marked[neighbour] = True
            marked &= flat
            near = np.flatnonzero(marked)
            marked[near] = False
            candidates = near[(code[near] & four) != four]
    return image[1:-1, 1:-1].copy()


def disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The integer offsets (dy, dx) with dy² + dx² <= radius²."""
    reach = math.floor(radius)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = dy * dy + dx * dx <= radius * radius + 1e-9
    return dy[inside].astype(np.int64), dx[inside].astype(np.int64)


def _any_within(source: np.ndarray, targets: np.ndarray, radius: float) -> np.ndarray:
    """For each pixel of ``targets`` (a boolean map), whether ``source`` holds a pixel within
    ``radius`` of it."""
    ys, xs = np.nonzero(targets)
    reach = math.floor(radius)
    padded = np.pad(source, reach)
    dy, dx = disk_offsets(radius)
    return padded[ys[:, None] + reach + dy, xs[:, None] + reach + dx].any(axis=1)


def near(truth: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within ``radius`` of a truth pixel (an exact Euclidean distance transform)."""
    if not truth.any():
        return np.zeros(truth.shape, bool)
    return ndimage.distance_transform_edt(~truth) <= radius + 1e-9


def max_within(scores: np.ndarray, radius: float) -> np.ndarray:
    """Each pixel's largest score within ``radius`` (a maximum filter over a disk)."""
    dy, dx = disk_offsets(radius)
    reach = math.floor(radius)
    footprint = np.zeros((2 * reach + 1, 2 * reach + 1), bool)
    footprint[dy + reach, dx + reach] = True
    return ndimage.maximum_filter(scores, footprint=footprint, mode="constant", cval=0)


def matched_pairs(pred: np.ndarray, truth: np.ndarray, radius: float) -> int:
    """The size of a maximum one-to-one matching of predicted to truth pixels within
    ``radius`` (Hopcroft–Karp: no matching within the radius has more pairs)."""
    ys, xs = np.nonzero(pred)
    if ys.size == 0 or not truth.any():
        return 0
    reach = math.floor(radius)
    index = np.full((truth.shape[0] + 2 * reach, truth.shape[1] + 2 * reach), -1, np.int64)
    ty, tx = np.nonzero(truth)
    index[ty + reach, tx + reach] = np.arange(ty.size)
    dy, dx = disk_offsets(radius)
    partners = index[ys[:, None] + reach + dy, xs[:, None] + reach + dx]
    edges = partners >= 0
    indptr = np.concatenate(([0], np.cumsum(edges.sum(axis=1))))
    graph = csr_matrix(
        (np.ones(int(indptr[-1]), np.int8), partners[edges], indptr), shape=(ys.size, ty.size)
    )
    return int(np.count_nonzero(maximum_bipartite_matching(graph, perm_type="column") >= 0))


def tolerance_counts(
    levels: np.ndarray,
    scores: np.ndarray,
    truth: np.ndarray,
    valid: np.ndarray,
    n_thresholds: int,
    radius: float,
    rule: str,
    thin_mode: str,
) -> SweepCounts:
    """Counts of one image and class at every threshold within ``radius`` of the truth.

    ``levels``: how many thresholds each score reaches (:func:`metrics.sweep.reached`);
    ``scores``: the probabilities themselves (for the one-pass relaxed sweep); ``truth``:
    the class's truth pixels; ``valid``: the pixels that count. Relaxed without thinning is
    one pass; thinning or matching work threshold by threshold.
    """
    truth = truth & valid
    if thin_mode == "both":
        truth = thin(truth)
    truth_total = int(np.count_nonzero(truth))
    levels = np.where(valid, levels, 0)
    close = near(truth, radius)
    if rule == "relaxed" and thin_mode == "none":
        found = at_or_above(_levels_of_max(levels, radius)[truth], n_thresholds)
        return SweepCounts(
            found,
            np.full(n_thresholds, truth_total, np.int64),
            at_or_above(levels[close], n_thresholds),
            at_or_above(levels, n_thresholds),
        )
    cnt_r, cnt_p, sum_p = (np.zeros(n_thresholds, np.int64) for _ in range(3))
    for k in range(n_thresholds):
        pred = levels > k
        if not pred.any():
            continue  # higher thresholds predict nothing either
        if thin_mode != "none":
            pred = thin(pred)
        sum_p[k] = np.count_nonzero(pred)
        if rule == "matched":
            cnt_r[k] = cnt_p[k] = matched_pairs(pred, truth, radius)
        else:
            cnt_p[k] = np.count_nonzero(pred & close)
            cnt_r[k] = np.count_nonzero(_any_within(pred, truth, radius))
    return SweepCounts(cnt_r, np.full(n_thresholds, truth_total, np.int64), cnt_p, sum_p)


def _levels_of_max(levels: np.ndarray, radius: float) -> np.ndarray:
    """The most thresholds any pixel within ``radius`` reaches (the maximum filter of the
    levels equals the levels of the maximum filter: the binning is monotone)."""
    return max_within(levels, radius)

"""Class-aware patch sampling (SPEC §4.2): candidate patches, draws and pixel balance.

Pure functions over label arrays and candidate counts; no I/O.

Patch geometry: a patch of side ``size`` is addressed by its top-left corner (y, x) and
covers rows y … y + size − 1 and columns x … x + size − 1. Its centre is
(y + size // 2, x + size // 2): the middle pixel for odd sizes, the lower-right one of the
four middle pixels for even sizes. A patch is *valid* when it lies fully inside the label
array (the ROI), i.e. 0 ≤ y ≤ H − size and 0 ≤ x ≤ W − size, so there are
(H − size + 1)·(W − size + 1) valid patches. It is a *candidate* for class c when it also
holds at least one pixel of c.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyseg_cli.errors import TinysegError


def centre_offset(size: int) -> int:
    """Offset from a patch's top-left corner to its centre, on both axes."""
    return size // 2


def valid_patches(shape: tuple[int, int], size: int) -> int:
    """How many ``size``×``size`` patches lie fully inside an array of ``shape``."""
    return max(0, shape[0] - size + 1) * max(0, shape[1] - size + 1)


def _running_any(present: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``out[i] = present[i : i + size].any()`` along ``axis`` (the rest unchanged).

    A running maximum by doubling: ORs of windows of 1, 2, 4 … cells, then one OR of two
    overlapping windows of the largest power of two ≤ ``size``. About log2(size) passes
    over booleans, each a plain vectorised OR: much faster than the summed-area table
    (int32 prefix sums and four lookups) for the same exact answer (benchmarks/
    bench_resample.py).
    """
    cells = np.moveaxis(present, axis, 0)
    width = 1
    while 2 * width <= size:
        n = cells.shape[0] - width
        cells = np.logical_or(cells[:n], cells[width : width + n])
        width *= 2
    n = present.shape[axis] - size + 1
    if width == size:
        return np.moveaxis(cells[:n], 0, axis)
    out = np.logical_or(cells[:n], cells[size - width : size - width + n])
    return np.moveaxis(out, 0, axis)


def candidate_tops(present: np.ndarray, size: int) -> np.ndarray:
    """Which patches hold at least one ``True`` pixel of ``present`` (SPEC §4.2).

    ``present`` is an (H, W) boolean indicator of one class (over the ROI). The result is
    an (H − size + 1, W − size + 1) boolean array indexed by the patches' top-left corners;
    the candidate *centres* are its True cells shifted by :func:`centre_offset`. Empty when
    the patch does not fit. A box "dilation" made separable: a running OR along the rows,
    then along the columns, never a size×size structuring element (SPEC §8).
    """
    height, width = present.shape
    if size < 1:
        raise ValueError(f"patch size must be >= 1, got {size}")
    if height < size or width < size:
        return np.zeros((max(0, height - size + 1), max(0, width - size + 1)), bool)
    return _running_any(_running_any(present.astype(bool, copy=False), size, 1), size, 0)


def positions_of_ranks(
    tops: np.ndarray, ranks: np.ndarray, negate: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left (y, x) of the ``ranks``-th True cells of ``tops`` in row-major order.

    With ``negate`` the False cells are counted instead (patches without the class).
    Ranks must lie in 0 … count − 1.
    """
    per_row = np.count_nonzero(tops, axis=1)
    if negate:
        per_row = tops.shape[1] - per_row
    ends = np.cumsum(per_row)
    rows = np.searchsorted(ends, ranks, side="right")
    within = ranks - (ends[rows] - per_row[rows])
    cols = np.empty(len(ranks), np.int64)
    for row in np.unique(rows):
        picked = rows == row
        line = ~tops[row] if negate else tops[row]
        cols[picked] = np.flatnonzero(line)[within[picked]]
    return rows.astype(np.int64), cols


def patch_pixels(
    labels: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    size: int,
    n_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Pixels of each class 0 … n_classes − 1 in each patch, as a (patches, n_classes) array.

    ``labels`` hold class indices and possibly ``ignore_index``, which is not counted.
    One ``bincount`` per window: size² work per patch, cheapest for few patches.
    """
    out = np.zeros((len(ys), n_classes), np.int64)
    width = n_classes
    if ignore_index is not None and ignore_index >= 0:
        width = max(width, ignore_index + 1)
    for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist(), strict=True)):
        window = labels[y : y + size, x : x + size].reshape(-1)
        if ignore_index is not None and ignore_index < 0:
            window = window[window != ignore_index]
        counts = np.bincount(window, minlength=width)
        if ignore_index is not None and 0 <= ignore_index < counts.size:
            counts[ignore_index] = 0
        out[i] = counts[:n_classes]
    return out


def summed_area(present: np.ndarray) -> np.ndarray:
    """The (H + 1, W + 1) summed-area table of an (H, W) indicator: ``table[y, x]`` is the
    number of True pixels above row y and left of column x. int32 while H·W < 2³¹ (no entry
    exceeds H·W, so exact), else int64."""
    height, width = present.shape
    table = np.zeros((height + 1, width + 1), np.int32 if height * width < 2**31 else np.int64)
    # Down the columns one row add at a time, then along the rows in place: at 4096² numpy's
    # cumsum down axis 0 took 8x the row adds, and casting bool while summing 1.7x (the
    # textbook two cumsums 0.44 s, this 0.09 s).
    rows = present.view(np.uint8)
    for y in range(height):
        np.add(table[y, 1:], rows[y], out=table[y + 1, 1:])
    np.cumsum(table, axis=1, out=table)
    return table


def window_sums(table: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int) -> np.ndarray:
    """Sums over the ``size``×``size`` windows at top-left (ys, xs) of a
    :func:`summed_area` table: four lookups each, as int64."""
    bottom, right = ys + size, xs + size
    sums = table[bottom, right].astype(np.int64)
    sums -= table[ys, right]
    sums -= table[bottom, xs]
    sums += table[ys, xs]
    return sums


def patch_pixels_summed(
    labels: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    size: int,
    n_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray:
    """:func:`patch_pixels` by one summed-area table per class present: O(H·W) per class
    whatever the number of patches, never k×k work per patch (SPEC §8).

    Without an ignored pixel the most frequent class needs no table: it holds whatever the
    other classes leave of each window. Only one table is alive at a time (int32: 64 MiB
    at 4096²).
    """
    totals = np.array(
        [0 if c == ignore_index else np.count_nonzero(labels == c) for c in range(n_classes)],
        np.int64,
    )
    out = np.zeros((len(ys), n_classes), np.int64)
    present = np.flatnonzero(totals)
    rest = -1
    if present.size and int(totals.sum()) == labels.size:
        rest = int(np.argmax(totals))
    for c in present.tolist():
        if c != rest:
            out[:, c] = window_sums(summed_area(labels == c), ys, xs, size)
    if rest >= 0:
        out[:, rest] = size * size - out.sum(axis=1)
    return out


def window_pixels(
    labels: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    size: int,
    n_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Pixels of each class in each patch (exact), by whichever way is cheaper: a
    ``bincount`` per window costs about as much per pixel as a summed-area table does, so
    tables pay off once the windows hold more pixels than the tables to build."""
    if len(ys) * size * size <= labels.size:
        return patch_pixels(labels, ys, xs, size, n_classes, ignore_index)
    return patch_pixels_summed(labels, ys, xs, size, n_classes, ignore_index)


def place_patches(
    labels: np.ndarray,
    selector: np.ndarray,
    negate: np.ndarray,
    rank: np.ndarray,
    size: int,
    n_classes: int,
    ignore_index: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-left (y, x) and pixels per class of drawn patches in one label array: patch i is
    the ``rank[i]``-th candidate of class ``selector[i]`` (−1: of every valid patch; with
    ``negate[i]``: of the patches without the class), in row-major order."""
    ys = np.zeros(rank.size, np.int64)
    xs = np.zeros(rank.size, np.int64)
    kinds = set(zip(selector.tolist(), negate.tolist(), strict=True))
    tops: dict[int, np.ndarray] = {}
    for kind, negated in sorted(kinds):
        picked = (selector == kind) & (negate == negated)
        if kind < 0:  # any valid patch: ranks count top-left corners row by row
            ys[picked], xs[picked] = np.divmod(rank[picked], labels.shape[1] - size + 1)
            continue
        if kind not in tops:
            tops[kind] = candidate_tops(labels == kind, size)
        ys[picked], xs[picked] = positions_of_ranks(tops[kind], rank[picked], negated)
    return ys, xs, window_pixels(labels, ys, xs, size, n_classes, ignore_index)


def largest_remainder(total: int, weights: Sequence[float]) -> np.ndarray:
    """``total`` split into integers proportional to ``weights`` (largest-remainder method).

    The parts sum to ``total`` exactly; ties in the remainders go to the earlier part.
    """
    shares = np.asarray(weights, np.float64)
    exact = total * shares / shares.sum()
    parts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - parts), kind="stable")
    parts[order[: total - int(parts.sum())]] += 1
    return parts


def draw_ranks(
    counts: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``k`` draws, uniform with replacement over every candidate of every image.

    ``counts[i]`` is the number of candidates of image i; returns, per draw, the image and
    the rank of the candidate within that image. Each candidate has the same chance, so
    images weigh by how many candidates they hold.
    """
    ends = np.cumsum(counts)
    if k == 0 or ends[-1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat = rng.integers(0, ends[-1], size=k, dtype=np.int64)
    images = np.searchsorted(ends, flat, side="right")
    return images.astype(np.int64), flat - (ends[images] - counts[images])


NO_TARGET = -1  # target class of patches drawn for no class (random, binary negatives)


@dataclass(frozen=True)
class Quota:
    """``count`` patches among the candidates of class ``selector`` (−1: among every valid
    patch), or with ``negate`` among the patches without it; labelled ``target``."""

    selector: int
    negate: bool
    target: int
    count: int


def fixed_quotas(
    strategy: str,
    n: int,
    targets: Sequence[int],
    proportions: Sequence[float] | None = None,
    positive_fraction: float = 0.5,
) -> list[Quota]:
    """One draw of random, equal-samples, oversample or binary (SPEC §4.2) as quotas.

    random: n among every patch. equal-samples: n per target. oversample: n split over the
    targets by ``proportions`` (default equal shares) and the remainder 1 − Σ at random,
    rounded by largest remainder. binary: round(f·n) holding the one target, the rest
    without it.
    """
    if strategy == "random":
        return [Quota(-1, False, NO_TARGET, n)]
    if strategy == "equal-samples":
        return [Quota(c, False, c, n) for c in targets]
    if strategy == "binary":
        (c,) = targets
        positive = math.floor(positive_fraction * n + 0.5)
        return [Quota(c, False, c, positive), Quota(c, True, NO_TARGET, n - positive)]
    if strategy != "oversample":
        raise ValueError(f"{strategy!r} has no fixed composition")
    shares = list(proportions or [1.0] * len(targets))
    parts = largest_remainder(n, [*shares, max(0.0, 1.0 - sum(shares))])
    fixed = [Quota(c, False, c, int(k)) for c, k in zip(targets, parts, strict=False)]
    return [*fixed, Quota(-1, False, NO_TARGET, int(parts[-1]))]


def draw_quota(
    sizes: np.ndarray, count: int, rng: np.random.Generator, per_image: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Image and rank of ``count`` draws among pools of ``sizes`` candidates per image:
    over all images (:func:`draw_ranks`), or ``per_image``: ``count`` in each image that
    has candidates."""
    if not per_image:
        return draw_ranks(sizes, count, rng)
    images = np.repeat(np.flatnonzero(sizes), count)
    ranks = rng.integers(0, sizes[images]) if images.size else images
    return images.astype(np.int64), np.asarray(ranks, np.int64)


def composition(
    pixels: np.ndarray, target: np.ndarray, names: Sequence[str]
) -> list[dict[str, Any]]:
    """Per class of a (patches, classes) pixel count array: patches drawn for it, patches
    holding it, its pixels and their share of all counted pixels (background included)."""
    totals = pixels.sum(axis=0)
    total = int(totals.sum())
    return [
        {
            "index": c,
            "name": name,
            "drawn": int(np.count_nonzero(target == c)),
            "samples": int(np.count_nonzero(pixels[:, c])),
            "pixels": int(totals[c]),
            "share": totals[c] / total if total else 0.0,
        }
        for c, name in enumerate(names)
    ]


def pixel_spread(totals: np.ndarray) -> float:
    """(max − min) / max of pixel totals (SPEC §4.2); inf while every total is 0."""
    high = int(totals.max())
    return float("inf") if high == 0 else (high - int(totals.min())) / high


class Unbalanced(TinysegError):
    """``equal-pixels`` reached its patch cap before the tolerance held."""


HANDFUL = 64  # equal-pixels: candidates drawn per patch, the one adding least excess kept


def least_excess(totals: np.ndarray, targets: np.ndarray, low: int, handful: np.ndarray) -> int:
    """Row of ``handful`` ((k, C) pixel counts of candidates for class ``low``) that lifts
    the other target classes least above the level, per pixel of ``low`` it adds; ties go
    to the most pixels of ``low``, then to the first row.

    The level is the largest target total before the patch or ``low``'s total after it:
    pixels of another class up to it are needed anyway, only those beyond it raise the bar.
    Per pixel of ``low`` rather than the spread the patch leaves, because that favours big
    patches whatever they bring: at 3 common pixels per rare one the spread shrinks for a
    while, then settles at 2/3; a gap only closes with less than one excess pixel a gain.
    """
    gain = handful[:, low]
    others = targets[targets != low]
    level = np.maximum(totals[targets].max(), totals[low] + gain)
    excess = np.maximum(totals[others] + handful[:, others] - level[:, None], 0).sum(axis=1)
    return int(np.lexsort((-gain, excess / gain))[0])


class PixelBalancer:
    """Greedy ``equal-pixels`` (SPEC §4.2): the next patch is drawn for the target class
    with the fewest pixels so far (the lowest index on ties), until
    (max − min) / max ≤ ``tolerance`` over the targets' totals and at least
    ``min_patches`` patches are drawn.

    Each patch is the :func:`least_excess` one of ``handful`` candidates drawn uniformly
    among the class's candidates, so that a rare class found next to a common one can
    still catch up with it (``handful`` 1: uniform draws). Candidates come from per-class
    pools of pixel counts ((k, C) arrays, ``handful`` rows a patch, in draw order), so
    taking them in order is drawing on demand; :meth:`feed` asks for more when a pool
    runs dry.
    """

    def __init__(
        self,
        targets: Sequence[int],
        n_classes: int,
        tolerance: float,
        min_patches: int,
        max_patches: int,
        handful: int = HANDFUL,
    ) -> None:
        self.targets = np.asarray(targets, np.int64)
        self.tolerance = tolerance
        self.min_patches = min_patches
        self.max_patches = max_patches
        self.handful = handful
        self.totals = np.zeros(n_classes, np.int64)
        self.drawn = dict.fromkeys(self.targets.tolist(), 0)  # patches per class drawn for
        self.picks: dict[int, list[int]] = {}  # rows of each pool taken by the last feed

    @property
    def patches(self) -> int:
        return sum(self.drawn.values())

    @property
    def spread(self) -> float:
        return pixel_spread(self.totals[self.targets])

    @property
    def met(self) -> bool:
        return self.patches >= self.min_patches and self.spread <= self.tolerance

    def feed(self, pools: Mapping[int, np.ndarray]) -> int | None:
        """Take patches until the tolerance holds (returns None) or the pool of the class
        due next holds no whole handful more (returns that class). Raises
        :class:`Unbalanced` at the cap.

        ``pools[c]`` holds the candidates of class c not yet used; afterwards ``picks[c]``
        lists the rows taken, and the first ``handful × len(picks[c])`` rows are used up.
        """
        self.picks = {c: [] for c in self.targets.tolist()}
        while not self.met:
            if self.patches >= self.max_patches:
                raise Unbalanced(
                    f"equal-pixels: {self.max_patches} patches drawn and the pixel totals "
                    f"still differ by {self.spread:.1%} (tolerance {self.tolerance:.1%}); "
                    "raise --max-patches or --tolerance, or balance fewer classes (--class)"
                )
            low = int(self.targets[np.argmin(self.totals[self.targets])])
            start = len(self.picks[low]) * self.handful
            pool = pools.get(low)
            if pool is None or start + self.handful > len(pool):
                return low
            handful = pool[start : start + self.handful]
            row = start + least_excess(self.totals, self.targets, low, handful)
            self.totals += pool[row]
            self.picks[low].append(row)
            self.drawn[low] += 1
        return None

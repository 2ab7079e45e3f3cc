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


class PixelBalancer:
    """Greedy ``equal-pixels`` (SPEC §4.2): the next patch is drawn for the target class
    with the fewest pixels so far (the lowest index on ties), until
    (max − min) / max ≤ ``tolerance`` over the targets' totals and at least
    ``min_patches`` patches are drawn.

    Patches come from per-class pools of pixel counts ((k, C) arrays, in draw order, each
    row an independent uniform draw among the class's candidates), so taking them in order
    is drawing on demand; :meth:`feed` asks for more when a pool runs dry.
    """

    def __init__(
        self,
        targets: Sequence[int],
        n_classes: int,
        tolerance: float,
        min_patches: int,
        max_patches: int,
    ) -> None:
        self.targets = np.asarray(targets, np.int64)
        self.tolerance = tolerance
        self.min_patches = min_patches
        self.max_patches = max_patches
        self.totals = np.zeros(n_classes, np.int64)
        self.used = dict.fromkeys(self.targets.tolist(), 0)
        self.taken: list[tuple[int, int]] = []  # (class drawn for, row of its pool)

    @property
    def spread(self) -> float:
        return pixel_spread(self.totals[self.targets])

    @property
    def met(self) -> bool:
        return len(self.taken) >= self.min_patches and self.spread <= self.tolerance

    def feed(self, pools: Mapping[int, np.ndarray]) -> int | None:
        """Take patches until the tolerance holds (returns None) or the pool of the class
        due next is exhausted (returns that class). Raises :class:`Unbalanced` at the cap."""
        while not self.met:
            if len(self.taken) >= self.max_patches:
                raise Unbalanced(
                    f"equal-pixels: {self.max_patches} patches drawn and the pixel totals "
                    f"still differ by {self.spread:.1%} (tolerance {self.tolerance:.1%}); "
                    "raise --max-patches or --tolerance, or balance fewer classes (--class)"
                )
            low = self.targets[np.argmin(self.totals[self.targets])]
            index = self.used[int(low)]
            pool = pools.get(int(low))
            if pool is None or index >= len(pool):
                return int(low)
            self.totals += pool[index]
            self.used[int(low)] = index + 1
            self.taken.append((int(low), index))
        return None

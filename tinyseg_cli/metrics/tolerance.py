"""Counting within a distance of the truth (``score --tolerance D``), the way crack and edge
benchmarks count: a predicted pixel is right when a truth pixel lies within D (Euclidean,
``<= D``) and a truth pixel is found when a predicted pixel lies within D.

Two rules. ``relaxed``: each side on its own (distance transforms, as the masonry and
"relaxed" evaluators). ``matched``: one-to-one pairs within D, as the BSDS benchmark's
``correspondPixels`` makes them; here a maximum-cardinality bipartite matching, exact and
deterministic where the benchmark's CSA with random outlier edges can lose a match:
Hopcroft–Karp, compiled (:mod:`tinyseg_cli.metrics.tolerance_kernels`), each threshold of a
sweep starting from the last one's pairs. Not scipy's ``maximum_bipartite_matching``: its
Hopcroft–Karp search never marks dead ends and takes exponential time on layered graphs
(scipy issue #26147), which thin lines within a few pixels of each other are; one 480×320
CrackForest map took 27 s there and takes 7 ms here, truth and all.

Predictions are thinned before counting as the benchmark thins them
(:mod:`tinyseg_cli.metrics.thinning`).
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
from scipy import ndimage

from tinyseg_cli.metrics.sweep import SweepCounts, at_or_above
from tinyseg_cli.metrics.thinning import Thinner, thin


class Rule(StrEnum):
    """How predicted and truth pixels within the tolerance count (``--tolerance-rule``)."""

    relaxed = "relaxed"
    matched = "matched"


class ThinMode(StrEnum):
    """What is thinned before counting (``--thin``)."""

    pred = "pred"
    both = "both"
    none = "none"


def disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The integer offsets (dy, dx) with dy² + dx² <= radius²."""
    reach = math.floor(radius)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = dy * dy + dx * dx <= radius * radius + 1e-9
    return dy[inside].astype(np.int64), dx[inside].astype(np.int64)


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


class _TruthWithin:
    """One image's truth, ready for counting many predicted sets against it: the truth
    pixels, a map of their indices padded by the radius's reach, the disk's offsets and the
    pixels within the radius of the truth."""

    def __init__(self, truth: np.ndarray, radius: float) -> None:
        self.reach = math.floor(radius)
        self.dy, self.dx = disk_offsets(radius)
        self.ty, self.tx = np.nonzero(truth)
        pad = self.reach
        self.index = np.full((truth.shape[0] + 2 * pad, truth.shape[1] + 2 * pad), -1, np.int64)
        self.index[self.ty + pad, self.tx + pad] = np.arange(self.ty.size)
        self.close = near(truth, radius)
        self._hit: np.ndarray | None = None
        self._partner: np.ndarray | None = None  # the last matching, per truth pixel
        self._slot = np.empty(0, np.int64)

    def relaxed(self, pixels: np.ndarray, stamp: int) -> tuple[int, int]:
        """(predicted pixels with a truth pixel within the radius, truth pixels with a
        predicted pixel within it) of predicted ``pixels`` (flat indices); ``stamp``: a
        positive number no earlier call on this truth used."""
        from tinyseg_cli.metrics.tolerance_kernels import relaxed_counts

        if self._hit is None:
            self._hit = np.zeros(self.ty.size, np.int64)
        width = self.close.shape[1]
        return relaxed_counts(
            pixels, width, self.close, self.index, self.reach, self.dy, self.dx, self._hit, stamp
        )

    def matched(self, pixels: np.ndarray) -> int:
        """The size of a maximum one-to-one matching of predicted ``pixels`` (flat indices)
        to the truth pixels within the radius. Each call starts from the last call's
        matching (its pairs whose predicted pixel is still given), so a sweep's thresholds,
        which mostly keep the last one's pixels, extend it instead of matching from nothing."""
        from tinyseg_cli.metrics.tolerance_kernels import maximum_matching

        pixels = pixels[self.close.ravel()[pixels]]  # the others have no partner
        if pixels.size == 0:
            return 0
        if self._partner is None:
            self._partner = np.full(self.ty.size, -1, np.int64)
            self._slot = np.full(self.close.size, -1, np.int64)
        width = self.close.shape[1]
        return int(
            maximum_matching(
                pixels, width, self.index, self.reach, self.dy, self.dx, self._partner, self._slot
            )
        )


def matched_pairs(pred: np.ndarray, truth: np.ndarray, radius: float) -> int:
    """The size of a maximum one-to-one matching of predicted to truth pixels within
    ``radius`` (no matching within the radius has more pairs)."""
    return _TruthWithin(truth, radius).matched(np.flatnonzero(pred))


def tolerance_counts(
    levels: np.ndarray,
    truth: np.ndarray,
    valid: np.ndarray,
    n_thresholds: int,
    radius: float,
    rule: str,
    thin_mode: str,
) -> SweepCounts:
    """Counts of one image and class at every threshold within ``radius`` of the truth.

    ``levels``: how many thresholds each score reaches (:func:`metrics.sweep.reached`);
    ``truth``: the class's truth pixels; ``valid``: the pixels that count. Relaxed without
    thinning is one pass; thinning or matching work threshold by threshold, from the highest
    down, each adding the pixels its threshold brings.
    """
    truth = truth & valid
    if thin_mode == "both":
        truth = thin(truth)
    truth_total = int(np.count_nonzero(truth))
    levels = np.where(valid, levels, 0)
    if rule == "relaxed" and thin_mode == "none":
        found = at_or_above(_levels_of_max(levels, radius)[truth], n_thresholds)
        return SweepCounts(
            found,
            np.full(n_thresholds, truth_total, np.int64),
            at_or_above(levels[near(truth, radius)], n_thresholds),
            at_or_above(levels, n_thresholds),
        )
    within = _TruthWithin(truth, radius)
    # the predicted pixels, highest level first: each threshold's predicted set is a prefix
    positive = np.flatnonzero(levels)
    # (a stable sort of 16-bit keys is a radix sort, 4x faster than of 64-bit ones)
    key_type = np.uint16 if n_thresholds < 2**16 else np.int64
    falling = (n_thresholds - levels.ravel()[positive]).astype(key_type)
    order = positive[np.argsort(falling, kind="stable")]
    above = at_or_above(levels, n_thresholds)
    thinner = Thinner(levels.shape) if thin_mode != "none" else None
    # the same pixels as the thinning's (padded) flat indices
    padded = thinner.flat(*np.divmod(order, levels.shape[1])) if thinner else order
    cnt_r, cnt_p, sum_p = (np.zeros(n_thresholds, np.int64) for _ in range(3))
    added = 0
    for k in range(n_thresholds - 1, -1, -1):
        count = int(above[k])
        if count == 0:
            continue  # nothing reaches this threshold
        pixels = order[:count]
        if thinner is not None:
            thinner.add(padded[added:count])
            added = count
            pixels = thinner.unpadded(thinner.thin(padded[:count]))
        sum_p[k] = pixels.size
        if rule == "matched":
            cnt_r[k] = cnt_p[k] = within.matched(pixels)
        else:
            cnt_p[k], cnt_r[k] = within.relaxed(pixels, stamp=k + 1)
    return SweepCounts(cnt_r, np.full(n_thresholds, truth_total, np.int64), cnt_p, sum_p)


def _levels_of_max(levels: np.ndarray, radius: float) -> np.ndarray:
    """The most thresholds any pixel within ``radius`` reaches (the maximum filter of the
    levels equals the levels of the maximum filter: the binning is monotone)."""
    return max_within(levels, radius)

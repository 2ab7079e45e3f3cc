"""Counting within a distance of the truth (``score --tolerance D``), the way crack and edge
benchmarks count: a predicted pixel is right when a truth pixel lies within D (Euclidean,
``<= D``) and a truth pixel is found when a predicted pixel lies within D.

Two rules. ``relaxed``: each side on its own (distance transforms, as the masonry and
"relaxed" evaluators). ``matched``: one-to-one pairs within D, as the BSDS benchmark's
``correspondPixels`` makes them; here a maximum-cardinality bipartite matching, exact and
deterministic where the benchmark's CSA with random outlier edges can lose a match. It is
solved as a unit-capacity maximum flow (Dinic, ``scipy.sparse.csgraph.maximum_flow``), not
with ``maximum_bipartite_matching``: that one's Hopcroft–Karp search never marks dead ends
and takes exponential time on layered graphs (scipy issue #26147), which thin lines within a
few pixels of each other are; one 480×320 CrackForest map took 27 s there and 3 ms here.

Predictions are thinned before counting as the benchmark thins them
(:mod:`tinyseg_cli.metrics.thinning`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from tinyseg_cli.metrics.sweep import SweepCounts, at_or_above
from tinyseg_cli.metrics.thinning import Thinner, thin

RULES = ("relaxed", "matched")
THIN = ("pred", "both", "none")


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

    def partners(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """For each predicted pixel, the indices of the truth pixels within the radius
        (-1 where the disk holds none), one column per disk offset."""
        pad = self.reach
        return self.index[ys[:, None] + pad + self.dy, xs[:, None] + pad + self.dx]

    def correct(self, ys: np.ndarray, xs: np.ndarray) -> int:
        """Predicted pixels with a truth pixel within the radius."""
        return int(np.count_nonzero(self.close[ys, xs]))

    def found(self, ys: np.ndarray, xs: np.ndarray) -> int:
        """Truth pixels with a predicted pixel within the radius (the disk walked from the
        smaller side)."""
        close = self.close[ys, xs]
        ys, xs = ys[close], xs[close]  # only these can reach a truth pixel
        if ys.size == 0:
            return 0
        pad = self.reach
        if ys.size <= self.ty.size:
            partners = self.partners(ys, xs)
            hit = np.zeros(self.ty.size, bool)
            hit[partners[partners >= 0]] = True
            return int(np.count_nonzero(hit))
        predicted = np.zeros(self.index.shape, bool)
        predicted[ys + pad, xs + pad] = True
        around = predicted[self.ty[:, None] + pad + self.dy, self.tx[:, None] + pad + self.dx]
        return int(np.count_nonzero(around.any(axis=1)))

    def relaxed_on_padded(self, pixels: np.ndarray, width: int, stamp: int) -> tuple[int, int]:
        """(:meth:`correct`, :meth:`found`) of predicted pixels given as flat indices of an
        image padded by 1 and ``width`` wide, as the thinning keeps them; ``stamp``: a
        number no earlier call on this truth used (compiled, as the thinning)."""
        from tinyseg_cli.metrics.thin_kernels import relaxed_counts

        if self._hit is None:
            self._hit = np.zeros(self.ty.size, np.int64)
        return relaxed_counts(
            pixels, width, self.close, self.index, self.reach, self.dy, self.dx, self._hit, stamp
        )

    def matched(self, ys: np.ndarray, xs: np.ndarray) -> int:
        """The size of a maximum one-to-one matching of the predicted pixels to the truth
        pixels within the radius."""
        close = self.close[ys, xs]
        ys, xs = ys[close], xs[close]  # the others have no partner
        if ys.size == 0:
            return 0
        partners = self.partners(ys, xs)
        edges = partners >= 0
        n_pred, n_truth = ys.size, self.ty.size
        # a flow network in CSR rows: predicted pixels (an arc to each truth pixel within
        # the radius), truth pixels (an arc to the sink), the source (an arc to each
        # predicted pixel), the sink; every arc has capacity 1
        source, sink = n_pred + n_truth, n_pred + n_truth + 1
        arcs_per_row = np.concatenate((edges.sum(axis=1), np.ones(n_truth, np.int64), [n_pred, 0]))
        heads = np.concatenate(
            (n_pred + partners[edges], np.full(n_truth, sink), np.arange(n_pred))
        )
        indptr = np.concatenate(([0], np.cumsum(arcs_per_row)))
        network = csr_matrix(
            (np.ones(heads.size, np.int32), heads.astype(np.int32), indptr.astype(np.int32)),
            shape=(sink + 1, sink + 1),
        )
        return int(maximum_flow(network, source, sink, method="dinic").flow_value)


def matched_pairs(pred: np.ndarray, truth: np.ndarray, radius: float) -> int:
    """The size of a maximum one-to-one matching of predicted to truth pixels within
    ``radius`` (no matching within the radius has more pairs)."""
    return _TruthWithin(truth, radius).matched(*np.nonzero(pred))


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
    order = positive[np.argsort(-levels.ravel()[positive].astype(np.int64), kind="stable")]
    ys_all, xs_all = np.divmod(order, levels.shape[1])
    above = at_or_above(levels, n_thresholds)
    thinner = Thinner(levels.shape) if thin_mode != "none" else None
    # the same pixels as padded flat indices, what the thinning works on
    flat_all = thinner.flat(ys_all, xs_all) if thinner else np.empty(0, np.int64)
    cnt_r, cnt_p, sum_p = (np.zeros(n_thresholds, np.int64) for _ in range(3))
    added = 0
    for k in range(n_thresholds - 1, -1, -1):
        count = int(above[k])
        if count == 0:
            continue  # nothing reaches this threshold
        if thinner is None:
            ys, xs = ys_all[:count], xs_all[:count]
            sum_p[k] = count
        else:
            thinner.add(flat_all[added:count])
            added = count
            kept = thinner.thin(flat_all[:count])
            sum_p[k] = kept.size
            if rule == "relaxed":
                cnt_p[k], cnt_r[k] = within.relaxed_on_padded(kept, thinner.width, k + 1)
                continue
            ys, xs = thinner.yx(kept)
        if rule == "matched":
            cnt_r[k] = cnt_p[k] = within.matched(ys, xs)
        else:
            cnt_p[k] = within.correct(ys, xs)
            cnt_r[k] = within.found(ys, xs)
    return SweepCounts(cnt_r, np.full(n_thresholds, truth_total, np.int64), cnt_p, sum_p)


def _levels_of_max(levels: np.ndarray, radius: float) -> np.ndarray:
    """The most thresholds any pixel within ``radius`` reaches (the maximum filter of the
    levels equals the levels of the maximum filter: the binning is monotone)."""
    return max_within(levels, radius)

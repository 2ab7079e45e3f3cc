"""Threshold sweeps of probability maps, scored as the crack and edge literature scores them
(``score --thresholds``; shared/notes/crack-evaluation.md).

Counts first, as everywhere in tinyseg: per image, class and threshold the two sides' counts
the BSDS benchmark keeps, ``cnt_r``/``sum_r`` (truth pixels found / all truth pixels) and
``cnt_p``/``sum_p`` (predicted pixels that are right / all predicted pixels). Without a
tolerance they are the confusion counts: ``cnt_r = cnt_p = TP``, ``sum_r = TP + FN``,
``sum_p = TP + FP``. They add up over images and shards.

Exact-pixel counts at every threshold come from one pass over a map: each score is binned
by how many thresholds it reaches, and the histograms of truth-positive and truth-negative
pixels, summed from the top, give TP and FP at every threshold at once.

The summaries follow the BSDS benchmark (``edgesEvalDir``/``collectEvalEdge``, as
pyEdgeEval 0.2.8 implements them), where 0/0 ratios are 0 rather than tinyseg's null:
ODS is the best F over the set's pooled counts, linearly interpolated between adjacent
thresholds (101 steps, as ``findBestRPF``); OIS pools each image's counts at its own best
threshold (no interpolation); AP is the mean, over the recall levels 0, 0.01, …, 0.99, of
the best precision at that recall or above, summed and divided by 101 (the benchmark's own
quirk: 100 levels over 101).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BSDS_THRESHOLDS = 99
INTERPOLATION_STEPS = 101  # findBestRPF's linspace(0, 1, 101) between adjacent thresholds
AP_LEVELS = np.arange(0, 1, 0.01)  # the recall levels of the benchmark's AP


def parse_thresholds(spec: str) -> np.ndarray:
    """``--thresholds N`` (N evenly spaced in (0, 1), as the benchmark's
    ``linspace(1/(N+1), 1-1/(N+1), N)``) or ``0.1,0.2,…`` (sorted, distinct, in [0, 1]).
    ValueError names what is wrong."""
    text = spec.strip()
    if "," not in text and "." not in text:
        try:
            count = int(text)
        except ValueError:
            raise ValueError(f"{spec!r}: expected a count N or values t1,t2,…") from None
        if not 1 <= count <= 10_000:
            raise ValueError(f"{spec!r}: expected 1 to 10000 thresholds")
        return np.linspace(1 / (count + 1), 1 - 1 / (count + 1), count)
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"{spec!r}: expected numbers t1,t2,… in [0, 1]") from None
    if not values or not all(0 <= v <= 1 for v in values):
        raise ValueError(f"{spec!r}: expected numbers t1,t2,… in [0, 1]")
    return np.asarray(values, np.float64)


def reached(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of the (ascending) ``thresholds`` each score reaches: ``score >= t``, the
    comparison ``--threshold`` makes. Integer maps are probabilities scaled to their type's
    range (an 8-bit value v is v/255), compared as ``v >= t × 255``."""
    if scores.dtype.kind in "ui":
        limit = np.iinfo(scores.dtype).max
        if scores.dtype.itemsize <= 2:  # a lookup table over every value: one gather
            table = np.searchsorted(thresholds * limit, np.arange(limit + 1), side="right")
            return table.astype(np.int32)[scores]
        return np.searchsorted(thresholds * limit, scores, side="right").astype(np.int32)
    n = len(thresholds)
    if n > 1 and np.allclose(thresholds, np.arange(1, n + 1) / (n + 1), rtol=0, atol=1e-12):
        return _evenly_spaced(np.asarray(scores, np.float64), thresholds)
    return np.searchsorted(thresholds, np.asarray(scores, np.float64), side="right").astype(
        np.int32
    )


def _evenly_spaced(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """:func:`reached` for thresholds k/(n+1): the level from one multiplication, then
    corrected by a comparison either side, so rounding never moves a score across a
    threshold (a binary search costs log2(n) comparisons per pixel)."""
    n = len(thresholds)
    levels = np.floor(scores * (n + 1)).astype(np.int32)
    np.clip(levels, 0, n, out=levels)
    bounds = np.concatenate(([-np.inf], thresholds, [np.inf]))
    levels -= scores < bounds[levels]  # rounded up past its threshold
    levels += scores >= bounds[levels + 1]  # rounded down below the next one
    return levels


def at_or_above(levels: np.ndarray, n_thresholds: int) -> np.ndarray:
    """From how many thresholds each pixel reaches, the number of pixels positive at every
    threshold: a histogram summed from the top (one pass, whatever the thresholds)."""
    histogram = np.bincount(levels.ravel(), minlength=n_thresholds + 1)
    return np.cumsum(histogram[::-1])[::-1][1:].astype(np.int64)


@dataclass
class SweepCounts:
    """Counts of one image and class at each threshold (arrays of the thresholds' length);
    ``tn`` only without a tolerance."""

    cnt_r: np.ndarray
    sum_r: np.ndarray
    cnt_p: np.ndarray
    sum_p: np.ndarray
    tn: np.ndarray | None = None

    def __add__(self, other: SweepCounts) -> SweepCounts:
        tn = None if self.tn is None or other.tn is None else self.tn + other.tn
        return SweepCounts(
            self.cnt_r + other.cnt_r,
            self.sum_r + other.sum_r,
            self.cnt_p + other.cnt_p,
            self.sum_p + other.sum_p,
            tn,
        )


def exact_counts(
    levels: np.ndarray, truth: np.ndarray, valid: np.ndarray, n_thresholds: int
) -> SweepCounts:
    """Exact-pixel counts at every threshold from ``levels`` (:func:`reached`), the truth
    mask of the class and the pixels that count (the ignore label left out)."""
    bins = n_thresholds + 1
    key = levels + np.where(truth, bins, 0)  # one histogram of both sides
    key = key[valid] if not valid.all() else key
    histogram = np.bincount(key.ravel(), minlength=2 * bins)
    above = np.cumsum(histogram.reshape(2, bins)[:, ::-1], axis=1)[:, ::-1]
    negative, positive = above[0, 1:].astype(np.int64), above[1, 1:].astype(np.int64)
    truth_total, negatives_total = int(above[1, 0]), int(above[0, 0])
    return SweepCounts(
        positive,
        np.full(n_thresholds, truth_total, np.int64),
        positive,
        positive + negative,
        negatives_total - negative,
    )


def recall_precision_f(
    counts: SweepCounts, beta: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall, precision and F-beta at each threshold, 0/0 as 0 (the benchmark's rule)."""
    recall = counts.cnt_r / np.maximum(counts.sum_r, 1)
    precision = counts.cnt_p / np.maximum(counts.sum_p, 1)
    return recall, precision, f_score(precision, recall, beta)


def f_score(precision: np.ndarray, recall: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """F-beta of precision and recall, 0 where both are 0."""
    b2 = beta * beta
    denominator = b2 * precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (1 + b2) * precision * recall / denominator
    return np.where(denominator > 0, value, 0.0)


@dataclass(frozen=True)
class Best:
    """A point of the precision/recall curve: its threshold, recall, precision and F."""

    threshold: float
    recall: float
    precision: float
    f: float


def best_interpolated(thresholds: np.ndarray, recall: np.ndarray, precision: np.ndarray) -> Best:
    """ODS: the best F along the curve, recall and precision interpolated linearly between
    adjacent thresholds (findBestRPF); of equal F the first, thresholds ascending, as the
    benchmark's loop keeps it."""
    best = Best(
        float(thresholds[0]),
        float(recall[0]),
        float(precision[0]),
        float(f_score(precision[:1], recall[:1])[0]),
    )
    if len(thresholds) < 2:
        return best
    d = np.linspace(0, 1, INTERPOLATION_STEPS)[None, :]
    t = thresholds[1:, None] * d + thresholds[:-1, None] * (1 - d)
    r = recall[1:, None] * d + recall[:-1, None] * (1 - d)
    p = precision[1:, None] * d + precision[:-1, None] * (1 - d)
    f = f_score(p, r)
    at = int(np.argmax(f))  # row-major: the first pair, then the first step, as the loop
    if f.flat[at] > best.f:
        return Best(float(t.flat[at]), float(r.flat[at]), float(p.flat[at]), float(f.flat[at]))
    return best


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """The benchmark's AP: for recall levels 0, 0.01, …, 0.99 the best precision at that
    recall or above (0 where none), summed and divided by 101."""
    total = 0.0
    for level in AP_LEVELS:
        reaching = precision[recall >= level]
        total += float(reaching.max()) if reaching.size else 0.0
    return total / 101


@dataclass(frozen=True)
class SweepSummary:
    """ODS (with its point), OIS and AP of one class over a set of images."""

    ods: Best
    ois: Best  # pooled counts at each image's best threshold; threshold is NaN
    ap: float
    pooled: SweepCounts  # the set's counts at each threshold: the precision/recall curve
    per_image_mean: Best | None = None  # the other family's "ODS": best mean of image F


def summarize_sweep(
    thresholds: np.ndarray, per_image: list[SweepCounts], per_image_mean: bool = False
) -> SweepSummary:
    """ODS, OIS and AP of one class from each image's counts (see the module docstring)."""
    pooled = sum(per_image[1:], per_image[0])
    recall, precision, _ = recall_precision_f(pooled)
    ods = best_interpolated(thresholds, recall, precision)
    best = [0, 0, 0, 0]
    image_f = []
    for counts in per_image:
        _, _, f = recall_precision_f(counts)
        image_f.append(f)
        k = int(np.argmax(f))
        best[0] += int(counts.cnt_r[k])
        best[1] += int(counts.sum_r[k])
        best[2] += int(counts.cnt_p[k])
        best[3] += int(counts.sum_p[k])
    ois_r = best[0] / max(best[1], 1)
    ois_p = best[2] / max(best[3], 1)
    ois_f = float(f_score(np.array([ois_p]), np.array([ois_r]))[0])
    ois = Best(float("nan"), ois_r, ois_p, ois_f)
    mean = None
    if per_image_mean:
        mean_f = np.mean(image_f, axis=0)
        k = int(np.argmax(mean_f))
        mean = Best(float(thresholds[k]), float("nan"), float("nan"), float(mean_f[k]))
    return SweepSummary(ods, ois, average_precision(recall, precision), pooled, mean)

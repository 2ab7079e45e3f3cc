"""Metrics of SPEC §5 as small pure functions over one-vs-rest counts.

Every function takes count arrays (any shape, broadcast together) and ``empty``, the value
given to a 0/0 ratio. Null is represented by NaN inside the library and written as a null
in tables and JSON; it never silently becomes 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

Counts = np.ndarray
NULL = float("nan")


def _ratio(numerator: Counts, denominator: Counts, empty: float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    return np.where(denominator == 0, empty, out)


def recall(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """TPR = TP / (TP + FN)."""
    return _ratio(tp, np.add(tp, fn), empty)


def precision(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """Precision (PA) = TP / (TP + FP)."""
    return _ratio(tp, np.add(tp, fp), empty)


def fpr(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """False-positive rate = FP / (FP + TN)."""
    return _ratio(fp, np.add(fp, tn), empty)


def iou(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """Intersection over union = TP / (TP + FP + FN)."""
    return _ratio(tp, np.add(np.add(tp, fp), fn), empty)


def fbeta(tp: Counts, fp: Counts, fn: Counts, beta: float, empty: float = NULL) -> np.ndarray:
    """F-beta in its count form (SPEC §5): (1+b²)TP / ((1+b²)TP + b²FN + FP).

    The count form is the definition, so TP = 0 < FP + FN gives 0 rather than null.
    """
    b2 = float(beta) ** 2
    tp = np.asarray(tp, dtype=np.float64)
    return _ratio((1 + b2) * tp, (1 + b2) * tp + b2 * np.asarray(fn, np.float64) + fp, empty)


def oii(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """Output imbalance index (SPEC §5); negative when FP > FN, positive when FP < FN.

    x = FP/FN, k = 1 - (2/pi) arctan((FP+FN) / (5 TP));
    OII = 1 - k/(x + 1/x - 1) for 0 < x <= 1 and k/(x + 1/x - 1) - 1 for x > 1, with the
    limits FN = 0 < FP -> -1, FP = 0 < FN -> 1, FP = FN = 0 < TP -> 0, TP = 0 < FP + FN -> 1.
    TP = FP = FN = 0 has nothing to measure and is a 0/0 (``empty``).
    """
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    tp, fp, fn = np.broadcast_arrays(tp, fp, fn)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = fp / fn
        k = 1.0 - (2.0 / np.pi) * np.arctan((fp + fn) / (5.0 * tp))
        shape = x + 1.0 / x - 1.0
        value = np.where(x <= 1.0, 1.0 - k / shape, k / shape - 1.0)
    value = np.where((fn == 0) & (fp > 0), -1.0, value)
    value = np.where((fp == 0) & (fn > 0), 1.0, value)
    value = np.where((fp == 0) & (fn == 0), 0.0, value)
    value = np.where((tp == 0) & (fp + fn > 0), 1.0, value)
    return np.where((tp == 0) & (fp == 0) & (fn == 0), empty, value)


def f1(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """F1 (beta = 1)."""
    return fbeta(tp, fp, fn, 1.0, empty)


def f2(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """F2 (beta = 2): recall weighs four times as much as precision."""
    return fbeta(tp, fp, fn, 2.0, empty)


def rw_f1(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """Recall-weighted F1 = F1 * recall."""
    return f1(tp, fp, fn, tn, empty) * recall(tp, fp, fn, tn, empty)


def rw_iou(tp: Counts, fp: Counts, fn: Counts, tn: Counts, empty: float = NULL) -> np.ndarray:
    """Recall-weighted IoU = IoU * recall."""
    return iou(tp, fp, fn, tn, empty) * recall(tp, fp, fn, tn, empty)


MetricFunction = Callable[..., np.ndarray]

# Name -> function of (tp, fp, fn, tn, empty). The order is the column order of every output.
BASE_METRICS: dict[str, MetricFunction] = {
    "recall": recall,
    "precision": precision,
    "fpr": fpr,
    "iou": iou,
    "f1": f1,
    "f2": f2,
    "rw_f1": rw_f1,
    "rw_iou": rw_iou,
    "oii": oii,
}


def fbeta_name(beta: float) -> str:
    """Column name of an extra F-beta score: ``f0.5``, ``f3``."""
    return f"f{beta:g}"


def metric_names(betas: Iterable[float] = ()) -> list[str]:
    """All metric names in output order, with extra F-beta columns for ``betas``."""
    extra = [fbeta_name(b) for b in betas if fbeta_name(b) not in BASE_METRICS]
    return [*BASE_METRICS, *dict.fromkeys(extra)]


def compute_metrics(
    tp: Counts,
    fp: Counts,
    fn: Counts,
    tn: Counts,
    *,
    betas: Iterable[float] = (),
    empty: float = NULL,
) -> dict[str, np.ndarray]:
    """Every metric of SPEC §5 for the given counts, keyed by name (see :func:`metric_names`)."""
    scores = {name: fn_(tp, fp, fn, tn, empty) for name, fn_ in BASE_METRICS.items()}
    for beta in betas:
        name = fbeta_name(beta)
        if name not in scores:
            scores[name] = fbeta(tp, fp, fn, beta, empty)
    return scores

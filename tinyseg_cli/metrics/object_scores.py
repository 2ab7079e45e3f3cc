"""Object-level scores from object counts (SPEC §4.7 ``--objects``): the pixel metrics'
recall, precision and F-β applied to objects (TP = matched pairs, FN = missed true objects,
FP = false detections), the mean IoU of matched pairs, and recall per size bin. Micro sums
the counts of the averaged classes; macro is the mean of the defined per-class values, as for
pixels (metrics/summary.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyseg_cli.metrics.functional import NULL, f1, f2, fbeta, fbeta_name, precision, recall
from tinyseg_cli.metrics.objects import ObjectCounts, size_bin_names

COUNT_KEYS = ("true_objects", "pred_objects", "detected", "missed", "false_detections")


def object_metric_names(betas: tuple[float, ...], size_bins: tuple[int, ...]) -> list[str]:
    """Metric names in output order: ``recall``, ``precision``, ``f1``, ``f2``, extra F-β,
    ``mean_iou``, then ``recall_le4`` … ``recall_gt256``."""
    extra = [fbeta_name(b) for b in betas if fbeta_name(b) not in ("f1", "f2")]
    bins = [f"recall_{name}" for name in size_bin_names(size_bins)]
    return ["recall", "precision", "f1", "f2", *dict.fromkeys(extra), "mean_iou", *bins]


def _scores(
    counts: dict[str, np.ndarray], betas: tuple[float, ...], empty: float
) -> dict[str, np.ndarray]:
    """Every object metric of (per-class or summed) counts."""
    tp, fn, fp = counts["detected"], counts["missed"], counts["false_detections"]
    zero = np.zeros_like(tp)
    scores = {
        "recall": recall(tp, fp, fn, zero, empty),
        "precision": precision(tp, fp, fn, zero, empty),
        "f1": f1(tp, fp, fn, zero, empty),
        "f2": f2(tp, fp, fn, zero, empty),
    }
    for beta in betas:
        scores.setdefault(fbeta_name(beta), fbeta(tp, fp, fn, beta, empty))
    with np.errstate(invalid="ignore", divide="ignore"):
        scores["mean_iou"] = np.where(tp > 0, counts["iou_sum"] / np.maximum(tp, 1), empty)
        ratio = counts["matched_by_size"] / np.maximum(counts["true_by_size"], 1)
        by_size = np.where(counts["true_by_size"] > 0, ratio, empty)
    for index, name in enumerate(counts["bin_names"]):
        scores[f"recall_{name}"] = by_size[..., index]
    return scores


def _count_arrays(objects: ObjectCounts, size_bins: tuple[int, ...]) -> dict[str, Any]:
    true = np.asarray(objects.true, np.int64)
    pred = np.asarray(objects.pred, np.int64)
    matched = np.asarray(objects.matched, np.int64)
    return {
        "true_objects": true,
        "pred_objects": pred,
        "detected": matched,
        "missed": true - matched,
        "false_detections": pred - matched,
        "iou_sum": np.asarray(objects.iou_sum, np.float64),
        "true_by_size": np.asarray(objects.true_by_size, np.int64),
        "matched_by_size": np.asarray(objects.matched_by_size, np.int64),
        "bin_names": size_bin_names(size_bins),
    }


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def object_summary(
    objects: ObjectCounts,
    class_names: list[str],
    averaged: list[int],
    *,
    size_bins: tuple[int, ...],
    betas: tuple[float, ...] = (),
    empty: float = NULL,
) -> dict[str, Any]:
    """The ``"objects"`` JSON object: per foreground class, micro and macro (over the
    ``averaged`` classes that are not the background: objects of class 0 are not scored)."""
    counts = _count_arrays(objects, size_bins)
    per_class = _scores(counts, betas, empty)
    names = object_metric_names(betas, size_bins)
    chosen = [c for c in averaged if c != 0]
    summed = {
        key: (counts[key][chosen].sum(axis=0) if key != "bin_names" else counts[key])
        for key in counts
    }
    micro_scores = _scores(summed, betas, empty)
    classes = {}
    for index in range(1, len(class_names)):
        entry: dict[str, Any] = {key: int(counts[key][index]) for key in COUNT_KEYS}
        entry.update({m: _value(float(per_class[m][index])) for m in names})
        classes[class_names[index]] = entry
    micro: dict[str, Any] = {key: int(summed[key]) for key in COUNT_KEYS}
    micro.update({m: _value(float(micro_scores[m])) for m in names})
    macro: dict[str, Any] = {}
    for m in names:
        values = np.asarray(per_class[m], np.float64)[chosen]
        defined = values[~np.isnan(values)]
        macro[m] = float(defined.mean()) if defined.size else None
    macro["n_classes"] = len(chosen)
    return {"classes": classes, "micro": micro, "macro": macro}

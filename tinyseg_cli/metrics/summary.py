"""Averaging: per-class scores, micro and macro means, OA and mIoU, and statistics across runs.

This module is the one place that decides how scores are averaged (SPEC §4.7, §5):
micro sums the counts of the averaged classes, macro is the mean over those classes where a
score is defined (null scores are excluded and the number averaged is reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyseg_cli.metrics.functional import NULL, compute_metrics, metric_names

COUNT_NAMES = ("tp", "fp", "fn", "tn")


@dataclass
class Summary:
    """Scores of one set of counts: per class, micro, macro, OA and mIoU."""

    class_indices: list[int]
    counts: dict[str, np.ndarray]  # name -> per-class int64 array
    per_class: dict[str, np.ndarray]  # metric -> per-class float array (NaN = null)
    averaged: list[int]  # class indices included in micro/macro
    micro: dict[str, float]
    macro: dict[str, float]
    macro_defined: dict[str, int]  # metric -> number of classes with a defined value
    oa: float
    miou: float
    n_samples: int
    metrics: list[str] = field(default_factory=list)
    objects: dict[str, Any] | None = None  # score --objects: metrics/object_scores.py


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else NULL


def summarize(
    counts: dict[str, np.ndarray],
    *,
    averaged: list[int],
    n_samples: int,
    betas: tuple[float, ...] = (),
    empty: float = NULL,
) -> Summary:
    """Scores of per-class counts (``tp``, ``fp``, ``fn``, ``tn`` arrays indexed by class).

    ``averaged`` selects the classes of the micro and macro averages (foreground by
    default). OA = ΣTP / N over all classes; mIoU is the mean IoU over all classes.
    """
    tp, fp, fn, tn = (np.asarray(counts[name], dtype=np.int64) for name in COUNT_NAMES)
    per_class = compute_metrics(tp, fp, fn, tn, betas=betas, empty=empty)
    chosen = np.asarray(averaged, dtype=np.int64)
    sums = [int(a[chosen].sum()) for a in (tp, fp, fn, tn)]
    micro = {k: float(v) for k, v in compute_metrics(*sums, betas=betas, empty=empty).items()}
    macro = {name: _nanmean(values[chosen]) for name, values in per_class.items()}
    defined = {name: int((~np.isnan(values[chosen])).sum()) for name, values in per_class.items()}
    total = int(tp.sum() + fn.sum())
    oa = float(tp.sum() / total) if total else empty
    return Summary(
        class_indices=list(range(len(tp))),
        counts={"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        per_class=per_class,
        averaged=[int(c) for c in chosen],
        micro=micro,
        macro=macro,
        macro_defined=defined,
        oa=oa,
        miou=_nanmean(per_class["iou"]),
        n_samples=n_samples,
        metrics=metric_names(betas),
    )


def flat_scores(summary: Summary, class_names: list[str]) -> dict[str, float]:
    """Every score of ``summary`` under a flat key (``micro.f2``, ``class.crack.iou``, ``oa``)."""
    flat: dict[str, float] = {"oa": summary.oa, "miou": summary.miou}
    for name in summary.metrics:
        flat[f"micro.{name}"] = summary.micro[name]
        flat[f"macro.{name}"] = summary.macro[name]
        for index in summary.class_indices:
            flat[f"class.{class_names[index]}.{name}"] = float(summary.per_class[name][index])
    if summary.objects is not None:
        flat.update(_flat_objects(summary.objects))
    return flat


def _flat_objects(objects: dict[str, Any]) -> dict[str, float]:
    """Object scores (not counts) under ``objects.micro.recall``, ``objects.class.crack.f2``…"""
    flat: dict[str, float] = {}
    entries = [(f"class.{name}", entry) for name, entry in objects["classes"].items()]
    for prefix, entry in [*entries, ("micro", objects["micro"]), ("macro", objects["macro"])]:
        for key, value in entry.items():
            if isinstance(value, float | None) and key != "n_classes":
                flat[f"objects.{prefix}.{key}"] = NULL if value is None else value
    return flat


def across_runs(flats: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (ddof = 1) of each score across runs.

    Null values are left out; a score with fewer than two defined values has a null std.
    """
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for key in keys:
        values = np.array([flat.get(key, NULL) for flat in flats], dtype=np.float64)
        values = values[~np.isnan(values)]
        mean[key] = float(values.mean()) if values.size else NULL
        std[key] = float(values.std(ddof=1)) if values.size >= 2 else NULL
    return mean, std

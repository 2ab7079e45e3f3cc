"""What 2D and 3D training share: the class map and class weights of a run, a validation
pass's scores from its confusion matrix, and the class rows of a ``--dry-run`` summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyseg_cli.commands.train.config import TrainOptions
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata, parse_class_map
from tinyseg_cli.io.tables import integer_column, read_table, table_metadata
from tinyseg_cli.metrics.counts import one_vs_rest
from tinyseg_cli.metrics.functional import metric_names
from tinyseg_cli.metrics.summary import Summary, summarize

AVERAGES = ("macro", "micro")


@dataclass
class Validation:
    """Scores of one validation pass; ``score`` is the ``--select`` value (None if undefined)."""

    summary: Summary
    select: str
    score: float | None


def parse_select(text: str) -> tuple[str, str]:
    """``f2`` or ``micro:f2`` → (average, metric); macro over foreground classes by default."""
    average, _, metric = text.rpartition(":")
    average = average or "macro"
    if average not in AVERAGES or metric not in metric_names():
        raise TinysegError(
            f"--select {text!r}: expected [macro:|micro:]METRIC with METRIC one of "
            f"{', '.join(metric_names())}"
        )
    return average, metric


def validation_of(
    matrix: np.ndarray, averaged: Sequence[int], n_samples: int, select: str
) -> Validation:
    """The scores of a validation pass from its (truth × prediction) confusion matrix,
    averaged over the classes ``averaged`` (the foreground in 2D, every class in 3D)."""
    tp, fp, fn, tn = one_vs_rest(matrix)
    summary = summarize(
        {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, averaged=list(averaged), n_samples=n_samples
    )
    average, metric = parse_select(select)
    value = (summary.macro if average == "macro" else summary.micro)[metric]
    return Validation(summary, select, None if np.isnan(value) else float(value))


def predicted_and_truth(validation: Validation) -> dict[str, list[int]]:
    """Per class, the pixels (voxels) a validation pass predicted and the truth holds."""
    counts = validation.summary.counts
    return {
        "predicted": [int(v) for v in counts["tp"] + counts["fp"]],
        "truth": [int(v) for v in counts["tp"] + counts["fn"]],
    }


# A model that puts one class on this share of the validation pixels, where the truth does
# not, has learnt that class and nothing else (a short run's "everything is break").
DEGENERATE_SHARE = 0.95


def degenerate_prediction(
    predicted: Sequence[int], truth: Sequence[int], names: Sequence[str], unit: str = "pixels"
) -> str | None:
    """Why a model's validation predictions look degenerate, or None: one class on >= 95 %
    of the validation pixels where the truth has less of it, or no background at all."""
    total, truth_total = sum(predicted), sum(truth)
    if not total or not truth_total:
        return None
    top = max(range(len(predicted)), key=lambda c: predicted[c])
    share, truth_share = predicted[top] / total, truth[top] / truth_total
    if share >= DEGENERATE_SHARE and truth_share < DEGENERATE_SHARE:
        return (
            f"predicts {names[top]} on {share:.1%} of the validation {unit}, where the truth "
            f"has {truth_share:.1%}: a degenerate model (train longer, or check the loss and "
            "class weights)"
        )
    if predicted[0] == 0 and truth[0] > 0:
        return (
            f"never predicts {names[0]}, which is {truth[0] / truth_total:.1%} of the "
            f"validation {unit}: a degenerate model (train longer, or check the loss and "
            "class weights)"
        )
    return None


def run_class_map(options: TrainOptions, metadata: dict[str, Any], missing: str) -> ClassMap:
    """``--classes``, else the class map the input's metadata carries; ``missing`` is the
    error when it carries none."""
    if options.classes:
        return parse_class_map(options.classes)
    found = class_map_from_metadata(metadata)
    if found is None:
        raise TinysegError(missing)
    return found


def read_class_weights(options: TrainOptions, class_map: ClassMap) -> list[float] | None:
    """Weights of a ``classweights`` table, checked against the network's classes."""
    if options.class_weights is None:
        return None
    table = read_table(options.class_weights)
    if not {"class_index", "weight"} <= set(table.column_names):
        raise TinysegError(
            f"{options.class_weights}: expected a classweights table (class_index, weight)"
        )
    names = class_map_from_metadata(table_metadata(table))
    if names is None and "class_name" in table.column_names:
        names = ClassMap(tuple(str(n) for n in table["class_name"].to_pylist()))
    if names is not None and names.names != class_map.names:
        raise TinysegError(
            f"{options.class_weights}: weights are for classes ({', '.join(names.names)}) but "
            f"the network predicts ({', '.join(class_map.names)})"
            + (" — make them with 'classweights --binary'" if options.binary else "")
        )
    indices = integer_column(table, "class_index", options.class_weights, minimum=0)[0].tolist()
    for row, weight in enumerate(table["weight"].to_pylist()):
        if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
            raise TinysegError(
                f"{options.class_weights}: row {row}: weight is {weight!r} (expected a finite "
                "number >= 0)"
            )
    if sorted(indices) != list(range(len(class_map))):
        raise TinysegError(
            f"{options.class_weights}: expected one weight per class 0..{len(class_map) - 1}"
        )
    weights = dict(zip(indices, table["weight"].to_pylist(), strict=True))
    return [float(weights[i]) for i in range(len(class_map))]


def class_summary(
    options: TrainOptions, mean: Sequence[float], std: Sequence[float]
) -> dict[str, Any]:
    """The loss and normalisation part of a dry-run summary."""
    return {
        "loss": options.loss,
        "loss_params": options.loss_params or None,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
    }


def class_rows(
    names: Sequence[str],
    counts: np.ndarray,
    weights: Sequence[float] | None,
    unit: str = "pixels",
) -> list[dict[str, Any]]:
    """Per class: index, name, training ``unit`` (pixels, or voxels in 3D) and weight."""
    return [
        {
            "index": index,
            "name": name,
            unit: int(counts[index]),
            "weight": None if weights is None else float(weights[index]),
        }
        for index, name in enumerate(names)
    ]

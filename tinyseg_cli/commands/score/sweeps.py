"""``score --thresholds``: probability maps swept over thresholds, exactly or within a
tolerance, into a thresholds table and the field's summaries (ODS, OIS, AP; see
:mod:`tinyseg_cli.metrics.sweep` and :mod:`tinyseg_cli.metrics.tolerance`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata
from tinyseg_cli.io.palette import Palette
from tinyseg_cli.io.rasters import read_scores
from tinyseg_cli.io.sources import MapRef, resolve_maps
from tinyseg_cli.io.tables import read_table, table_metadata
from tinyseg_cli.metrics.sweep import SweepCounts, SweepSummary, exact_counts, reached
from tinyseg_cli.metrics.tolerance import tolerance_counts
from tinyseg_cli.runtime.parallel import parallel_map, shard
from tinyseg_cli.scoring.pairs import Pair, check_same_shape, open_truth, pair_maps
from tinyseg_cli.scoring.sweep_tables import SweepSet, add_rows, is_sweep_table


@dataclass(frozen=True)
class Tolerance:
    """``--tolerance``: pixels, or a share of each image's diagonal (``0.0075diag``)."""

    value: float
    of_diagonal: bool = False

    def radius(self, height: int, width: int) -> float:
        return self.value * math.hypot(height, width) if self.of_diagonal else self.value

    def text(self) -> str:
        return f"{self.value:g}diag" if self.of_diagonal else f"{self.value:g}"


def parse_tolerance(text: str) -> Tolerance:
    """``--tolerance 2`` (pixels) or ``0.0075diag``; ValueError names what is wrong."""
    spec = text.strip().lower()
    relative = spec.endswith("diag")
    number = spec[: -len("diag")] if relative else spec
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            f"{text!r}: expected pixels (2) or a share of the diagonal (0.0075diag)"
        ) from None
    if not (math.isfinite(value) and value > 0) or (relative and value >= 1):
        raise ValueError(f"{text!r}: expected a distance > 0 (a share of the diagonal < 1)")
    return Tolerance(value, relative)


@dataclass(frozen=True)
class SweepOptions:
    """How maps are swept: thresholds, tolerance and its rule, thinning, labels."""

    thresholds: np.ndarray
    tolerance: Tolerance | None = None
    rule: str = "matched"
    thin: str = "pred"
    ignore_index: int | None = 255
    palette: Palette | None = None  # of the truth masks
    truth_remap: np.ndarray | None = None  # truth labels into the prediction's classes

    def record(self) -> dict[str, Any]:
        """The sweep's parameters, stored in the tables' metadata."""
        return {
            "thresholds": [float(t) for t in self.thresholds],
            "tolerance": None if self.tolerance is None else self.tolerance.text(),
            "rule": self.rule if self.tolerance else None,
            "thin": self.thin if self.tolerance else None,
        }


def _classes_of(scores: np.ndarray) -> list[int]:
    """The classes a map's planes score: class 1 of an H×W map, 1..C-1 of a C×H×W one."""
    return [1] if scores.ndim == 2 else list(range(1, scores.shape[0]))


def sweep_pair(
    pair: Pair[MapRef], options: SweepOptions
) -> tuple[str, list[tuple[int, SweepCounts]]]:
    """One image's counts for each class its probability map scores."""
    truth_map = open_truth(pair, options.palette, options.truth_remap, options.ignore_index)
    truth = truth_map[:]
    scores = read_scores(pair.pred.path)
    roi = pair.truth.roi
    if roi is not None and scores.shape[-2:] == truth_map.full_shape:
        scores = scores[..., roi[0] : roi[2], roi[1] : roi[3]]  # a full-size prediction
    check_same_shape(pair, truth.shape, scores.shape[-2:], f"probabilities {pair.pred.path} are")
    valid = (
        np.ones(truth.shape, bool)
        if options.ignore_index is None
        else truth != options.ignore_index
    )
    n = len(options.thresholds)
    out = []
    for class_index in _classes_of(scores):
        plane = scores if scores.ndim == 2 else scores[class_index]
        levels = reached(plane, options.thresholds)
        positive = truth == class_index
        if options.tolerance is None:
            counts = exact_counts(levels, positive, valid, n)
        else:
            radius = options.tolerance.radius(*truth.shape)
            counts = tolerance_counts(
                levels, positive, valid, n, radius, options.rule, options.thin
            )
        out.append((class_index, counts))
    return pair.sample_id, out


def sweep_pairs(
    truth: str,
    pred: str,
    *,
    missing: str,
    split: str | None,
    part: tuple[int, int],
    warn: Callable[[str], None],
) -> list[Pair[MapRef]]:
    """The (truth, probability map) pairs of this shard, matched by sample id."""
    pairing = pair_maps(
        resolve_maps(truth, columns=("mask",), split=split),
        resolve_maps(pred, columns=("probs", "prediction")),
        missing,  # type: ignore[arg-type]
        False,
    )
    for side, names in (
        ("probability map", pairing.truth_only),
        ("ground truth", pairing.pred_only),
    ):
        if names:
            warn(f"skipped {len(names)} sample(s) with no {side}: {', '.join(names[:5])}")
    pairs = shard(pairing.pairs, *part)
    if not pairs:
        raise TinysegError(f"shard {part[0]}/{part[1]} holds no sample")
    return pairs


def sweep_maps(
    pairs: list[Pair[MapRef]],
    options: SweepOptions,
    jobs: int,
    on_done: Callable[[Any], None],
    source: str,
) -> SweepSet:
    """The counts of every (sample, class) of the pairs, over ``jobs`` worker processes."""
    swept = SweepSet(options.thresholds, options.tolerance is not None)
    work = partial(sweep_pair, options=options)
    for sample_id, classes in parallel_map(work, pairs, jobs, on_done):
        for class_index, counts in classes:
            swept.add(sample_id, class_index, counts, source)
    return swept


def read_sweep_tables(paths: list[str]) -> tuple[SweepSet, dict[str, Any], ClassMap | None]:
    """Thresholds tables (shards of one sweep) added together; their sweep record and the
    class map the first one carries."""
    swept: SweepSet | None = None
    record: dict[str, Any] = {}
    class_map: ClassMap | None = None
    for path in paths:
        table = read_table(path)
        name = "<stdin>" if path == "-" else path
        if not is_sweep_table(table.column_names):
            raise UsageError(f"{name}: not a thresholds table of 'score --sweep-out'")
        metadata = table_metadata(table)
        found = metadata.get("sweep") or {}
        thresholds = np.unique(table["threshold"].to_numpy())
        if swept is None:
            swept, record = SweepSet(thresholds, "cnt_r" in table.column_names), found
            class_map = class_map_from_metadata(metadata)
        elif not np.array_equal(thresholds, swept.thresholds) or found != record:
            raise TinysegError(
                f"{name}: another sweep (thresholds, tolerance or rule) than the first table's"
            )
        add_rows(swept, table, name)
    assert swept is not None
    return swept, record, class_map


def class_scores(summary: SweepSummary) -> dict[str, float | None]:
    """One class's ODS (its threshold, precision, recall), OIS, AP and the per-image mean F
    (None without --per-image-mean)."""
    return {
        "ods": summary.ods.f,
        "ods_threshold": summary.ods.threshold,
        "ods_precision": summary.ods.precision,
        "ods_recall": summary.ods.recall,
        "ois": summary.ois.f,
        "ois_precision": summary.ois.precision,
        "ois_recall": summary.ois.recall,
        "ap": summary.ap,
        "per_image_mean_f": None if summary.per_image_mean is None else summary.per_image_mean.f,
    }


def _macro(entries: list[dict[str, Any]]) -> dict[str, float]:
    """The mean over the classes of ODS, OIS and AP."""
    return {key: float(np.mean([entry[key] for entry in entries])) for key in ("ods", "ois", "ap")}


def summary_json(
    found: dict[int, SweepSummary], class_map: ClassMap, record: dict[str, Any], n_samples: int
) -> dict[str, Any]:
    """The ``--json`` summary: per class ODS (with its threshold, precision and recall),
    OIS, AP; the macro mean over the classes; how the sweep counted."""
    classes = {}
    for class_index, summary in found.items():
        entry = class_scores(summary)
        if summary.per_image_mean is not None:
            entry["per_image_mean_threshold"] = summary.per_image_mean.threshold
        else:
            del entry["per_image_mean_f"]
        classes[class_map.name(class_index)] = entry
    return {
        "classes": classes,
        "macro": _macro(list(classes.values())),
        "n_samples": n_samples,
        "sweep": {
            **record,
            "zero_division": 0,
            "ap": "BSDS: max precision at recall >= r, r = 0, 0.01, …, 0.99, summed / 101",
        },
    }


def summary_table(found: dict[int, SweepSummary], class_map: ClassMap) -> pa.Table:
    """The scores table of a sweep: a row per class, then the macro mean (level column), in
    the shape of ``score``'s scores tables, so ``report`` and ``plot`` read it."""
    rows = []
    for class_index, summary in found.items():
        rows.append(
            {
                "stat": "value",
                "level": "class",
                "class_index": class_index,
                "class_name": class_map.name(class_index),
                **class_scores(summary),
            }
        )
    rows.append(
        {
            "stat": "value",
            "level": "macro",
            "class_index": None,
            "class_name": "macro",
            **_macro(rows),
        }
    )
    return pa.Table.from_pylist(rows)

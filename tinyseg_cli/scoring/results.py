"""Score reports as JSON objects and Parquet tables (the shapes of SPEC §3 and §4.7)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.metrics.functional import metric_names
from tinyseg_cli.metrics.object_scores import COUNT_KEYS as OBJECT_COUNT_KEYS
from tinyseg_cli.metrics.object_scores import object_summary
from tinyseg_cli.metrics.summary import (
    COUNT_NAMES,
    Summary,
    across_runs,
    flat_scores,
    summarize,
)
from tinyseg_cli.scoring.counts import CountsSet


def _value(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def summary_json(summary: Summary, class_names: list[str]) -> dict[str, Any]:
    """The JSON object of one summary: ``classes``, ``micro``, ``macro``, ``oa``, ``miou``…"""
    classes = {}
    for index in summary.class_indices:
        entry: dict[str, Any] = {name: int(summary.counts[name][index]) for name in COUNT_NAMES}
        entry.update({m: _value(summary.per_class[m][index]) for m in summary.metrics})
        classes[class_names[index]] = entry
    micro: dict[str, Any] = {
        name: int(summary.counts[name][summary.averaged].sum()) for name in COUNT_NAMES
    }
    micro.update({m: _value(summary.micro[m]) for m in summary.metrics})
    macro: dict[str, Any] = {m: _value(summary.macro[m]) for m in summary.metrics}
    macro["n_classes"] = len(summary.averaged)
    macro["n_defined"] = dict(summary.macro_defined)
    return {
        "classes": classes,
        "micro": micro,
        "macro": macro,
        "oa": _value(summary.oa),
        "miou": _value(summary.miou),
        "n_samples": summary.n_samples,
        "averaged_classes": [class_names[i] for i in summary.averaged],
        **({"objects": summary.objects} if summary.objects is not None else {}),
    }


def flat_json(flat: dict[str, float], class_names: list[str], metrics: list[str]) -> dict:
    """A mean or std record of :func:`~tinyseg_cli.metrics.summary.flat_scores` as JSON."""
    objects: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith("objects."):
            *path, metric = key.split(".")[1:]
            level = path[0] if path[0] != "class" else "classes"
            entry = objects.setdefault(level, {})
            if level == "classes":
                entry = entry.setdefault(".".join(path[1:]), {})
            entry[metric] = _value(value)
    extra = {"objects": objects} if objects else {}
    return {
        **extra,
        "classes": {
            name: {m: _value(flat.get(f"class.{name}.{m}", math.nan)) for m in metrics}
            for name in class_names
        },
        "micro": {m: _value(flat.get(f"micro.{m}", math.nan)) for m in metrics},
        "macro": {m: _value(flat.get(f"macro.{m}", math.nan)) for m in metrics},
        "oa": _value(flat.get("oa", math.nan)),
        "miou": _value(flat.get("miou", math.nan)),
    }


OBJECT_COUNT_COLUMNS = {f"objects_{key.removesuffix('_objects')}" for key in OBJECT_COUNT_KEYS}


def _object_columns(entry: dict[str, Any] | None) -> dict[str, Any]:
    """An object-score entry as ``objects_<name>`` columns (``objects_recall``…)."""
    return {
        f"objects_{key.removesuffix('_objects')}": value
        for key, value in (entry or {}).items()
        if key != "n_classes"
    }


def _rows_from_json(
    record: dict[str, Any], class_names: list[str], metrics: list[str], base: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    objects = record.get("objects") or {}
    for index, name in enumerate(class_names):
        rows.append(
            {
                **base,
                "level": "class",
                "class_index": index,
                "class_name": name,
                **record["classes"][name],
                **_object_columns(objects.get("classes", {}).get(name)),
            }
        )
    rows.append(
        {**base, "level": "micro", **record["micro"], **_object_columns(objects.get("micro"))}
    )
    macro = {m: record["macro"][m] for m in metrics}
    rows.append(
        {
            **base,
            "level": "macro",
            "n_classes": record["macro"].get("n_classes"),
            **macro,
            **_object_columns(objects.get("macro")),
        }
    )
    rows.append({**base, "level": "summary", "oa": record["oa"], "miou": record["miou"]})
    return rows


def scores_table(
    records: list[tuple[dict[str, Any], dict[str, Any]]], class_names: list[str], metrics: list[str]
) -> pa.Table:
    """The scores table from (key columns, JSON record) pairs.

    Key columns: ``run`` (null without runs), ``stat`` (``value``, ``mean`` or ``std``) and
    ``sample_id`` (null for all samples together). Each record adds one row per class and a
    ``micro``, ``macro`` and ``summary`` (OA, mIoU) row, told apart by ``level``.
    """
    rows = [
        row
        for base, record in records
        for row in _rows_from_json(record, class_names, metrics, base)
    ]
    schema = [
        ("run", pa.string()),
        ("stat", pa.string()),
        ("sample_id", pa.string()),
        ("level", pa.string()),
        ("class_index", pa.int32()),
        ("class_name", pa.string()),
        *((name, pa.int64()) for name in COUNT_NAMES),
        *((name, pa.float64()) for name in metrics),
        ("n_classes", pa.int32()),
        ("oa", pa.float64()),
        ("miou", pa.float64()),
    ]
    object_names = dict.fromkeys(key for row in rows for key in row if key.startswith("objects_"))
    schema += [
        (key, pa.int64() if key in OBJECT_COUNT_COLUMNS else pa.float64()) for key in object_names
    ]
    return pa.table(
        {name: pa.array([row.get(name) for row in rows], type_) for name, type_ in schema}
    )


@dataclass
class ScoreResult:
    """Everything ``score`` reports: per run (``None`` without runs) summaries and counts."""

    counts: dict[str | None, CountsSet]
    class_names: list[str]
    summaries: dict[str | None, Summary]
    samples: dict[str | None, list[tuple[str, Summary]]]
    metrics: list[str]
    empty: str

    @property
    def has_runs(self) -> bool:
        return list(self.counts) != [None]

    @cached_property
    def run_statistics(self) -> tuple[dict[str, float], dict[str, float]]:
        """Mean and std of every score across runs, computed once per result."""
        flats = [flat_scores(summary, self.class_names) for summary in self.summaries.values()]
        return across_runs(flats)


def score_counts(
    counts: dict[str | None, CountsSet],
    class_names: list[str],
    *,
    include_background: bool = False,
    betas: tuple[float, ...] = (),
    empty: str = "null",
    per_sample: bool = False,
) -> ScoreResult:
    """Summaries of every run (and sample), averaging foreground classes unless told otherwise."""
    n_classes = len(class_names)
    counts = {run: values.padded(n_classes) for run, values in counts.items()}
    averaged = list(range(n_classes)) if include_background else list(range(1, n_classes))
    fill = {"null": math.nan, "0": 0.0, "1": 1.0}[empty]

    def summarise(values: dict[str, np.ndarray], n_samples: int) -> Summary:
        return summarize(values, averaged=averaged, n_samples=n_samples, betas=betas, empty=fill)

    def with_objects(summary: Summary, c: CountsSet, row: int | None) -> Summary:
        if c.objects is not None:
            totals = c.objects.total() if row is None else c.objects.sample(row)
            summary.objects = object_summary(
                totals, class_names, averaged, size_bins=c.objects.size_bins, betas=betas,
                empty=fill,
            )  # fmt: skip
        return summary

    summaries = {
        run: with_objects(summarise(c.totals(), len(c.sample_ids)), c, None)
        for run, c in counts.items()
    }
    samples = {
        run: [
            (sid, with_objects(summarise(c.sample(i), 1), c, i))
            for i, sid in enumerate(c.sample_ids)
        ]
        if per_sample
        else []
        for run, c in counts.items()
    }
    metrics = metric_names(betas)
    return ScoreResult(counts, class_names, summaries, samples, metrics, empty)


def result_json(result: ScoreResult) -> dict[str, Any]:
    """The ``--json`` object: one report, or per-run reports with their mean and std."""

    def with_samples(run: str | None) -> dict[str, Any]:
        record = summary_json(result.summaries[run], result.class_names)
        if result.samples[run]:
            record["samples"] = {
                sid: summary_json(summary, result.class_names)
                for sid, summary in result.samples[run]
            }
        return record

    if not result.has_runs:
        return {**with_samples(None), "empty": result.empty}
    mean, std = result.run_statistics
    return {
        "runs": {
            "n_runs": len(result.counts),
            "mean": flat_json(mean, result.class_names, result.metrics),
            "std": flat_json(std, result.class_names, result.metrics),
            "by_run": {run: with_samples(run) for run in result.counts},
        },
        "empty": result.empty,
    }


def result_table(result: ScoreResult) -> pa.Table:
    """The scores table of a result (see :func:`scores_table`)."""
    records = []
    for run, summary in result.summaries.items():
        base = {"run": run, "stat": "value", "sample_id": None}
        records.append((base, summary_json(summary, result.class_names)))
        for sid, sample in result.samples[run]:
            records.append(({**base, "sample_id": sid}, summary_json(sample, result.class_names)))
    if result.has_runs:
        mean, std = result.run_statistics
        for stat, flat in (("mean", mean), ("std", std)):
            record = flat_json(flat, result.class_names, result.metrics)
            records.append(({"run": None, "stat": stat, "sample_id": None}, record))
    return scores_table(records, result.class_names, result.metrics)


def result_counts_table(result: ScoreResult) -> pa.Table:
    """All counts of a result as one counts table (with a ``run`` column when there are runs)."""
    tables = [c.to_table(run if result.has_runs else None) for run, c in result.counts.items()]
    return pa.concat_tables(tables)

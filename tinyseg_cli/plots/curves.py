"""The rows of each kind of table as plain arrays for the figures: a training log's curves, the
runs of scores tables, the steps of tune-oii searches (SPEC §4.9). Pure: no matplotlib."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.metrics.sweep import SweepSummary, recall_precision_f
from tinyseg_cli.plots.tables import Source, floats, series_keys, texts
from tinyseg_cli.scoring.sweep_tables import SweepSet, add_rows


@dataclass(frozen=True)
class TrainingLog:
    """A training log: loss and learning rate per step, validation scores per series."""

    label: str
    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    val_steps: dict[str, np.ndarray]  # series (class name, micro, macro) -> steps
    val: dict[str, dict[str, np.ndarray]]  # series -> metric -> values (NaN = null)


@dataclass(frozen=True)
class RunScores:
    """Scores of runs: ``values[metric]`` is runs × series, NaN where null or absent."""

    runs: list[str]
    series: list[str]
    values: dict[str, np.ndarray]

    def mean(self, metric: str) -> np.ndarray:
        """Mean over the runs where the score is defined, as ``score --run`` computes it."""
        values = self.values[metric]
        defined = (~np.isnan(values)).sum(axis=0)
        total = np.nansum(values, axis=0)
        return np.divide(total, defined, out=np.full(len(self.series), np.nan), where=defined > 0)

    def std(self, metric: str) -> np.ndarray:
        """Sample standard deviation (ddof = 1) over defined scores; null below two."""
        values = self.values[metric]
        out = np.full(len(self.series), np.nan)
        for column in range(len(self.series)):
            defined = values[:, column][~np.isnan(values[:, column])]
            if defined.size >= 2:
                out[column] = defined.std(ddof=1)
        return out


@dataclass(frozen=True)
class TuneSearch:
    """A tune-oii search: the searched value and the validation OII of each step."""

    label: str
    param: str
    steps: np.ndarray
    values: np.ndarray
    oii: np.ndarray
    target: tuple[float, float] | None
    searched: tuple[float, float] | None = None  # the range [a, b] the log records


def read_log(source: Source, series: list[str], metrics: list[str]) -> TrainingLog:
    """Loss and lr of the step rows; per series, the validation rows' ``metrics``."""
    kinds, steps = texts(source, "kind"), floats(source, "step")
    on_step = kinds == "step"
    order = np.argsort(steps[on_step], kind="stable")
    keys = series_keys(source)
    on_val = kinds == "val"
    val_steps: dict[str, np.ndarray] = {}
    val: dict[str, dict[str, np.ndarray]] = {}
    columns = {metric: floats(source, metric) for metric in metrics}
    for name in series:
        rows = np.flatnonzero(on_val & (keys == name))
        rows = rows[np.argsort(steps[rows], kind="stable")]
        if rows.size:
            val_steps[name] = steps[rows]
            val[name] = {metric: values[rows] for metric, values in columns.items()}
    return TrainingLog(
        label=source.label,
        steps=steps[on_step][order],
        loss=floats(source, "loss")[on_step][order],
        lr=floats(source, "lr")[on_step][order],
        val_steps=val_steps,
        val=val,
    )


def read_runs(sources: list[Source], series: list[list[str]], metrics: list[str]) -> RunScores:
    """Each run's scores (rows with ``stat`` value, over all samples) of every table; a table
    without a ``run`` column is one run named by its label."""
    runs: dict[str, dict[str, dict[str, float]]] = {}  # run -> series -> metric -> value
    for source, chosen in zip(sources, series, strict=True):
        stats, samples = texts(source, "stat"), texts(source, "sample_id")
        run_names, keys = texts(source, "run"), series_keys(source, summary=True)
        whole = np.array([sample is None for sample in samples], dtype=bool)
        rows = np.flatnonzero((stats == "value") & whole)
        if rows.size == 0:
            raise TinysegError(f"{source.path}: no row with stat 'value' (a run's scores)")
        columns = {metric: floats(source, metric) for metric in metrics}
        for row in rows:
            if keys[row] not in chosen:
                continue
            run = _run_name(run_names[row], source.label, len(sources))
            entry = runs.setdefault(run, {}).setdefault(keys[row], {})
            entry.update({metric: float(values[row]) for metric, values in columns.items()})
    names = list(dict.fromkeys(key for chosen in series for key in chosen))
    values = {
        metric: np.array(
            [[runs[run].get(key, {}).get(metric, np.nan) for key in names] for run in runs],
            dtype=np.float64,
        ).reshape(len(runs), len(names))
        for metric in metrics
    }
    return RunScores(list(runs), names, values)


def _run_name(run: str | None, label: str, n_tables: int) -> str:
    if run is None:
        return label
    return f"{label}:{run}" if n_tables > 1 else run


def read_tune(source: Source, target: tuple[float, float] | None = None) -> TuneSearch:
    """The steps of a tune-oii log; the band is ``target``, else the one it records."""
    search = source.metadata.get("tune")
    search = search.get("search") if isinstance(search, dict) else None
    search = search if isinstance(search, dict) else {}
    param = search.get("param")
    if not isinstance(param, str) or param not in source.table.column_names:
        param = _param_column(source)
    steps = floats(source, "step")
    order = np.argsort(steps, kind="stable")
    return TuneSearch(
        label=source.label,
        param=param,
        steps=steps[order],
        values=floats(source, param)[order],
        oii=floats(source, "oii")[order],
        target=target or _band(search.get("target")),
        searched=_band(search.get("range")),
    )


def _param_column(source: Source) -> str:
    """The searched parameter without metadata: the column after ``step`` (its place in a
    tune-oii log), when it is numeric."""
    names = source.table.column_names
    after = names.index("step") + 1
    if after < len(names) and names[after] != "oii":
        kind = source.table.schema.field(names[after]).type
        if pa.types.is_floating(kind) or pa.types.is_integer(kind):
            return names[after]
    raise TinysegError(
        f"{source.path}: cannot tell which column holds the searched value (no tinyseg.tune "
        "metadata and no numeric column after 'step')"
    )


def _band(value: Any) -> tuple[float, float] | None:
    """A recorded interval (target band, searched range), when it is two finite numbers in
    order."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in value):
        return None
    low, high = float(value[0]), float(value[1])
    return (low, high) if low < high else None


@dataclass(frozen=True)
class PrCurve:
    """One class of a thresholds table: pooled recall and precision at each threshold, and
    the ODS and OIS points (see :mod:`tinyseg_cli.metrics.sweep`)."""

    label: str
    thresholds: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    summary: SweepSummary


def read_pr(source: Source, classes: list[str] | None) -> list[PrCurve]:
    """The curve of each class of a thresholds table (``classes``: names or indices to keep;
    default every class it holds)."""
    thresholds = np.unique(source.table["threshold"].to_numpy())
    swept = SweepSet(thresholds, "cnt_r" in source.table.column_names)
    add_rows(swept, source.table, source.path)
    names = {
        int(i): str(n)
        for i, n in zip(
            source.table["class_index"].to_pylist(),
            source.table["class_name"].to_pylist()
            if "class_name" in source.table.column_names
            else source.table["class_index"].to_pylist(),
            strict=True,
        )
    }
    curves = []
    found = swept.summaries()
    for class_index in swept.classes():
        name = names[class_index]
        if classes is not None and name not in classes and str(class_index) not in classes:
            continue
        summary = found[class_index]
        recall, precision, _ = recall_precision_f(summary.pooled)
        drawn = summary.pooled.sum_p > 0  # a threshold that predicts nothing has no precision
        label = f"{source.label}: {name}"
        curves.append(PrCurve(label, thresholds[drawn], recall[drawn], precision[drawn], summary))
    if not curves:
        raise TinysegError(f"{source.path}: no class of --classes {', '.join(classes or [])}")
    return curves

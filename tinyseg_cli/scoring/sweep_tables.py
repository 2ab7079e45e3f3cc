"""Thresholds tables (``score --sweep-out``): a row per sample, class and threshold with the
counts of :mod:`tinyseg_cli.metrics.sweep`, written by ``score`` and read back by ``score
--counts`` (shards added) and ``plot`` (precision/recall curves)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.metrics.sweep import SweepCounts, SweepSummary, summarize_sweep

SWEEP_KIND = "sweep"
EXACT_COLUMNS = ("tp", "fp", "fn", "tn")
TOLERANCE_COLUMNS = ("cnt_r", "sum_r", "cnt_p", "sum_p")


@dataclass
class SweepSet:
    """Counts per (sample, class): the image-by-image input of every summary."""

    thresholds: np.ndarray
    tolerance: bool
    counts: dict[tuple[str, int], SweepCounts] = field(default_factory=dict)

    def add(self, sample_id: str, class_index: int, counts: SweepCounts, source: str) -> None:
        key = (sample_id, class_index)
        if key in self.counts:
            raise TinysegError(
                f"{source}: sample {sample_id!r}, class {class_index} is counted twice (the "
                "same shard given twice?)"
            )
        self.counts[key] = counts

    def classes(self) -> list[int]:
        return sorted({c for _, c in self.counts})

    def summaries(self, per_image_mean: bool = False) -> dict[int, SweepSummary]:
        """ODS, OIS and AP of each class over the samples."""
        by_class: dict[int, list[SweepCounts]] = {}
        for (_, class_index), counts in sorted(self.counts.items()):
            by_class.setdefault(class_index, []).append(counts)
        return {
            class_index: summarize_sweep(self.thresholds, counts, per_image_mean)
            for class_index, counts in by_class.items()
        }


def sweep_table(swept: SweepSet, class_map: ClassMap) -> pa.Table:
    """The thresholds table: a row per sample, class and threshold with its counts."""
    keys = sorted(swept.counts)
    n = len(swept.thresholds)
    columns: dict[str, Any] = {
        "sample_id": pa.array([s for s, _ in keys for _ in range(n)], pa.string()),
        "class_index": pa.array(np.repeat([c for _, c in keys], n), pa.int32()),
        "class_name": pa.array([class_map.name(c) for _, c in keys for _ in range(n)], pa.string()),
        "threshold": pa.array(np.tile(swept.thresholds, len(keys)), pa.float64()),
    }
    parts = [swept.counts[key] for key in keys]
    if swept.tolerance:
        for name in TOLERANCE_COLUMNS:
            columns[name] = pa.array(np.concatenate([getattr(c, name) for c in parts]), pa.int64())
    else:
        tp = np.concatenate([c.cnt_p for c in parts])
        columns["tp"] = pa.array(tp, pa.int64())
        columns["fp"] = pa.array(np.concatenate([c.sum_p for c in parts]) - tp, pa.int64())
        columns["fn"] = pa.array(np.concatenate([c.sum_r for c in parts]) - tp, pa.int64())
        columns["tn"] = pa.array(np.concatenate([c.tn for c in parts]), pa.int64())  # type: ignore[misc]
    return pa.table(columns)


def is_sweep_table(names: list[str]) -> bool:
    return "threshold" in names and (
        set(EXACT_COLUMNS) <= set(names) or set(TOLERANCE_COLUMNS) <= set(names)
    )


def add_rows(swept: SweepSet, table: pa.Table, name: str) -> None:
    n = len(swept.thresholds)
    order = np.lexsort(
        (table["threshold"].to_numpy(), table["class_index"].to_numpy(),
         np.asarray(table["sample_id"].to_pylist(), dtype=object).astype(str))
    )  # fmt: skip
    table = table.take(pa.array(order))
    if table.num_rows % n:
        raise TinysegError(f"{name}: every sample and class needs a row per threshold")
    samples = table["sample_id"].to_pylist()[::n]
    classes = table["class_index"].to_numpy()[::n]
    columns = TOLERANCE_COLUMNS if swept.tolerance else EXACT_COLUMNS
    values = {c: table[c].to_numpy().astype(np.int64).reshape(-1, n) for c in columns}
    for row, (sample_id, class_index) in enumerate(zip(samples, classes, strict=True)):
        if swept.tolerance:
            counts = SweepCounts(*(values[c][row] for c in TOLERANCE_COLUMNS))
        else:
            tp, fp, fn, tn = (values[c][row] for c in EXACT_COLUMNS)
            counts = SweepCounts(tp, tp + fn, tp, tp + fp, tn)
        swept.add(str(sample_id), int(class_index), counts, name)

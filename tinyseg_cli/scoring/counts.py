"""Counts tables (SPEC §3): per-sample, per-class TP/FP/FN/TN, additive across shards and runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.tables import integer_column
from tinyseg_cli.metrics.counts import one_vs_rest
from tinyseg_cli.metrics.objects import ObjectCounts
from tinyseg_cli.metrics.summary import COUNT_NAMES
from tinyseg_cli.scoring.object_counts import (
    ObjectCountsSet,
    concat_object_counts,
    has_object_columns,
    object_counts_from_table,
    object_counts_set,
)


@dataclass
class CountsSet:
    """One-vs-rest counts of one run: each array has shape (samples, classes)."""

    sample_ids: list[str]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    objects: ObjectCountsSet | None = None  # with ``score --objects``

    @property
    def n_classes(self) -> int:
        return int(self.tp.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}

    def totals(self) -> dict[str, np.ndarray]:
        """Counts summed over samples (the counts are additive)."""
        return {name: values.sum(axis=0) for name, values in self.arrays().items()}

    def sample(self, row: int) -> dict[str, np.ndarray]:
        return {name: values[row] for name, values in self.arrays().items()}

    def padded(self, n_classes: int) -> CountsSet:
        """The same counts over ``n_classes`` classes; an absent class is all true negative."""
        extra = n_classes - self.n_classes
        if extra <= 0:
            return self
        objects = self.objects.padded(n_classes) if self.objects else None
        pixels = (self.tp + self.fp + self.fn + self.tn)[:, :1] if self.n_classes else None
        if pixels is None:
            raise TinysegError("cannot pad counts without any class")

        def pad(values: np.ndarray, fill: np.ndarray | int) -> np.ndarray:
            block = np.broadcast_to(fill, (len(self.sample_ids), extra))
            return np.concatenate([values, block], axis=1)

        return CountsSet(
            self.sample_ids,
            pad(self.tp, 0),
            pad(self.fp, 0),
            pad(self.fn, 0),
            pad(self.tn, pixels),
            objects,
        )

    def to_table(self, run: str | None = None) -> pa.Table:
        """The long counts table: one row per sample and class."""
        n_samples, n_classes = self.tp.shape
        columns: dict[str, pa.Array] = {}
        if run is not None:
            columns["run"] = pa.array([run] * (n_samples * n_classes), pa.string())
        columns["sample_id"] = pa.array(np.repeat(self.sample_ids, n_classes).tolist(), pa.string())
        columns["class_index"] = pa.array(np.tile(np.arange(n_classes), n_samples), pa.int32())
        for name, values in self.arrays().items():
            columns[name] = pa.array(values.reshape(-1), pa.int64())
        if self.objects is not None:
            columns.update(self.objects.columns())
        return pa.table(columns)


def counts_from_matrices(
    items: list[tuple[str, np.ndarray]],
    n_classes: int | None = None,
    objects: tuple[list[ObjectCounts], tuple[int, ...]] | None = None,
) -> CountsSet:
    """A counts set from per-sample confusion matrices, padded to a common class count;
    ``objects``: each sample's object counts and the size bins, with ``--objects``."""
    size = max([n_classes or 0, *(matrix.shape[0] for _, matrix in items)], default=0)
    size = max(size, 2)  # even an all-background sample has a background and a foreground
    stacks: list[list[np.ndarray]] = [[], [], [], []]
    for _, matrix in items:
        square = np.zeros((size, size), dtype=np.int64)
        square[: matrix.shape[0], : matrix.shape[1]] = matrix
        for stack, values in zip(stacks, one_vs_rest(square), strict=True):
            stack.append(values)
    arrays = [np.array(stack, dtype=np.int64).reshape(len(items), size) for stack in stacks]
    object_set = object_counts_set(objects[0], size, objects[1]) if objects else None
    return CountsSet([sample_id for sample_id, _ in items], *arrays, object_set)


def merge_counts(sets: list[CountsSet], source: str = "counts") -> CountsSet:
    """Concatenate counts sets of one run; a sample counted twice is an error."""
    size = max(counts.n_classes for counts in sets)
    sets = [counts.padded(size) for counts in sets]
    ids = [sample_id for counts in sets for sample_id in counts.sample_ids]
    twice = [sample_id for sample_id, n in Counter(ids).items() if n > 1]
    if twice:
        raise TinysegError(f"{source}: sample {twice[0]!r} is counted twice")
    arrays = [np.concatenate([counts.arrays()[name] for counts in sets]) for name in COUNT_NAMES]
    with_objects = [counts.objects for counts in sets if counts.objects is not None]
    if with_objects and len(with_objects) != len(sets):
        raise TinysegError(f"{source}: only some of the counts hold object counts (--objects)")
    objects = concat_object_counts(with_objects, source) if with_objects else None
    return CountsSet(ids, *arrays, objects)


def counts_from_table(table: pa.Table, source: str) -> dict[str | None, CountsSet]:
    """Validate a counts table and split it by its ``run`` column (``None`` without one)."""
    required = ("sample_id", "class_index", *COUNT_NAMES)
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise TinysegError(f"{source}: not a counts table (missing columns: {', '.join(missing)})")
    if table.num_rows == 0:
        raise TinysegError(f"{source}: counts table has no rows")
    sample_ids = table["sample_id"].to_pylist()
    if None in sample_ids:
        raise TinysegError(f"{source}: row {sample_ids.index(None)}: sample_id is empty")
    classes = integer_column(table, "class_index", source, minimum=0)[0]
    values = {
        name: integer_column(table, name, source, minimum=0, noun="counts")[0]
        for name in COUNT_NAMES
    }
    runs = table["run"].to_pylist() if "run" in table.column_names else [None] * table.num_rows
    out: dict[str | None, CountsSet] = {}
    for run in dict.fromkeys(runs):
        rows = np.flatnonzero(np.array([r == run for r in runs]))
        out[run] = _one_run(
            [sample_ids[row] for row in rows],
            classes[rows],
            {name: column[rows] for name, column in values.items()},
            source if run is None else f"{source} run {run}",
            table.take(rows) if has_object_columns(table) else None,
        )
    return out


def _one_run(
    sample_ids: list[object],
    classes: np.ndarray,
    values: dict[str, np.ndarray],
    source: str,
    object_rows: pa.Table | None = None,
) -> CountsSet:
    """The counts of one run from its rows' validated columns, as (samples, classes) grids."""
    ids, sample_row = np.unique(np.array(sample_ids, dtype=object), return_inverse=True)
    n_classes = int(classes.max()) + 1
    cells = sample_row * n_classes + classes
    if len(np.unique(cells)) != len(cells):
        _, first, counts = np.unique(cells, return_index=True, return_counts=True)
        row = int(first[np.argmax(counts > 1)])
        raise TinysegError(
            f"{source}: sample {ids[sample_row[row]]!r} class {int(classes[row])} appears twice"
        )
    totals = sum(values.values())
    pixels = np.full(len(ids), -1, dtype=np.int64)
    pixels[sample_row] = totals
    if (pixels[sample_row] != totals).any():
        row = int(np.argmax(pixels[sample_row] != totals))
        raise TinysegError(
            f"{source}: sample {ids[sample_row[row]]!r}: tp+fp+fn+tn differs between classes"
        )
    grids = {}
    for name in COUNT_NAMES:
        fill = pixels[:, None] if name == "tn" else 0
        grid = np.broadcast_to(np.asarray(fill, dtype=np.int64), (len(ids), n_classes)).copy()
        grid[sample_row, classes] = values[name]
        grids[name] = grid
    objects = None
    if object_rows is not None:
        objects = object_counts_from_table(object_rows, source, sample_row, classes, len(ids))
        objects = objects.padded(n_classes)
    return CountsSet([str(i) for i in ids], *(grids[name] for name in COUNT_NAMES), objects)

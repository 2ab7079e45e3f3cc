"""Object counts per sample and class: the additive part of ``score --objects`` that travels in
counts tables beside TP/FP/FN/TN and reduces like them (SPEC §4.7)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.tables import integer_column
from tinyseg_cli.metrics.objects import ObjectCounts, size_bin_names

OBJECT_COLUMNS = ("true_objects", "pred_objects", "matched_objects")
IOU_COLUMN = "matched_iou_sum"
_BIN_COLUMN = re.compile(r"^(true|matched)_objects_(le\d+|gt\d+)$")


@dataclass
class ObjectCountsSet:
    """Object counts of one run: (samples, classes) arrays, and (samples, classes, bins) for
    the size bins; ``records`` is the per-object table when maps were matched (not additive,
    not part of counts tables)."""

    true: np.ndarray
    pred: np.ndarray
    matched: np.ndarray
    iou_sum: np.ndarray
    true_by_size: np.ndarray
    matched_by_size: np.ndarray
    size_bins: tuple[int, ...]
    records: pa.Table | None = None

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "true": self.true,
            "pred": self.pred,
            "matched": self.matched,
            "iou_sum": self.iou_sum,
            "true_by_size": self.true_by_size,
            "matched_by_size": self.matched_by_size,
        }

    def total(self) -> ObjectCounts:
        """Counts summed over samples."""
        return ObjectCounts(**{name: a.sum(axis=0) for name, a in self._arrays().items()})

    def sample(self, row: int) -> ObjectCounts:
        return ObjectCounts(**{name: a[row] for name, a in self._arrays().items()})

    def padded(self, n_classes: int) -> ObjectCountsSet:
        """The same counts over ``n_classes`` classes (an absent class has no object)."""
        extra = n_classes - self.true.shape[1]
        if extra <= 0:
            return self
        grown = {
            name: np.concatenate(
                [a, np.zeros((a.shape[0], extra, *a.shape[2:]), dtype=a.dtype)], axis=1
            )
            for name, a in self._arrays().items()
        }
        return replace(self, **grown)

    def columns(self) -> dict[str, pa.Array]:
        """The counts-table columns, one row per sample and class (sample-major)."""
        columns = {
            name: pa.array(values.reshape(-1), pa.int64())
            for name, values in zip(
                OBJECT_COLUMNS, (self.true, self.pred, self.matched), strict=True
            )
        }
        columns[IOU_COLUMN] = pa.array(self.iou_sum.reshape(-1), pa.float64())
        for index, name in enumerate(size_bin_names(self.size_bins)):
            for kind, values in (("true", self.true_by_size), ("matched", self.matched_by_size)):
                columns[f"{kind}_objects_{name}"] = pa.array(
                    values[:, :, index].reshape(-1), pa.int64()
                )
        return columns


def object_counts_set(
    per_sample: list[ObjectCounts], n_classes: int, size_bins: tuple[int, ...]
) -> ObjectCountsSet:
    """Stack the per-sample counts, each padded to ``n_classes``."""
    n_bins = len(size_bins) + 1

    def stack(name: str, dtype: type, bins: bool) -> np.ndarray:
        shape = (len(per_sample), n_classes, n_bins) if bins else (len(per_sample), n_classes)
        out = np.zeros(shape, dtype=dtype)
        for row, counts in enumerate(per_sample):
            values = getattr(counts, name)
            out[row, : values.shape[0]] = values
        return out

    return ObjectCountsSet(
        stack("true", np.int64, False),
        stack("pred", np.int64, False),
        stack("matched", np.int64, False),
        stack("iou_sum", np.float64, False),
        stack("true_by_size", np.int64, True),
        stack("matched_by_size", np.int64, True),
        size_bins,
    )


def concat_object_counts(sets: list[ObjectCountsSet], source: str) -> ObjectCountsSet:
    """The object counts of several parts of one run (shards), which must share size bins."""
    bins = {s.size_bins for s in sets}
    if len(bins) > 1:
        shown = " and ".join(",".join(map(str, b)) for b in sorted(bins))
        raise TinysegError(f"{source}: object counts with different size bins ({shown})")
    arrays = [s._arrays() for s in sets]
    records = [s.records for s in sets if s.records is not None]
    return ObjectCountsSet(
        **{name: np.concatenate([a[name] for a in arrays]) for name in arrays[0]},
        size_bins=sets[0].size_bins,
        records=pa.concat_tables(records) if records else None,
    )


def has_object_columns(table: pa.Table) -> bool:
    return all(name in table.column_names for name in (*OBJECT_COLUMNS, IOU_COLUMN))


def object_counts_from_table(
    table: pa.Table, source: str, sample_row: np.ndarray, classes: np.ndarray, n_samples: int
) -> ObjectCountsSet:
    """The object columns of the counts-table rows ``sample_row``/``classes`` (validated
    integers; ``matched ≤ true``, ``matched ≤ pred``) as grids."""
    n_classes = int(classes.max()) + 1
    edges = _size_bins(table.column_names, source)
    grids: dict[str, np.ndarray] = {}

    def grid(values: np.ndarray, dtype: type) -> np.ndarray:
        out = np.zeros((n_samples, n_classes), dtype=dtype)
        out[sample_row, classes] = values
        return out

    for name, key in zip(OBJECT_COLUMNS, ("true", "pred", "matched"), strict=True):
        values = integer_column(table, name, source, minimum=0, noun="counts")[0]
        grids[key] = grid(values, np.int64)
    try:
        iou = np.array(
            [np.nan if v is None else v for v in table[IOU_COLUMN].to_pylist()], np.float64
        )
    except (TypeError, ValueError):
        raise TinysegError(f"{source}: {IOU_COLUMN} must hold numbers") from None
    bad = ~np.isfinite(iou) | (iou < 0) | (iou > grids["matched"][sample_row, classes])
    if bad.any():
        row = int(np.argmax(bad))
        raise TinysegError(
            f"{source}: row {row}: {IOU_COLUMN} is {iou[row]} (expected 0..matched_objects)"
        )
    grids["iou_sum"] = grid(iou, np.float64)
    over = (grids["matched"] > grids["true"]) | (grids["matched"] > grids["pred"])
    if over.any():
        s, c = np.argwhere(over)[0]
        raise TinysegError(
            f"{source}: sample row {s} class {c}: matched_objects exceeds true or pred objects"
        )
    for kind in ("true", "matched"):
        layers = []
        for name in size_bin_names(edges):
            column = f"{kind}_objects_{name}"
            if column not in table.column_names:
                raise TinysegError(f"{source}: object counts without the column {column}")
            values = integer_column(table, column, source, minimum=0, noun="counts")[0]
            layers.append(grid(values, np.int64))
        grids[f"{kind}_by_size"] = np.stack(layers, axis=2)
    return ObjectCountsSet(**grids, size_bins=edges)


def _size_bins(names: list[str], source: str) -> tuple[int, ...]:
    """The size-bin edges from the ``true_objects_le4`` … ``true_objects_gt256`` columns."""
    found = [
        m.group(2) for name in names if (m := _BIN_COLUMN.match(name)) and m.group(1) == "true"
    ]
    edges = tuple(sorted(int(name[2:]) for name in found if name.startswith("le")))
    if not edges or set(found) != set(size_bin_names(edges)):
        raise TinysegError(f"{source}: object counts without a complete set of size-bin columns")
    return edges

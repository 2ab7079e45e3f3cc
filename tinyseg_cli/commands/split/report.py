"""What a split holds (images, groups, pixels per class and imbalance of each split or
fold) and the leakage check of a split table (SPEC §4.1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.sources import manifest_maps
from tinyseg_cli.io.tables import read_table, resolve_table_path, table_metadata
from tinyseg_cli.prep.folds import Assignment, assignment_from_table
from tinyseg_cli.prep.splits import SPLITS, find_leak


@dataclass(frozen=True)
class PartSummary:
    """One split or fold: its rows, groups and class pixels (None when not counted)."""

    name: str
    images: int
    groups: int
    pixels: np.ndarray | None

    @property
    def imbalance(self) -> float | None:
        """Largest : smallest class among those present; None with fewer than two."""
        if self.pixels is None:
            return None
        present = self.pixels[self.pixels > 0]
        return None if present.size < 2 else float(present.max() / present.min())


def report_parts(assignment: Assignment) -> list[tuple[str, np.ndarray]]:
    """The parts to report and their rows: each fold's held-out part (and validation part)
    and the rows in no fold, or the splits (also of a fold chosen with --fold)."""
    if assignment.fold is None or assignment.selected_fold is not None:
        assert assignment.split is not None
        split = np.array(assignment.split, dtype=object)
        return [(name, split == name) for name in SPLITS if (split == name).any()]
    assert assignment.n_folds is not None
    fold = np.array([-1 if f is None else f for f in assignment.fold])
    val = None
    if assignment.val_fold is not None:
        val = np.array([-1 if v is None else v for v in assignment.val_fold])
    parts = []
    for n in range(assignment.n_folds):
        parts.append((f"fold {n}", fold == n))
        if val is not None:
            parts.append((f"val of fold {n}", val == n))
    if (fold < 0).any():
        parts.append(("test", fold < 0))
    return parts


def summarize(
    assignment: Assignment, keys: list[str], counts: np.ndarray | None
) -> list[PartSummary]:
    """Images, groups and class pixels of every reported part."""
    groups = np.array(keys, dtype=object)
    return [
        PartSummary(
            name,
            int(rows.sum()),
            len(set(groups[rows])),
            None if counts is None else counts[rows].sum(axis=0),
        )
        for name, rows in report_parts(assignment)
    ]


def summary_json(
    summaries: list[PartSummary], class_map: ClassMap, record: dict[str, Any], groups: int
) -> dict[str, Any]:
    """The ``--json`` summary: the split settings, then per part its counts."""
    return {
        **record,
        "rows": sum(s.images for s in summaries),
        "groups": groups,
        "classes": class_map.to_metadata(),
        "parts": [
            {
                "name": s.name,
                "images": s.images,
                "groups": s.groups,
                "pixels": None
                if s.pixels is None
                else {class_map.name(i): int(n) for i, n in enumerate(s.pixels)},
                "imbalance": s.imbalance,
            }
            for s in summaries
        ],
    }


@dataclass(frozen=True)
class CheckResult:
    """A split table without leaks: its size and how its rows are spread."""

    rows: int
    groups: int
    group_column: str | None
    parts: dict[str, dict[str, int]]  # rows per value of split, fold and val_fold


def check_split_table(spec: str, group: str | None, no_group: bool = False) -> CheckResult:
    """Check a split table: no sample id twice, no image+ROI twice, no group in two
    splits/folds, no overlapping windows of one image in two. TinysegError on a leak.

    The group column is ``group``, else the one the table's split record names (none for
    region splits, whose groups cross on purpose), else a column named ``group``; with
    ``no_group`` each row is its own group. A table with none of these (its metadata lost
    to another tool) is a UsageError: checking it row by row would hide every group leak.
    """
    table = read_table(spec)
    name = "<stdin>" if spec == "-" else spec
    if "sample_id" not in table.column_names:
        raise TinysegError(f"{name}: no sample_id column")
    ids = table["sample_id"].to_pylist()
    if None in ids:
        raise TinysegError(f"{name}: row {ids.index(None)}: empty sample_id")
    labels = assignment_from_table(table, name).labels()
    group = None if no_group else _check_group_column(table, name, group)
    keys = [str(v) for v in table[group].to_pylist()] if group else [str(i) for i in ids]
    if group and None in table[group].to_pylist():
        raise TinysegError(f"{name}: row {table[group].to_pylist().index(None)}: empty group")
    leak = find_leak([str(i) for i in ids], labels, keys if group else None)
    if leak is None and "mask" in table.column_names:
        refs = list(manifest_maps(table, spec).values())
        column = "image" if "image" in table.column_names else "mask"
        sources = [
            None if v is None else os.path.abspath(resolve_table_path(str(v), spec))
            for v in table[column].to_pylist()
        ]
        leak = find_leak([r.sample_id for r in refs], labels, None, sources, [r.roi for r in refs])
    if leak is not None:
        raise TinysegError(f"{name}: {leak}")
    return CheckResult(table.num_rows, len(set(keys)), group, _rows_per_value(table))


def _rows_per_value(table: pa.Table) -> dict[str, dict[str, int]]:
    """Rows per split (in train, val, test order) and per fold."""
    out: dict[str, dict[str, int]] = {}
    for column in ("split", "fold", "val_fold"):
        if column not in table.column_names:
            continue
        values = [v for v in table[column].to_pylist() if v is not None]
        order = SPLITS if column == "split" else sorted(set(values))
        out[column] = {str(v): values.count(v) for v in order if v in values}
    return out


def _check_group_column(table: pa.Table, name: str, group: str | None) -> str | None:
    """``group``, else the split record's group (None: the split kept each row alone),
    else the ``group`` column; UsageError when none of them says how rows are grouped."""
    if group is None:
        record = table_metadata(table).get("split")
        if isinstance(record, dict) and "group" in record:
            group = record["group"]
        elif "group" in table.column_names:
            group = "group"
        else:
            raise UsageError(
                f"{name}: no group column known (no tinyseg split metadata, no 'group' "
                "column): pass --group COLUMN, or --no-group to check each row as its own group"
            )
    if group is not None and group not in table.column_names:
        raise TinysegError(
            f"{name}: no column {group!r} to group by (columns: {', '.join(table.column_names)})"
        )
    return group

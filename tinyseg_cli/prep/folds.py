"""Groups to splits and folds, and the assignment columns of a split table (SPEC §4.1).

A split table is a manifest plus ``split`` (train/val/test) and, for cross-validation,
``fold``: the fold whose held-out part a row is. Rows held out of every fold (--test-ids)
have no fold and split ``test``; the others have split ``train`` until a fold is chosen
(:func:`select_fold`). With a validation fraction, ``val_fold`` is the fold whose
validation part a row is, and each fold's held-out part is then its test part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.tables import table_metadata
from tinyseg_cli.prep.splits import (
    SPLITS,
    assign_folds,
    assign_ratios,
    assign_stratified,
    assign_stratified_folds,
    carve_validation,
    group_codes,
)


@dataclass
class Assignment:
    """Each row's split and/or fold; None where a row has none."""

    split: list[str | None] | None = None
    fold: list[int | None] | None = None
    val_fold: list[int | None] | None = None
    n_folds: int | None = None
    selected_fold: int | None = None  # the fold the ``split`` column shows

    def labels(self) -> list[str]:
        """Each row's whole assignment in words, e.g. ``train, fold 2, val of fold 0``."""
        columns = [
            (self.split, "{}"),
            (self.fold, "fold {}"),
            (self.val_fold, "val of fold {}"),
        ]
        n_rows = next(len(values) for values, _ in columns if values is not None)
        out = []
        for row in range(n_rows):
            words = [
                text.format(values[row])
                for values, text in columns
                if values is not None and values[row] is not None
            ]
            out.append(", ".join(words) or "no fold")
        return out


@dataclass(frozen=True)
class Plan:
    """How groups are assigned: ``ratios`` (train, val[, test]) or ``folds``."""

    ratios: tuple[float, ...] | None = None
    folds: int | None = None
    val_fraction: float | None = None
    stratify: bool = False
    seed: int = 0


def held_out_groups(keys: list[str], test_ids: list[str], name: str) -> set[str]:
    """The ``--test-ids`` groups, each of which must exist."""
    known = set(keys)
    unknown = [key for key in test_ids if key not in known]
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (" …" if len(unknown) > 5 else "")
        raise TinysegError(f"{name}: --test-ids names {len(unknown)} unknown group(s): {shown}")
    return set(test_ids)


def assign(
    keys: list[str], plan: Plan, held_out: set[str], counts: np.ndarray | None
) -> Assignment:
    """Assign the groups of ``keys`` (one per row) by ``plan``; ``held_out`` groups go to
    test. ``counts`` (rows, classes) is needed to stratify."""
    names, codes = group_codes(keys)
    held = np.array([name in held_out for name in names], dtype=bool)
    rest = np.flatnonzero(~held)
    presence = None
    if plan.stratify:
        assert counts is not None
        presence = np.zeros((len(names), counts.shape[1]), dtype=bool)
        np.logical_or.at(presence, codes, counts > 0)
    if plan.ratios is not None:
        per_group = np.full(len(names), SPLITS.index("test"), dtype=np.int64)
        if presence is not None:
            per_group[rest] = assign_stratified(presence[rest], plan.ratios, plan.seed)
        else:
            per_group[rest] = assign_ratios(rest.size, plan.ratios, plan.seed)
        return Assignment(split=[SPLITS[per_group[c]] for c in codes])
    k = plan.folds
    assert k is not None
    fold = np.full(len(names), -1, dtype=np.int64)
    if presence is not None:
        fold[rest] = assign_stratified_folds(presence[rest], k, plan.seed)
    else:
        fold[rest] = assign_folds(rest.size, k, plan.seed)
    split = ["test" if held[c] else "train" for c in codes]
    assignment = Assignment(split, _optional(fold[codes]), n_folds=k)
    if plan.val_fraction is not None:
        val = carve_validation(fold, k, plan.val_fraction, plan.seed, presence)
        assignment.val_fold = _optional(val[codes])
    return assignment


def _optional(values: np.ndarray) -> list[int | None]:
    return [None if v < 0 else int(v) for v in values]


def select_fold(assignment: Assignment, n: int) -> Assignment:
    """Fold ``n`` as the ``split`` column: its held-out rows are val (test when a validation
    part was carved out, which is then val); rows in no fold stay test; the rest train."""
    assert assignment.fold is not None and assignment.n_folds is not None
    if not 0 <= n < assignment.n_folds:
        raise TinysegError(f"--fold {n}: the table has folds 0..{assignment.n_folds - 1}")
    carved = assignment.val_fold is not None
    rows = len(assignment.fold)
    split: list[str | None] = []
    for kept, fold, val in zip(
        assignment.split or [None] * rows,
        assignment.fold,
        assignment.val_fold or [None] * rows,
        strict=True,
    ):
        if kept == "test" or fold is None or (carved and fold == n):
            split.append("test")
        elif fold == n or val == n:
            split.append("val")
        else:
            split.append("train")
    return Assignment(split, assignment.fold, assignment.val_fold, assignment.n_folds, n)


def assignment_from_table(table: pa.Table, name: str) -> Assignment:
    """The ``split``/``fold``/``val_fold`` columns of a split table, validated."""
    found = Assignment()
    if "split" in table.column_names:
        found.split = table["split"].to_pylist()
        for row, value in enumerate(found.split):
            if value is not None and value not in SPLITS:
                raise TinysegError(f"{name}: row {row}: split {value!r} is not train, val or test")
    for column in ("fold", "val_fold"):
        if column not in table.column_names:
            continue
        values = table[column].to_pylist()
        for row, value in enumerate(values):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise TinysegError(f"{name}: row {row}: {column} {value!r} is not an integer >= 0")
        setattr(found, column, values)
    if found.fold is not None:
        record = table_metadata(table).get("split")
        record = record if isinstance(record, dict) else {}
        recorded = record.get("folds")
        if isinstance(record.get("fold"), int) and found.split is not None:
            found.selected_fold = record["fold"]
        largest = max((v for v in found.fold + (found.val_fold or []) if v is not None), default=0)
        found.n_folds = recorded if isinstance(recorded, int) else largest + 1
        for row, (fold, val) in enumerate(zip(found.fold, found.val_fold or [], strict=False)):
            if val is not None and val == fold:
                raise TinysegError(f"{name}: row {row}: val_fold equals fold ({fold})")
    if found.split is None and found.fold is None:
        raise TinysegError(f"{name}: no split or fold column")
    return found

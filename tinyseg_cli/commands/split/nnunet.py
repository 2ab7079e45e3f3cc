"""nnU-Net interoperability: folds to and from its ``splits_final.json`` (SPEC §4.1).

nnU-Net v2 keeps the cross-validation of a dataset as a JSON list with one object per
fold, ``{"train": [case ids], "val": [case ids]}``: every case is validation data in
exactly one fold and training data in all the others. Case ids are our sample ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import STDIO, atomic_path
from tinyseg_cli.io.paths import not_a_file
from tinyseg_cli.prep.folds import Assignment

Splits = list[dict[str, list[str]]]


def read_splits(path: str) -> Splits:
    """A ``splits_final.json``, checked for its shape: a non-empty list of train/val lists."""
    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    try:
        value = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TinysegError(f"{p}: invalid JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(value, list) or not value:
        raise TinysegError(f"{p}: expected a non-empty list of folds, found {type(value).__name__}")
    for fold, entry in enumerate(value):
        if not isinstance(entry, dict) or not {"train", "val"} <= entry.keys():
            raise TinysegError(f"{p}: fold {fold}: expected an object with 'train' and 'val'")
        for key in ("train", "val"):
            ids = entry[key]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise TinysegError(f"{p}: fold {fold}: {key!r} must be a list of case ids")
    return [{"train": entry["train"], "val": entry["val"]} for entry in value]


def assignment_from_splits(
    splits: Splits, sample_ids: list[str], name: str
) -> tuple[Assignment, list[str]]:
    """The folds of ``splits`` for the rows ``sample_ids``, and the ids it does not list.

    One entry is a train/val split (unlisted rows: test); several are folds (unlisted rows:
    in no fold). Unknown ids, an id in train and val of one fold, an id validating two
    folds or none, and folds over different cases are errors.
    """
    known = set(sample_ids)
    for fold, entry in enumerate(splits):
        train, val = set(entry["train"]), set(entry["val"])
        unknown = sorted((train | val) - known)
        if unknown:
            raise TinysegError(
                f"{name}: fold {fold}: unknown sample {unknown[0]!r}"
                + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else "")
            )
        both = sorted(train & val)
        if both:
            raise TinysegError(f"{name}: fold {fold}: sample {both[0]!r} is in train and val")
    cases = set(splits[0]["train"]) | set(splits[0]["val"])
    unlisted = [s for s in sample_ids if s not in cases]
    if len(splits) == 1:
        val = set(splits[0]["val"])
        split = ["test" if s not in cases else "val" if s in val else "train" for s in sample_ids]
        return Assignment(split=split), unlisted  # type: ignore[arg-type]
    fold_of: dict[str, int] = {}
    for fold, entry in enumerate(splits):
        other = sorted(cases ^ (set(entry["train"]) | set(entry["val"])))
        if other:
            raise TinysegError(
                f"{name}: folds 0 and {fold} list different cases (e.g. {other[0]!r})"
            )
        for case in entry["val"]:
            if case in fold_of:
                raise TinysegError(
                    f"{name}: sample {case!r} is val in folds {fold_of[case]} and {fold}"
                )
            fold_of[case] = fold
    never = sorted(cases - fold_of.keys())
    if never:
        raise TinysegError(f"{name}: sample {never[0]!r} is val in no fold")
    split = ["train" if s in cases else "test" for s in sample_ids]
    fold = [fold_of.get(s) for s in sample_ids]
    return Assignment(split, fold, n_folds=len(splits)), unlisted  # type: ignore[arg-type]


def splits_of(assignment: Assignment, sample_ids: list[str]) -> Splits:
    """``splits_final.json`` of an assignment: per fold, val = its held-out rows and train =
    every other row in a fold (a carved-out validation part trains, as nnU-Net has none);
    without folds one entry, train vs val (test rows left out)."""
    if assignment.fold is not None:
        assert assignment.n_folds is not None
        pairs = list(zip(sample_ids, assignment.fold, strict=True))
        return [
            {
                "train": sorted(s for s, f in pairs if f is not None and f != n),
                "val": sorted(s for s, f in pairs if f == n),
            }
            for n in range(assignment.n_folds)
        ]
    assert assignment.split is not None
    pairs_split = list(zip(sample_ids, assignment.split, strict=True))
    return [{key: sorted(s for s, p in pairs_split if p == key) for key in ("train", "val")}]


def write_splits(splits: Splits, path: str) -> None:
    """Write ``splits`` as nnU-Net does (4-space indent), atomically, or to stdout."""
    text = json.dumps(splits, indent=4) + "\n"
    if path == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def splits_record(splits: Splits) -> dict[str, Any]:
    """How many folds and cases a ``splits_final.json`` holds (for the provenance record)."""
    return {"folds": len(splits), "cases": len(set(splits[0]["train"]) | set(splits[0]["val"]))}

"""Rows of a split manifest that training reads: image, mask and region of each sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.masks import MaskRule
from tinyseg_cli.io.rasters import Roi
from tinyseg_cli.io.sources import manifest_maps, no_split_rows
from tinyseg_cli.prep.folds import assignment_from_table, select_fold


@dataclass(frozen=True)
class Sample:
    """One image of a manifest with its mask and region of interest (image coordinates)."""

    sample_id: str
    image: Path
    mask: Path
    roi: Roi | None = None
    mask_rule: MaskRule | None = None  # how the mask becomes labels (io/masks.py)


def split_rows(table: pa.Table, spec: str, split: str, fold: int | None = None) -> list[Sample]:
    """The samples of ``split`` (train/val/test), optionally of cross-validation ``fold``.

    With ``fold`` the manifest's ``fold`` (and ``val_fold``) columns decide, as ``tinyseg
    split --fold`` does: rows held out of that fold validate (or, when a validation part was
    carved out with --val-fraction, that part does), rows of no fold are test and never used.
    """
    source = "<stdin>" if spec == "-" else spec
    for column in ("image", "mask"):
        if column not in table.column_names:
            raise TinysegError(f"{source}: manifest needs an {column!r} column")
    if fold is not None:
        table = _fold_split(table, source, fold)
    elif "split" not in table.column_names:
        raise TinysegError(
            f"{source}: manifest has no 'split' column (make one with 'tinyseg split', "
            "or pass --fold with a 'fold' column)"
        )
    values = table["split"].to_pylist()
    if split not in values:
        raise TinysegError(no_split_rows(source, split, values))
    images = manifest_maps(table, spec, ("image",), split)
    masks = manifest_maps(table, spec, ("mask",), split)
    return [
        Sample(sample_id, ref.path, masks[sample_id].path, ref.roi, masks[sample_id].rule)
        for sample_id, ref in images.items()
    ]


def training_rows(table: pa.Table, spec: str) -> list[Sample]:
    """The training rows of a manifest: ``split == 'train'``, or every row without a
    ``split`` column (what ``classweights`` and ``resample`` read)."""
    source = "<stdin>" if spec == "-" else spec
    if table.num_rows == 0:
        raise TinysegError(f"{source}: manifest has no rows")
    for column in ("image", "mask"):
        if column not in table.column_names:
            raise TinysegError(f"{source}: manifest needs a column {column!r}")
    split = "train" if "split" in table.column_names else None
    images = manifest_maps(table, spec, ("image",), split)
    masks = manifest_maps(table, spec, ("mask",), split)
    return [
        Sample(sid, images[sid].path, ref.path, ref.roi, ref.rule) for sid, ref in masks.items()
    ]


def _fold_split(table: pa.Table, source: str, fold: int) -> pa.Table:
    """The ``split`` column of fold ``fold``, by the rule ``tinyseg split --fold`` writes."""
    if "fold" not in table.column_names:
        raise TinysegError(f"{source}: --fold {fold} given but the manifest has no 'fold' column")
    chosen = select_fold(assignment_from_table(table, source), fold)
    if "split" in table.column_names:
        table = table.drop_columns(["split"])
    return table.append_column("split", pa.array(chosen.split, pa.string()))

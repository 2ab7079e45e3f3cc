"""Manifests for ``split``: read from a table or built from image and mask folders,
validated, expanded into region ROI rows, and written back as a split table (SPEC §3, §4.1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.commands.split.folders import FolderLayout, discover
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata
from tinyseg_cli.io.masks import (
    MASK_CLASS_COLUMN,
    MASKS_METADATA,
    MaskRule,
    mask_rules,
    open_mask,
)
from tinyseg_cli.io.paths import check_storable
from tinyseg_cli.io.rasters import Roi
from tinyseg_cli.io.sources import ROI_COLUMNS, MapRef, manifest_maps, resolve_maps
from tinyseg_cli.io.tables import read_table, resolve_table_path, table_metadata, with_metadata
from tinyseg_cli.metrics.counts import LabelOutOfRange, label_counts
from tinyseg_cli.prep.folds import Assignment
from tinyseg_cli.prep.splits import region_rois
from tinyseg_cli.runtime.parallel import parallel_map
from tinyseg_cli.scoring.class_counts import count_masks
from tinyseg_cli.scoring.pairs import CountOptions

PATH_COLUMNS = ("image", "mask", "prediction")  # rewritten for the output table's folder
REQUIRED_PATHS = ("image", "mask")  # must name a file in every row
ASSIGNMENT_COLUMNS = ("split", "fold", "val_fold")


@dataclass
class Manifest:
    """The rows to split: the user's table, each row's mask and every path column resolved."""

    table: pa.Table
    name: str
    refs: list[MapRef]
    paths: dict[str, list[Path | None]]  # usable from the working directory
    class_map: ClassMap | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_ids(self) -> list[str]:
        return [ref.sample_id for ref in self.refs]


def read_manifest(spec: str) -> Manifest:
    """A manifest table (Parquet, CSV, or ``-``), validated: sample ids unique, paths and
    ROIs present; paths resolve relative to the table (SPEC §3)."""
    table = read_table(spec)
    name = "<stdin>" if spec == "-" else spec
    if table.num_rows == 0:
        raise TinysegError(f"{name}: manifest has no rows")
    refs = list(manifest_maps(table, spec).values())
    maskless = {row for row, ref in enumerate(refs) if ref.rule is not None and ref.rule.absent}
    paths = {
        column: _resolved(table, column, spec, name, maskless if column == "mask" else set())
        for column in PATH_COLUMNS
        if column in table.column_names
    }
    metadata = table_metadata(table)
    return Manifest(table, name, refs, paths, class_map_from_metadata(metadata), metadata)


def _resolved(
    table: pa.Table, column: str, spec: str, name: str, may_be_empty: set[int]
) -> list[Path | None]:
    values = table[column].to_pylist()
    for row, value in enumerate(values):
        if value is None and column in REQUIRED_PATHS and row not in may_be_empty:
            raise TinysegError(f"{name}: row {row}: empty {column}")
    return [None if v is None else resolve_table_path(str(v), spec) for v in values]


def manifest_from_dirs(
    images: str, masks: str, mask_suffix: str = ""
) -> tuple[Manifest, list[str], list[str]]:
    """A manifest of the images and masks with the same stem (a mask's stem ending in
    ``mask_suffix``, which is dropped); also the unmatched stems of each side. An error when
    no stem matches."""
    image_maps, mask_maps = resolve_maps(images, images=True), resolve_maps(masks)
    if mask_suffix:
        mask_maps = {
            stem[: -len(mask_suffix)]: ref
            for stem, ref in mask_maps.items()
            if stem.endswith(mask_suffix) and len(stem) > len(mask_suffix)
        }
    common = sorted(image_maps.keys() & mask_maps.keys())
    if not common:
        raise TinysegError(
            f"{images} and {masks}: no image has a mask with the same name (file stem)"
        )
    image_paths = [image_maps[s].path for s in common]
    mask_paths = [mask_maps[s].path for s in common]
    for path in (*image_paths, *mask_paths):  # the manifest stores paths as text
        check_storable(str(path), str(path.parent), "paths")
    table = pa.table(
        {
            "sample_id": pa.array(common, pa.string()),
            "image": pa.array([str(p) for p in image_paths], pa.string()),
            "mask": pa.array([str(p) for p in mask_paths], pa.string()),
        }
    )
    manifest = Manifest(
        table,
        masks,
        [mask_maps[s] for s in common],
        {"image": image_paths, "mask": mask_paths},
    )
    return (
        manifest,
        sorted(image_maps.keys() - mask_maps.keys()),
        sorted(mask_maps.keys() - image_maps.keys()),
    )


def manifest_from_folders(
    layout: FolderLayout, classes: ClassMap | None, threshold: int | None
) -> tuple[Manifest, list[str]]:
    """A manifest of a folder-per-class set (:mod:`~tinyseg_cli.commands.split.folders`):
    ``mask`` null for background images, ``mask_class`` the class of each mask; also the
    images of class folders left out for want of a mask."""
    found = discover(layout, classes)
    rows = found.rows
    images = [row.image for row in rows]
    masks = [row.mask for row in rows]
    labels = [found.class_map.index(row.class_name) for row in rows]
    table = pa.table(
        {
            "sample_id": pa.array([row.sample_id for row in rows], pa.string()),
            "image": pa.array([str(p) for p in images], pa.string()),
            "mask": pa.array([None if m is None else str(m) for m in masks], pa.string()),
            MASK_CLASS_COLUMN: pa.array(labels, pa.int32()),
        }
    )
    refs = [
        MapRef(row.sample_id, row.mask or row.image, None, str(row.image), rule)
        for row, rule in zip(rows, _rules(labels, masks, threshold), strict=True)
    ]
    metadata = {MASKS_METADATA: {"threshold": threshold}} if threshold else {}
    manifest = Manifest(
        table,
        str(layout.images),
        refs,
        {"image": images, "mask": masks},  # type: ignore[dict-item]
        found.class_map,
        metadata,
    )
    return manifest, found.without_mask


def _rules(labels: list[int], masks: list[Path | None], threshold: int | None) -> list[MaskRule]:
    return [
        MaskRule(label, threshold, absent=mask is None)
        for label, mask in zip(labels, masks, strict=True)
    ]


def binarised(manifest: Manifest, threshold: int) -> Manifest:
    """``--mask-threshold`` on a manifest whose masks are soft one-class masks: pixels at or
    above ``threshold`` are the row's ``mask_class`` (1, foreground, where none is given)."""
    table = manifest.table
    if MASK_CLASS_COLUMN not in table.column_names:
        ones = pa.array([1] * table.num_rows, pa.int32())
        table = table.append_column(MASK_CLASS_COLUMN, ones)
    metadata = {**manifest.metadata, MASKS_METADATA: {"threshold": threshold}}
    table = with_metadata(table, {MASKS_METADATA: metadata[MASKS_METADATA]})
    rules = mask_rules(table, manifest.name)
    refs = [
        replace(ref, rule=rule or MaskRule(1, threshold))
        for ref, rule in zip(manifest.refs, rules, strict=True)
    ]
    class_map = manifest.class_map or ClassMap(("background", "foreground"))
    return replace(manifest, table=table, refs=refs, class_map=class_map, metadata=metadata)


def check_files(manifest: Manifest) -> None:
    """Every image and mask of every row is a file, before any work starts (SPEC §9); a
    row without a mask is all background (``mask_class`` 0)."""
    for column, paths in manifest.paths.items():
        if column not in REQUIRED_PATHS:
            continue
        for row, path in enumerate(paths):
            rule = manifest.refs[row].rule
            if column == "mask" and path is None and rule is not None and rule.absent:
                continue
            if path is None or not path.is_file():
                found = "is a folder, expected a file" if path and path.is_dir() else "no such file"
                raise TinysegError(
                    f"{path}: {found} ({column} of row {row}, sample "
                    f"{manifest.refs[row].sample_id!r})"
                )


def group_keys(manifest: Manifest, column: str | None) -> list[str]:
    """Each row's group: the value of ``column``, or its own sample id without one."""
    if column is None:
        return manifest.sample_ids
    values = manifest.table[column].to_pylist()
    for row, value in enumerate(values):
        if value is None:
            raise TinysegError(f"{manifest.name}: row {row}: empty group ({column!r})")
    return [str(value) for value in values]


def count_rows(
    refs: list[MapRef], options: CountOptions, jobs: int, on_done: Callable[[Any], None]
) -> np.ndarray:
    """Pixels per class of each row's mask inside its ROI: a (rows, classes) matrix."""
    counts = count_masks(refs, options, jobs, on_done=on_done).per_sample
    assert counts is not None  # counted sample by sample
    return counts


def region_rows(
    manifest: Manifest,
    side: str,
    fraction: float,
    held: list[bool],
    options: CountOptions,
    count: bool,
    jobs: int,
    on_done: Callable[[Any], None],
) -> tuple[Manifest, Assignment, np.ndarray | None, list[int]]:
    """Each row as two ROI rows, the ``side`` region (val, ``<id>@<side>``) and the rest
    (train, ``<id>@rest``); ``held`` rows stay whole, as test. Also the class counts of
    the new rows when ``count``, and the input row of each."""
    work = partial(_region_windows, side=side, fraction=fraction, options=options, count=count)
    results = parallel_map(work, list(zip(manifest.refs, held, strict=True)), jobs, on_done)
    source: list[int] = []
    windows: list[Roi] = []
    names: list[str | None] = []
    counts: list[np.ndarray] = []
    for row, (rois, row_counts) in enumerate(results):
        source += [row] * len(rois)
        windows += rois
        names += [side, "rest"] if len(rois) == 2 else [None]
        counts += row_counts
    ids = [
        ref.sample_id if region is None else f"{ref.sample_id}@{region}"
        for ref, region in zip((manifest.refs[r] for r in source), names, strict=True)
    ]
    table = manifest.table.take(pa.array(source, pa.int64()))
    table = table.drop_columns([c for c in (*ROI_COLUMNS, "region") if c in table.column_names])
    table = table.set_column(
        table.column_names.index("sample_id"), "sample_id", pa.array(ids, pa.string())
    )
    for i, column in enumerate(ROI_COLUMNS):
        table = table.append_column(column, pa.array([w[i] for w in windows], pa.int64()))
    table = table.append_column("region", pa.array(names, pa.string()))
    refs = [
        replace(manifest.refs[r], sample_id=i, roi=w, origin=None)
        for i, r, w in zip(ids, source, windows, strict=True)
    ]
    paths = {column: [paths[r] for r in source] for column, paths in manifest.paths.items()}
    expanded = Manifest(table, manifest.name, refs, paths, manifest.class_map, manifest.metadata)
    split = ["test" if n is None else "train" if n == "rest" else "val" for n in names]
    return expanded, Assignment(split=split), _stacked(counts) if count else None, source


def _stacked(rows: list[np.ndarray]) -> np.ndarray:
    """Per-row class counts of different lengths as one (rows, classes) matrix."""
    width = max(row.size for row in rows)
    return np.stack([np.pad(row, (0, width - row.size)) for row in rows])


def _region_windows(
    item: tuple[MapRef, bool], side: str, fraction: float, options: CountOptions, count: bool
) -> tuple[list[Roi], list[np.ndarray]]:
    """The ROIs one row becomes (its region and rest, or itself) and their class counts."""
    ref, whole = item
    mask = open_mask(ref.path, palette=options.palette, roi=ref.roi, rule=ref.rule)
    y0, x0 = ref.roi[:2] if ref.roi else (0, 0)
    height, width = mask.shape
    roi = (y0, x0, y0 + height, x0 + width)
    try:
        rois = [roi] if whole else list(region_rois(roi, side, fraction))
    except ValueError as error:
        raise TinysegError(f"{ref.path}: --region {error}") from None
    counts = []
    for window in rois if count else []:
        mask.roi = window
        try:
            counts.append(label_counts(mask, options.n_classes, options.ignore_index))
        except LabelOutOfRange as error:
            raise TinysegError(
                f"{ref.path}: pixel {mask.position(error.flat_index)}: {error}"
            ) from None
    return rois, counts


def output_paths(manifest: Manifest, output: str | None) -> dict[str, list[str | None]]:
    """Path columns as written: relative to the output table's folder (absolute ones stay
    absolute); absolute when the table goes to stdout, whose reader resolves from its own
    working directory."""
    out_dir = None if output in (None, "-") else os.path.abspath(Path(output).parent)  # type: ignore[arg-type]
    written: dict[str, list[str | None]] = {}
    for column, paths in manifest.paths.items():
        given = manifest.table[column].to_pylist()
        written[column] = [
            _written_path(str(value), path, out_dir)
            for value, path in zip(given, paths, strict=True)
        ]
    return written


def _written_path(given: str, path: Path | None, out_dir: str | None) -> str | None:
    if path is None:
        return None
    if out_dir is None:
        return os.path.abspath(path)
    if Path(given).is_absolute():
        return given
    return os.path.relpath(os.path.abspath(path), out_dir)


def split_table(manifest: Manifest, assignment: Assignment, output: str | None) -> pa.Table:
    """The manifest's rows and columns (paths rewritten for ``output``) plus the assignment."""
    table = manifest.table.replace_schema_metadata(None)
    table = table.drop_columns([c for c in ASSIGNMENT_COLUMNS if c in table.column_names])
    for column, values in output_paths(manifest, output).items():
        index = table.column_names.index(column)
        table = table.set_column(index, column, pa.array(values, pa.string()))
    if assignment.split is not None:
        table = table.append_column("split", pa.array(assignment.split, pa.string()))
    for column in ("fold", "val_fold"):
        values = getattr(assignment, column)
        if values is not None:
            table = table.append_column(column, pa.array(values, pa.int32()))
    return table

"""Where label maps come from: a folder, a glob, a manifest table or one file, keyed by sample.

``--truth`` and ``--pred`` of ``score`` take any of these; samples are matched by stem
(file name without suffix) or by the manifest's ``sample_id``.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.formats import IMAGE_SUFFIXES, JPEG_SUFFIXES, RASTER_SUFFIXES
from tinyseg_cli.io.masks import MaskRule, mask_rules
from tinyseg_cli.io.paths import check_storable, visible
from tinyseg_cli.io.rasters import Roi
from tinyseg_cli.io.tables import integer_column, is_table_path, read_table, resolve_table_path

ROI_COLUMNS = ("y0", "x0", "y1", "x1")
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class MapRef:
    """One map of one sample: its file and, from a manifest, its region of interest and
    how its mask becomes labels (:mod:`tinyseg_cli.io.masks`)."""

    sample_id: str
    path: Path
    roi: Roi | None = None
    origin: str | None = None  # where the sample was named, for messages: "MANIFEST: row 4"
    rule: MaskRule | None = None  # None: the map holds class indices

    @property
    def where(self) -> str:
        """The manifest row (or the file) that named this sample, for messages."""
        return self.origin or str(self.path)


def _by_stem(
    paths: list[Path], source: str, suffixes: frozenset[str] = RASTER_SUFFIXES
) -> dict[str, MapRef]:
    found: dict[str, MapRef] = {}
    for path in sorted(paths):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        check_storable(path.stem, str(path))
        if path.stem in found:
            raise TinysegError(
                f"{source}: two files for sample {path.stem!r}: {found[path.stem].path.name} "
                f"and {path.name}"
            )
        found[path.stem] = MapRef(path.stem, path)
    if not found:
        if any(path.suffix.lower() in JPEG_SUFFIXES for path in paths):
            raise TinysegError(
                f"{source}: only JPEG files, which can be images but not masks or predictions "
                "(lossy compression changes labels along every edge): store maps as PNG, TIFF "
                "or NPY"
            )
        kinds = "TIFF, PNG, NPY or JPEG" if suffixes == IMAGE_SUFFIXES else "TIFF, PNG or NPY"
        raise TinysegError(f"{source}: no {kinds} files found")
    return found


def manifest_rois(table: pa.Table, source: str) -> list[Roi | None]:
    """Each row's ROI (None: the whole image), checked for the whole table before any work:
    y0, x0, y1, x1 all empty or all integers >= 0 (no NaN, fraction or text), y0 < y1 and
    x0 < x1."""
    columns = []
    for column in ROI_COLUMNS:
        if column in table.column_names:
            columns.append(integer_column(table, column, source, minimum=0, nullable=True))
        else:
            columns.append((np.zeros(table.num_rows, np.int64), np.zeros(table.num_rows, bool)))
    values = np.stack([v for v, _ in columns], axis=1)
    given = np.stack([p for _, p in columns], axis=1)
    partial = given.any(axis=1) & ~given.all(axis=1)
    if partial.any():
        index = int(np.argmax(partial))
        raise TinysegError(f"{source}: row {index}: ROI needs all of y0, x0, y1, x1")
    y0, x0, y1, x1 = values.T
    empty = given.all(axis=1) & ((y0 >= y1) | (x0 >= x1))
    if empty.any():
        index = int(np.argmax(empty))
        box = ", ".join(f"{c}={v}" for c, v in zip(ROI_COLUMNS, values[index], strict=True))
        raise TinysegError(
            f"{source}: row {index}: empty ROI ({box}): expected y0 < y1 and x0 < x1"
        )
    whole = given.all(axis=1)
    return [
        (int(y0[i]), int(x0[i]), int(y1[i]), int(x1[i])) if whole[i] else None
        for i in range(table.num_rows)
    ]


def manifest_maps(
    table: pa.Table, spec: str, columns: tuple[str, ...] = ("mask",), split: str | None = None
) -> dict[str, MapRef]:
    """Maps of a manifest ``table`` read from ``spec`` (paths resolve relative to it).

    ``columns`` are the columns to read paths from, first present wins; ``split`` keeps only
    the rows of that split.
    """
    source = "<stdin>" if spec == "-" else spec
    column = next((name for name in columns if name in table.column_names), None)
    if column is None:
        raise TinysegError(f"{source}: manifest needs a column {' or '.join(map(repr, columns))}")
    if "sample_id" not in table.column_names:
        raise TinysegError(f"{source}: manifest needs a 'sample_id' column")
    rois = manifest_rois(table, source)
    rules = mask_rules(table, source) if column == "mask" else [None] * table.num_rows
    rows = list(enumerate(table.to_pylist()))  # row numbers of the whole table, for messages
    if split is not None:
        if "split" not in table.column_names:
            raise TinysegError(f"{source}: --split {split} given but the manifest has no 'split'")
        rows = [(index, row) for index, row in rows if row["split"] == split]
        if not rows:
            raise TinysegError(no_split_rows(source, split, table["split"].to_pylist()))
    found: dict[str, MapRef] = {}
    for index, row in rows:
        sample_id, value, rule = row["sample_id"], row[column], rules[index]
        if rule is not None and rule.absent:  # no mask: all background, the image's size
            value = row.get("image")
        if sample_id is None or value is None:
            raise TinysegError(f"{source}: row {index}: empty sample_id or {column}")
        sample_id = str(sample_id)
        if sample_id in found:
            raise TinysegError(f"{source}: sample {sample_id!r} appears twice")
        path = resolve_table_path(str(value), spec)
        roi = rois[index]
        found[sample_id] = MapRef(sample_id, path, roi, f"{source}: row {index}", rule)
    return found


def no_split_rows(source: str, split: str, values: list[object]) -> str:
    """The message for a ``--split`` no row has, naming the splits the table holds."""
    found = sorted({str(value) for value in values if value is not None})
    return (
        f"{source}: no rows with split == {split!r} (the table's splits: "
        f"{', '.join(found) or 'none'})"
    )


def resolve_maps(
    spec: str,
    *,
    columns: tuple[str, ...] = ("mask",),
    split: str | None = None,
    images: bool = False,
) -> dict[str, MapRef]:
    """Maps named by ``spec`` (folder, glob, manifest table, or one file), keyed by sample id.

    ``columns`` are the manifest columns to read paths from, first present wins. ``images``:
    folders and globs also yield JPEG files (images may be JPEG, maps may not).
    """
    suffixes = IMAGE_SUFFIXES if images else RASTER_SUFFIXES
    path = Path(spec)
    if spec == "-" or (is_table_path(spec) and path.is_file()):
        return manifest_maps(read_table(spec), spec, columns, split)
    if split is not None:
        raise TinysegError(f"{spec}: --split needs a manifest table")
    if path.is_dir():
        return _by_stem([entry for entry in path.iterdir() if visible(entry)], spec, suffixes)
    if path.is_file():
        if path.suffix.lower() not in suffixes:
            kinds = "TIFF, PNG, NPY, JPEG" if images else "TIFF, PNG, NPY"
            raise TinysegError(f"{spec}: unsupported file type (expected {kinds} or a table)")
        check_storable(path.stem, spec)
        return {path.stem: MapRef(path.stem, path)}
    if GLOB_CHARACTERS & set(spec):
        matches = [Path(match) for match in glob.glob(spec)]
        if not matches:
            raise TinysegError(f"{spec}: the pattern matches no file")
        return _by_stem(matches, spec, suffixes)
    raise TinysegError(f"{spec}: no such file or directory")

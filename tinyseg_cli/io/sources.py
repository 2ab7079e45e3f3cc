"""Where label maps come from: a folder, a glob, a manifest table or one file, keyed by sample.

``--truth`` and ``--pred`` of ``score`` take any of these; samples are matched by stem
(file name without suffix) or by the manifest's ``sample_id``.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.rasters import RASTER_SUFFIXES, Roi
from tinyseg_cli.io.tables import is_table_path, read_table, resolve_table_path

ROI_COLUMNS = ("y0", "x0", "y1", "x1")
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class MapRef:
    """One map of one sample: its file and, from a manifest, its region of interest."""

    sample_id: str
    path: Path
    roi: Roi | None = None


def _by_stem(paths: list[Path], source: str) -> dict[str, MapRef]:
    found: dict[str, MapRef] = {}
    for path in sorted(paths):
        if path.suffix.lower() not in RASTER_SUFFIXES or not path.is_file():
            continue
        if path.stem in found:
            raise TinysegError(
                f"{source}: two files for sample {path.stem!r}: {found[path.stem].path.name} "
                f"and {path.name}"
            )
        found[path.stem] = MapRef(path.stem, path)
    if not found:
        raise TinysegError(f"{source}: no TIFF, PNG or NPY files found")
    return found


def _roi(row: dict, source: str, index: int) -> Roi | None:
    values = [row.get(column) for column in ROI_COLUMNS]
    if all(value is None for value in values):
        return None
    if any(value is None for value in values):
        raise TinysegError(f"{source}: row {index}: ROI needs all of y0, x0, y1, x1")
    y0, x0, y1, x1 = (int(value) for value in values)  # type: ignore[arg-type]
    if not (0 <= y0 < y1 and 0 <= x0 < x1):
        raise TinysegError(f"{source}: row {index}: empty or negative ROI ({y0}, {x0}, {y1}, {x1})")
    return (y0, x0, y1, x1)


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
    rows = table.to_pylist()
    if split is not None:
        if "split" not in table.column_names:
            raise TinysegError(f"{source}: --split {split} given but the manifest has no 'split'")
        rows = [row for row in rows if row["split"] == split]
        if not rows:
            raise TinysegError(f"{source}: no rows with split == {split!r}")
    found: dict[str, MapRef] = {}
    for index, row in enumerate(rows):
        sample_id, value = row["sample_id"], row[column]
        if sample_id is None or value is None:
            raise TinysegError(f"{source}: row {index}: empty sample_id or {column}")
        sample_id = str(sample_id)
        if sample_id in found:
            raise TinysegError(f"{source}: sample {sample_id!r} appears twice")
        path = resolve_table_path(str(value), spec)
        found[sample_id] = MapRef(sample_id, path, _roi(row, source, index))
    return found


def resolve_maps(
    spec: str, *, columns: tuple[str, ...] = ("mask",), split: str | None = None
) -> dict[str, MapRef]:
    """Maps named by ``spec`` (folder, glob, manifest table, or one file), keyed by sample id.

    ``columns`` are the manifest columns to read paths from, first present wins.
    """
    path = Path(spec)
    if spec == "-" or (is_table_path(spec) and path.is_file()):
        return manifest_maps(read_table(spec), spec, columns, split)
    if split is not None:
        raise TinysegError(f"{spec}: --split needs a manifest table")
    if path.is_dir():
        return _by_stem(list(path.iterdir()), spec)
    if path.is_file():
        if path.suffix.lower() not in RASTER_SUFFIXES:
            raise TinysegError(
                f"{spec}: unsupported file type (expected TIFF, PNG, NPY or a table)"
            )
        return {path.stem: MapRef(path.stem, path)}
    if GLOB_CHARACTERS & set(spec):
        matches = [Path(match) for match in glob.glob(spec)]
        if not matches:
            raise TinysegError(f"{spec}: the pattern matches no file")
        return _by_stem(matches, spec)
    raise TinysegError(f"{spec}: no such file or directory")

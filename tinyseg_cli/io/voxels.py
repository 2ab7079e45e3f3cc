"""Voxel tables and point maps of ``tinyseg voxelize`` (SPEC §3) read for ``train`` and
``infer``: detected by their columns, read whole or one scene at a time into arrays grouped
by tile, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinyseg_cli.errors import TinysegError, library_reason
from tinyseg_cli.io.tables import table_metadata

VOXELS_NAME, POINTS_NAME = "voxels.parquet", "points.parquet"
KEYS = ("scene", "tile", "vx", "vy", "vz")
NOT_FEATURES = (*KEYS, "label", "n_points", "split")
POINT_COLUMNS = ("scene", "point_index", "voxel_row")


def voxel_table_path(path: str | Path) -> Path | None:
    """The voxel table ``path`` names (the file, or ``voxels.parquet`` in a folder), or None
    when it is not one (a 2D manifest): detected by the key columns scene, tile, vx, vy, vz."""
    p = Path(path)
    if p.is_dir():
        p = p / VOXELS_NAME
        if not p.is_file():
            return None
    if p.suffix.lower() not in (".parquet", ".pq") or not p.is_file():
        return None
    try:
        names = set(pq.read_schema(p).names)
    except (pa.ArrowException, OSError):
        return None
    return p if set(KEYS) <= names else None


def schema_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The ``tinyseg.*`` metadata of a schema, JSON-decoded (classes, voxelize, scenes …)."""
    return table_metadata(schema.empty_table())


def feature_columns(schema: pa.Schema) -> tuple[str, ...]:
    """The feature columns of a voxel table: its floating-point columns besides the keys."""
    return tuple(
        f.name for f in schema if f.name not in NOT_FEATURES and pa.types.is_floating(f.type)
    )


def choose_features(
    path: Path, schema: pa.Schema, wanted: tuple[str, ...] | None
) -> tuple[str, ...]:
    """``wanted`` (checked against the table) or every feature column of the table."""
    present = feature_columns(schema)
    if wanted is None:
        if not present:
            raise TinysegError(f"{path}: the voxel table has no feature columns")
        return present
    unknown = [name for name in wanted if name not in present]
    if unknown:
        raise TinysegError(
            f"{path}: feature {unknown[0]!r} is not a column of the voxel table "
            f"(it has {', '.join(present) or 'none'})"
        )
    return tuple(wanted)


@dataclass
class Tiles:
    """Voxels grouped by (scene, tile): tile ``i`` holds rows ``starts[i]:starts[i+1]``."""

    scenes: list[str]  # per tile
    tile_ids: np.ndarray  # (T,) int64
    starts: np.ndarray  # (T + 1,) int64
    coords: np.ndarray  # (N, 3) int32
    features: np.ndarray  # (N, F) float32, as stored (not normalised)
    labels: np.ndarray | None  # (N,) int64, or None for a table without labels
    rows: np.ndarray  # (N,) int64: each voxel's row in the table (the point map's voxel_row)

    def __len__(self) -> int:
        return int(self.tile_ids.size)

    def span(self, index: int) -> slice:
        return slice(int(self.starts[index]), int(self.starts[index + 1]))

    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)


def scene_groups(path: Path) -> dict[str, list[int]]:
    """The row groups of a voxel table or point map that hold each scene: from the column
    statistics where a group holds one scene (min == max, as voxelize writes them), else
    from the column itself."""
    try:
        file = pq.ParquetFile(path)
        index = file.schema_arrow.get_field_index("scene")
        groups: dict[str, list[int]] = {}
        for group in range(file.num_row_groups):
            stats = file.metadata.row_group(group).column(index).statistics
            if stats is not None and stats.has_min_max and stats.min == stats.max:
                names = [stats.min]
            else:
                column = file.read_row_group(group, columns=["scene"])["scene"]
                names = pc.unique(column).to_pylist()
            for name in names:
                groups.setdefault(str(name), []).append(group)
    except (pa.ArrowException, OSError) as error:
        raise TinysegError(f"{path}: unreadable ({library_reason(error)})") from None
    return groups


def _read_rows(
    path: Path, columns: list[str], scene: str | None, groups: list[int] | None
) -> tuple[pa.Table, np.ndarray]:
    """``columns`` of the whole table, or of ``scene``'s rows within row ``groups``, and
    each row's number in the whole file."""
    file = pq.ParquetFile(path)
    if scene is None or groups is None:
        table = file.read(columns=columns)
        return table, np.arange(table.num_rows, dtype=np.int64)
    sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
    firsts = np.concatenate(([0], np.cumsum(sizes)))
    table = file.read_row_groups(groups, columns=list(dict.fromkeys([*columns, "scene"])))
    rows = np.concatenate(
        [np.arange(firsts[g], firsts[g + 1], dtype=np.int64) for g in groups] or [np.zeros(0, int)]
    )
    mask = pc.equal(table["scene"], scene).to_numpy(zero_copy_only=False)
    return table.filter(pa.array(mask)).select(columns), rows[mask]


# What each key column of the two tables must hold (SPEC §3): voxel indices, tiles, labels
# and row numbers are integers (a float index would be floored silently), scenes text.
INTEGER_COLUMNS = ("tile", "vx", "vy", "vz", "label", "n_points", "point_index", "voxel_row")


def check_column_types(path: Path, schema: pa.Schema, what: str) -> None:
    """A one-line error for a key column of the wrong type (table made by another tool)."""
    for field in schema:
        if field.name in INTEGER_COLUMNS and not pa.types.is_integer(field.type):
            raise TinysegError(
                f"{path}: not a {what}: column {field.name!r} holds {field.type}, expected integers"
            )
        if field.name == "scene" and not (
            pa.types.is_string(field.type)
            or pa.types.is_large_string(field.type)
            or pa.types.is_dictionary(field.type)
        ):
            raise TinysegError(
                f"{path}: not a {what}: column 'scene' holds {field.type}, expected text"
            )


def read_tiles(
    path: Path,
    features: tuple[str, ...],
    split: str | None,
    labels: bool,
    scene: str | None = None,
    groups: list[int] | None = None,
) -> Tiles:
    """The rows of ``split`` (every row for None) with ``features`` and, when asked, labels;
    only ``scene``'s, read from its row ``groups`` (:func:`scene_groups`), when given."""
    columns = [*KEYS, *features, *(("label",) if labels else ())]
    try:
        table, rows = _read_rows(path, [*columns, *(("split",) if split else ())], scene, groups)
    except (pa.ArrowException, OSError) as error:
        raise TinysegError(f"{path}: unreadable voxel table ({library_reason(error)})") from None
    check_column_types(path, table.schema, "voxel table")
    if split is not None:
        mask = pc.equal(table["split"], split).to_numpy(zero_copy_only=False)
        table, rows = table.filter(pa.array(mask)), rows[mask]
    scene_codes = pc.dictionary_encode(table["scene"]).combine_chunks()
    names = scene_codes.dictionary.to_pylist()
    code = scene_codes.indices.to_numpy().astype(np.int64)
    tile = table["tile"].to_numpy().astype(np.int64)
    key = code * (1 << 32) + tile
    order = np.argsort(key, kind="stable")
    key, rows = key[order], rows[order]
    firsts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, int)
    coords = np.stack([table[c].to_numpy()[order] for c in ("vx", "vy", "vz")], 1)
    feats = np.stack([table[c].to_numpy()[order] for c in features], 1).astype(np.float32)
    bad = ~np.isfinite(feats)
    if bad.any():  # would turn every loss and prediction into NaN
        at, column = np.argwhere(bad)[0]
        raise TinysegError(
            f"{path}: row {int(rows[at])}: {features[column]} is {feats[at, column]} "
            "(features must be finite)"
        )
    found = None
    if labels:
        found = table["label"].to_numpy().astype(np.int64)[order]
    return Tiles(
        scenes=[names[int(code_)] for code_ in key[firsts] >> 32],
        tile_ids=key[firsts] & ((1 << 32) - 1),
        starts=np.r_[firsts, key.size].astype(np.int64),
        coords=coords.astype(np.int32),
        features=feats,
        labels=found,
        rows=rows,
    )


def read_point_map(
    path: Path, scene: str | None = None, groups: list[int] | None = None
) -> pa.Table:
    """The point map's scene, point_index and voxel_row columns: of every scene, or of
    ``scene``'s rows within row ``groups`` (:func:`scene_groups`)."""
    if not path.is_file():
        raise TinysegError(
            f"{path}: no point map (voxelize writes {POINTS_NAME} beside {VOXELS_NAME}; "
            "or give --points)"
        )
    try:
        schema = pq.read_schema(path)
        missing = [c for c in POINT_COLUMNS if c not in schema.names]
        if missing:
            raise TinysegError(
                f"{path}: not a point map (no column {missing[0]!r}; voxelize writes one as "
                f"{POINTS_NAME}, with columns {', '.join(POINT_COLUMNS)})"
            )
        check_column_types(path, schema, "point map")
        return _read_rows(path, list(POINT_COLUMNS), scene, groups)[0]
    except (pa.ArrowException, OSError) as error:
        raise TinysegError(f"{path}: unreadable point map ({library_reason(error)})") from None

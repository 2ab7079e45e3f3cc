"""Per-point labels for 3D scoring (SPEC §4.7): LAS/LAZ files (one scene per file, named by its
stem; labels in a dimension) or per-point tables (``scene``, ``point_index`` and a label
column, as ``tinyseg infer`` writes them). Headers and schemas are checked before any point
is read; tables are read one scene at a time."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.las import LasInfo, first_line, read_header, require_dimension
from tinyseg_cli.io.paths import check_storable, visible
from tinyseg_cli.io.sources import GLOB_CHARACTERS
from tinyseg_cli.io.tables import file_metadata, file_schema, is_table_path

LAS_SUFFIXES = frozenset({".las", ".laz"})
POINT_COLUMNS = ("scene", "point_index")
PREDICTIONS_TABLE = "predictions.parquet"  # what `tinyseg infer` writes into OUT_DIR
IGNORE = -100  # the 3D ignore label (SPEC §2)
MISSING = np.int16(-(1 << 15))  # marks a point a table holds no label for


@dataclass(frozen=True)
class SceneRef:
    """Where one side's labels of one scene are: a LAS/LAZ file or a per-point table."""

    scene: str
    dimension: str  # LAS dimension or table column holding the labels
    las: LasInfo | None = None
    table: Path | None = None

    @property
    def source(self) -> str:
        return str(self.las.path if self.las is not None else self.table)


@dataclass(frozen=True)
class PointSource:
    """One side of a 3D score: its scenes and the metadata of its table, if any."""

    spec: str
    scenes: dict[str, SceneRef]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_las(self) -> bool:
        return any(ref.las is not None for ref in self.scenes.values())


def _is_point_table(path: Path) -> bool:
    if not (is_table_path(path) and path.is_file()):
        return False
    try:
        names = file_schema(path).names
    except TinysegError:
        return False
    return all(column in names for column in POINT_COLUMNS)


def _las_files(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        candidates = sorted(entry for entry in path.iterdir() if visible(entry))
    elif GLOB_CHARACTERS & set(spec) and not path.exists():
        candidates = sorted(Path(match) for match in glob.glob(spec))
    else:
        candidates = [path]
    return [p for p in candidates if p.suffix.lower() in LAS_SUFFIXES and p.is_file()]


def is_point_input(spec: str | None) -> bool:
    """Whether ``spec`` names per-point labels: LAS/LAZ files (a file, folder or glob), a
    per-point table, or a folder holding ``predictions.parquet`` of per-point predictions."""
    if not spec or spec == "-":
        return False
    path = Path(spec)
    if path.suffix.lower() in LAS_SUFFIXES:
        return True
    if path.is_dir() and _is_point_table(path / PREDICTIONS_TABLE):
        return True
    return _is_point_table(path) or bool(_las_files(spec))


def open_points(
    spec: str, dimension: str | None, role: str, las_default: str | None = None
) -> PointSource:
    """The scenes of ``spec`` with every header or schema checked.

    ``dimension`` None takes the default of the kind: ``las_default`` or ``classification``
    (truth), ``prediction`` for LAS; ``label`` (truth) or ``prediction``, else ``label``, for
    tables.
    """
    path = Path(spec)
    table = path / PREDICTIONS_TABLE if path.is_dir() else path
    if _is_point_table(table):
        return _open_table(table, dimension, role)
    files = _las_files(spec)
    if not files:
        if path.suffix.lower() in LAS_SUFFIXES:
            raise TinysegError(f"{spec}: no such file")
        raise TinysegError(f"{spec}: no LAS/LAZ file or per-point table (scene, point_index)")
    if dimension is None:
        dimension = (las_default or "classification") if role == "truth" else "prediction"
    scenes: dict[str, SceneRef] = {}
    for file in files:
        info = read_header(file)
        require_dimension(info, dimension, f"the {role} labels", f"; see --{_option(role)}")
        check_storable(file.stem, str(file), "scene names")
        if file.stem in scenes:
            raise TinysegError(
                f"{file}: scene {file.stem!r} (the file stem) is also {scenes[file.stem].source}"
            )
        scenes[file.stem] = SceneRef(file.stem, dimension, las=info)
    return PointSource(spec, scenes)


def _option(role: str) -> str:
    return "truth-dim" if role == "truth" else "pred-dim"


def _open_table(path: Path, column: str | None, role: str) -> PointSource:
    schema = file_schema(path)
    if column is None:
        choices = ("label",) if role == "truth" else ("prediction", "label")
        column = next((name for name in choices if name in schema.names), choices[0])
    if column not in schema.names:
        raise TinysegError(
            f"{path}: no column {column!r} for the {role} labels (columns: "
            f"{', '.join(schema.names)}; choose one with --{_option(role)})"
        )
    for name in ("point_index", column):
        kind = schema.field(name).type
        if kind.id not in _INTEGER_TYPE_IDS:
            raise TinysegError(f"{path}: column {name!r} is {kind}, expected integers")
    scenes = _table_scenes(path)
    if not scenes:
        raise TinysegError(f"{path}: per-point table has no rows")
    refs = {scene: SceneRef(scene, column, table=path) for scene in scenes}
    return PointSource(str(path), refs, file_metadata(path))


def _integer_type_ids() -> frozenset[int]:
    import pyarrow as pa

    types = (pa.int8(), pa.int16(), pa.int32(), pa.int64())
    unsigned = (pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())
    return frozenset(t.id for t in (*types, *unsigned))


_INTEGER_TYPE_IDS = _integer_type_ids()


def _table_scenes(path: Path) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        scenes = pq.read_table(path, columns=["scene"], read_dictionary=["scene"])["scene"]
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise TinysegError(f"{path}: unreadable table ({first_line(error)})") from None
    if scenes.null_count:
        raise TinysegError(f"{path}: column 'scene' has empty values")
    return sorted(
        str(s) for s in pc.unique(scenes.combine_chunks().dictionary_decode()).to_pylist()
    )


def table_labels(ref: SceneRef) -> tuple[np.ndarray, np.ndarray]:
    """(point indices, int16 labels) of one scene of a per-point table; a duplicate point, a
    negative index or a label that is neither a class index nor -100 is an error."""
    import pyarrow.parquet as pq

    columns = ["point_index", ref.dimension]
    try:
        table = pq.read_table(ref.table, columns=columns, filters=[("scene", "==", ref.scene)])
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise TinysegError(f"{ref.table}: unreadable table ({first_line(error)})") from None
    where = f"{ref.table}: scene {ref.scene!r}"
    if table["point_index"].null_count or table[ref.dimension].null_count:
        raise TinysegError(f"{where}: empty point_index or {ref.dimension} values")
    indices = table["point_index"].to_numpy().astype(np.int64, copy=False)
    labels = table[ref.dimension].to_numpy().astype(np.int64, copy=False)
    bad = (labels < 0) & (labels != IGNORE) | (labels >= 1 << 15)
    if bad.any():
        at = int(np.argmax(bad))
        raise TinysegError(
            f"{where}: point {int(indices[at])}: label {int(labels[at])} is not a class index "
            f"(or {IGNORE})"
        )
    if indices.size and int(indices.min()) < 0:
        raise TinysegError(f"{where}: negative point_index {int(indices.min())}")
    return indices, labels.astype(np.int16)


def dense_labels(indices: np.ndarray, labels: np.ndarray, size: int, where: str) -> np.ndarray:
    """Labels by point index over ``size`` points, :data:`MISSING` where none is given."""
    if indices.size and int(indices.max()) >= size:
        at = int(np.argmax(indices >= size))
        raise TinysegError(
            f"{where}: point {int(indices[at])} is beyond the scene's {size} points "
            "(mismatched point counts)"
        )
    dense = np.full(size, MISSING, np.int16)
    dense[indices] = labels
    if np.count_nonzero(dense != MISSING) != indices.size:  # labels are never MISSING
        order = np.sort(indices)
        twice = int(order[np.argmax(order[1:] == order[:-1]) + 1])
        raise TinysegError(f"{where}: point {twice} appears twice")
    return dense


def point_table_metadata(spec: str) -> dict[str, Any]:
    """The ``tinyseg.*`` metadata of the per-point table ``spec`` names (a table, or a folder
    holding ``predictions.parquet``); empty for anything else."""
    path = Path(spec)
    table = path / PREDICTIONS_TABLE if path.is_dir() else path
    return file_metadata(table) if _is_point_table(table) else {}

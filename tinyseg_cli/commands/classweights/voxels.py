"""Class counts of a voxel table for ``classweights`` (SPEC §3, §4.3, §6.1): voxels per scene
and class over the training rows, or points, each voxel weighing its ``n_points``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.tables import integer_column

VOXEL_COLUMNS = frozenset({"scene", "vx", "vy", "vz", "label", "n_points"})
READ_COLUMNS = ("scene", "label", "n_points")
IGNORE = -100  # the 3D ignore label (SPEC §2)
UNITS = ("voxels", "points")


def is_voxel_table(columns: list[str]) -> bool:
    """Whether a table with these columns is a voxel table (``tinyseg voxelize``)."""
    return set(columns) >= VOXEL_COLUMNS


def count_voxels(
    table: pa.Table,
    name: str,
    *,
    unit: str,
    n_classes: int | None,
    ignore_index: int | None = None,
    part: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """(scenes, classes) counts of voxels (``unit`` ``voxels``) or points (``points``).

    Rows of the ``train`` split only when the table has a ``split`` column; labels -100 and
    ``ignore_index`` are left out; ``part`` = (K, N) keeps every N-th scene from K.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    train = _training_rows(table, name)
    scenes, scene_of = np.unique(
        np.asarray(table["scene"].to_pylist(), dtype=object), return_inverse=True
    )
    chosen = np.unique(scene_of[train])[part[0] :: part[1]]
    if not chosen.size:
        raise TinysegError(f"{name}: shard {part[0]}/{part[1]} holds no scene")
    labels = integer_column(table, "label", name)[0]
    keep = train & np.isin(scene_of, chosen) & (labels != IGNORE)
    if ignore_index is not None:
        keep &= labels != ignore_index
    _check_labels(labels, keep, n_classes, name, lambda row: str(scenes[scene_of[row]]))
    size = n_classes if n_classes is not None else int(labels[keep].max(initial=0)) + 1
    sample = np.searchsorted(chosen, scene_of[keep])
    weights = None
    if unit == "points":
        points = integer_column(table, "n_points", name, minimum=1, noun="counts")[0]
        weights = points[keep].astype(np.float64)
    # float64 weights stay exact up to 2**53 points per class
    cells = np.bincount(sample * size + labels[keep], weights, minlength=len(chosen) * size)
    return np.rint(cells).astype(np.int64).reshape(len(chosen), size)


def _training_rows(table: pa.Table, name: str) -> np.ndarray:
    """Which rows train: the ``train`` split when there is a split column (as for manifests),
    else every row."""
    if table.num_rows == 0:
        raise TinysegError(f"{name}: voxel table has no rows")
    for column in READ_COLUMNS:
        if table[column].null_count:
            raise TinysegError(f"{name}: column {column!r} has empty values")
    if "split" not in table.column_names:
        return np.ones(table.num_rows, bool)
    train = pc.fill_null(pc.equal(table["split"], "train"), False).to_numpy(zero_copy_only=False)
    if not train.any():
        raise TinysegError(f"{name}: no voxel has split == 'train'")
    return train


def _check_labels(
    labels: np.ndarray,
    keep: np.ndarray,
    n_classes: int | None,
    name: str,
    scene_of: Callable[[int], str],
) -> None:
    bad = keep & (labels < 0)
    if n_classes is not None:
        bad |= keep & (labels >= n_classes)
    if bad.any():
        row = int(np.argmax(bad))
        expected = f"0..{n_classes - 1}" if n_classes else "a class index"
        raise TinysegError(
            f"{name}: row {row} (scene {scene_of(row)!r}): label {int(labels[row])} is outside "
            f"the class map (expected {expected} or {IGNORE})"
        )

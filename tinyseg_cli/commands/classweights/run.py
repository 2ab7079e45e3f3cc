"""``classweights`` end to end: class pixel counts over the training rows of a manifest (or
from a counts table), then the weights of SPEC §6.2 as a table and a JSON summary (SPEC §4.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.commands.classweights.voxels import READ_COLUMNS, is_voxel_table
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap, binary_class_map, class_map_from_metadata
from tinyseg_cli.io.sources import MapRef, manifest_maps, resolve_maps
from tinyseg_cli.io.tables import (
    file_schema,
    integer_column,
    is_table_path,
    read_columns,
    read_table,
    table_metadata,
)
from tinyseg_cli.metrics.weights import binary_weights, class_weights
from tinyseg_cli.scoring.class_counts import ClassCounts
from tinyseg_cli.scoring.counts import counts_from_table

VOXELS_TABLE = "voxels.parquet"  # what `tinyseg voxelize` writes into OUT_DIR
COUNTS_COLUMNS = frozenset({"sample_id", "class_index", "tp", "fp", "fn", "tn"})
CLASS_COUNTS_COLUMNS = frozenset({"class_index", "pixels"})


@dataclass
class Source:
    """What INPUT holds: masks still to count (``refs``) or counts made before."""

    name: str
    refs: list[MapRef] | None = None
    counts: ClassCounts | None = None
    class_map: ClassMap | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    voxels: pa.Table | None = None  # a voxel table's scene, label, n_points (and split)


def open_input(spec: str) -> Source:
    """Read INPUT: a manifest, a counts table, a class-counts table, a voxel table (or the
    folder ``voxelize`` wrote it to), or a folder/glob/file of masks."""
    if Path(spec).is_dir() and (Path(spec) / VOXELS_TABLE).is_file():
        spec = str(Path(spec) / VOXELS_TABLE)
    name = "<stdin>" if spec == "-" else spec
    if not (spec == "-" or (is_table_path(spec) and Path(spec).is_file())):
        return Source(name, refs=list(resolve_maps(spec).values()))  # folders: every map
    voxels = spec != "-" and is_voxel_table(file_schema(spec).names)
    table = read_columns(spec, [*READ_COLUMNS, "split"]) if voxels else read_table(spec)
    metadata = table_metadata(table)
    class_map = class_map_from_metadata(metadata)
    columns = set(table.column_names)
    if voxels or is_voxel_table(table.column_names):  # a voxel table can come through a pipe
        return Source(name, class_map=class_map, metadata=metadata, voxels=table)
    if columns >= COUNTS_COLUMNS:
        counts = _from_counts_table(table, name)
        return Source(name, counts=counts, class_map=class_map, metadata=metadata)
    if columns >= CLASS_COUNTS_COLUMNS:
        counts, names = _from_class_counts(table, name)
        return Source(name, counts=counts, class_map=class_map or names, metadata=metadata)
    if "mask" in columns:
        if table.num_rows == 0:
            raise TinysegError(f"{name}: manifest has no rows")
        split = "train" if "split" in columns else None  # training rows, else every row
        refs = list(manifest_maps(table, spec, ("mask",), split).values())
        return Source(name, refs=refs, class_map=class_map, metadata=metadata)
    raise TinysegError(
        f"{name}: expected a manifest (sample_id, mask), a counts table (sample_id, "
        f"class_index, tp, fp, fn, tn), class counts (class_index, pixels) or a voxel table "
        f"(scene, vx, vy, vz, label, n_points); found columns "
        f"{', '.join(table.column_names) or 'none'}"
    )


def _from_counts_table(table: pa.Table, name: str) -> ClassCounts:
    """n_c = Σ (TP + FN) over samples: the truth pixels of class c (``score --counts-out``)."""
    runs = counts_from_table(table, name)
    if len(runs) > 1:
        raise TinysegError(
            f"{name}: counts of {len(runs)} runs; classweights needs the counts of one run "
            "(the ground truth is the same in every run: keep one run's rows)"
        )
    counts = next(iter(runs.values()))
    return ClassCounts.from_samples(counts.tp + counts.fn)


def _from_class_counts(table: pa.Table, name: str) -> tuple[ClassCounts, ClassMap | None]:
    """Class totals (a ``classweights`` output); rows of one class add up (shards)."""
    if table.num_rows == 0:
        raise TinysegError(f"{name}: class counts table has no rows")
    indices = integer_column(table, "class_index", name, minimum=0)[0]
    pixels = integer_column(table, "pixels", name, minimum=0, noun="counts")[0]
    size = int(indices.max()) + 1
    totals = np.zeros(size, np.int64)
    np.add.at(totals, indices, pixels)
    samples: tuple[int | None, ...] = (None,) * size
    if "samples" in table.column_names and not table["samples"].null_count:
        present = np.zeros(size, np.int64)
        np.add.at(present, indices, integer_column(table, "samples", name, minimum=0)[0])
        samples = tuple(int(n) for n in present)
    names = None
    if "class_name" in table.column_names:
        names = _names_by_index(indices, table["class_name"].to_pylist(), size, name)
    return ClassCounts(totals, samples, None), names


def _names_by_index(indices: np.ndarray, names: list[Any], size: int, name: str) -> ClassMap:
    found: dict[int, str] = {}
    for index, class_name in zip(indices.tolist(), names, strict=True):
        class_name = str(index) if class_name is None else str(class_name)
        if found.setdefault(index, class_name) != class_name:
            raise TinysegError(
                f"{name}: class {index} is named both {found[index]!r} and {class_name!r}"
            )
    return ClassMap(tuple(found.get(i, str(i)) for i in range(size)))


def fit_class_map(class_map: ClassMap | None, counts: ClassCounts) -> tuple[ClassMap, ClassCounts]:
    """The class map of the counts (numbered when none is known) and counts of its size."""
    if not counts.pixels.any():
        raise TinysegError(
            f"no pixel counted in {_samples_text(counts)} (all ignored or outside the ROIs)"
        )
    if class_map is None:
        if counts.n_classes < 2:
            raise TinysegError(
                "only class 0 has pixels and no class map names more (is the foreground "
                "255, the ignore index? map it with --palette, or pass --classes)"
            )
        return ClassMap.numbered(counts.n_classes), counts
    if counts.n_classes > len(class_map):
        raise TinysegError(
            f"counts hold {counts.n_classes} classes but the class map names {len(class_map)}"
        )
    return class_map, counts.widened(len(class_map))


def absent_classes(counts: ClassCounts, class_map: ClassMap) -> list[str]:
    """Names of the classes without any pixel."""
    return [class_map.name(int(i)) for i in np.flatnonzero(counts.pixels == 0)]


@dataclass(frozen=True)
class WeightsResult:
    """The weights of every output row, with what they were computed from."""

    scheme: str
    class_map: ClassMap  # of the output rows: the class map, or (rest, C) with --binary
    counts: ClassCounts
    weights: np.ndarray
    binary: tuple[int, str] | None = None  # the --binary class: index and name


def compute_weights(
    counts: ClassCounts, class_map: ClassMap, scheme: str, binary: int | None = None
) -> WeightsResult:
    """Weights of SPEC §6.2 from ``counts`` (of ``class_map``'s size, with some pixels)."""
    if binary is None:
        return WeightsResult(scheme, class_map, counts, class_weights(counts.pixels, scheme))
    pair = counts.one_vs_rest(binary)
    alpha_neg, alpha_pos = binary_weights(int(pair.pixels[1]), int(pair.pixels[0]), scheme)
    return WeightsResult(
        scheme,
        binary_class_map(class_map, binary),
        pair,
        np.array([alpha_neg, alpha_pos]),
        (binary, class_map.name(binary)),
    )


def _samples_text(counts: ClassCounts) -> str:
    n = counts.n_samples
    return "the input" if n is None else f"{n} training sample{'s' if n != 1 else ''}"


def weights_table(result: WeightsResult) -> pa.Table:
    """The class counts / weights table of SPEC §3."""
    n_classes = len(result.class_map)
    return pa.table(
        {
            "class_index": pa.array(np.arange(n_classes), pa.int32()),
            "class_name": pa.array(list(result.class_map.names), pa.string()),
            "pixels": pa.array(result.counts.pixels, pa.int64()),
            "samples": pa.array(list(result.counts.samples), pa.int64()),
            "weight": pa.array(result.weights, pa.float64()),
        }
    )


def weights_json(result: WeightsResult) -> dict[str, Any]:
    """The ``--json`` summary: scheme, per-class counts and weights (and the binary class)."""
    summary: dict[str, Any] = {"scheme": result.scheme}
    if result.binary is not None:
        summary["binary"] = {"index": result.binary[0], "name": result.binary[1]}
    summary["classes"] = [
        {
            "index": index,
            "name": name,
            "pixels": int(result.counts.pixels[index]),
            "samples": result.counts.samples[index],
            "weight": float(result.weights[index]),
        }
        for index, name in enumerate(result.class_map.names)
    ]
    return summary

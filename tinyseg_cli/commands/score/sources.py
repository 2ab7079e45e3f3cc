"""Where ``tinyseg score`` gets its counts: 2D map pairs, counts tables, or several runs of
either; and the class map that travels with them (SPEC §4.7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import typer

from tinyseg_cli.cli import console
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata
from tinyseg_cli.io.points import is_point_input
from tinyseg_cli.io.sources import resolve_maps
from tinyseg_cli.io.tables import is_table_path, read_table, table_metadata
from tinyseg_cli.runtime.parallel import shard
from tinyseg_cli.scoring.counts import (
    CountsSet,
    counts_from_matrices,
    counts_from_table,
    merge_counts,
)
from tinyseg_cli.scoring.pairs import (
    CountOptions,
    SampleObjects,
    count_pairs,
    count_pairs_objects,
    pair_maps,
)

UNSCORED_SHOWN = 5  # sample names a warning lists


def count_runs(
    truth: str | None,
    pred: str | None,
    runs: list[tuple[str, str]],
    count_one: Callable[[str | None, str], CountsSet],
) -> tuple[dict[str | None, CountsSet], ClassMap | None]:
    """Counts of the one prediction source, or of each run (a source or a counts table)."""
    if not runs:
        return {None: count_one(truth, pred)}, None  # type: ignore[arg-type]
    by_run: dict[str | None, CountsSet] = {}
    found_map = None
    for name, path in runs:
        if is_table_path(path) and Path(path).is_file() and not is_point_input(path):
            table_runs, found_map, _ = read_counts_tables([path])
            if len(table_runs) != 1:
                raise TinysegError(f"{path}: --run {name} needs a counts table of one run")
            by_run[name] = next(iter(table_runs.values()))
        else:
            by_run[name] = count_one(truth, path)
    return by_run, found_map


def final_class_map(class_map: ClassMap | None, by_run: dict[str | None, CountsSet]) -> ClassMap:
    """The class map of the report: the one known, checked against the counts, or numbered."""
    n_classes = max([len(class_map) if class_map else 0, *(c.n_classes for c in by_run.values())])
    if class_map and n_classes > len(class_map):
        raise TinysegError(
            f"counts hold {n_classes} classes but the class map names {len(class_map)}"
        )
    return class_map or ClassMap.numbered(n_classes)


def read_counts_tables(
    paths: list[str],
) -> tuple[dict[str | None, CountsSet], ClassMap | None, dict[str, Any]]:
    """Counts tables by run, the class map and the metadata (of the first that has them)."""
    gathered: dict[str | None, list[CountsSet]] = {}
    class_map = None
    found: dict[str, Any] = {}
    for path in paths:
        table = read_table(path)
        metadata = table_metadata(table)
        class_map = class_map or class_map_from_metadata(metadata)
        found = found or metadata
        source = "<stdin>" if path == "-" else path
        for run, values in counts_from_table(table, source).items():
            gathered.setdefault(run, []).append(values)
    return (
        {
            run: merge_counts(sets, f"run {run}" if run else "counts")
            for run, sets in gathered.items()
        },
        class_map,
        found,
    )


def warn_unscored(
    by_run: dict[str | None, CountsSet], sample: str, unit: str, ignore: int | None
) -> None:
    """One warning naming the samples without any scored pixel (every truth pixel is the
    ignore label), whose scores are all null."""
    names: dict[str, None] = {}
    for counts in by_run.values():
        if counts.n_classes:
            totals = (counts.tp + counts.fp + counts.fn + counts.tn)[:, 0]
            names.update((counts.sample_ids[i], None) for i in np.flatnonzero(totals == 0))
    if not names:
        return
    shown = ", ".join(list(names)[:UNSCORED_SHOWN]) + (", …" if len(names) > UNSCORED_SHOWN else "")
    label = "the ignore label" if ignore is None else f"the ignore label {ignore}"
    console.warn(
        f"{len(names)} {sample}{'s have' if len(names) > 1 else ' has'} no scored {unit} "
        f"(every truth {unit} is {label}): {shown}"
    )


def count_maps(
    truth: str | None,
    pred: str,
    *,
    options: CountOptions,
    missing: str,
    split: str | None,
    jobs: int,
    part: tuple[int, int],
) -> CountsSet:
    """Counts per sample of one folder (glob, manifest, file) of 2D maps against the truth."""
    if truth is None:
        raise typer.BadParameter("--run with a predictions folder needs --truth")
    single_files = all(Path(p).is_file() and not is_table_path(p) for p in (truth, pred))
    pairing = pair_maps(
        resolve_maps(truth, columns=("mask",), split=split),
        resolve_maps(pred, columns=("prediction", "mask")),
        missing,  # type: ignore[arg-type]
        single_files,
    )
    for side, names in (("prediction", pairing.truth_only), ("ground truth", pairing.pred_only)):
        if names:
            console.warn(f"skipped {len(names)} sample(s) with no {side}: {', '.join(names[:5])}")
    pairs = shard(pairing.pairs, *part)
    if not pairs:
        raise TinysegError(f"shard {part[0]}/{part[1]} holds no sample")
    with console.progress(f"scoring {pred}", len(pairs)) as advance:
        if options.objects is None:
            matrices = count_pairs(pairs, options, jobs=jobs, on_done=advance)
            return counts_from_matrices(matrices, options.n_classes)
        samples = count_pairs_objects(pairs, options, jobs=jobs, on_done=advance)
    counts = counts_from_matrices(
        [(sample.sample_id, sample.matrix) for sample in samples],
        options.n_classes,
        ([sample.objects for sample in samples], options.objects.size_bins),
    )
    assert counts.objects is not None
    counts.objects.records = objects_table(samples)
    return counts


def objects_table(samples: list[SampleObjects]) -> pa.Table:
    """The ``--objects-out`` rows of every sample (SPEC §4.7): one per true and predicted
    object, ``matched_id`` null for a missed or false object."""
    parts = []
    for sample in samples:
        records = sample.records
        n = len(records["object_id"])
        matched = records["matched_id"]
        parts.append(
            pa.table(
                {
                    "sample_id": pa.array([sample.sample_id] * n, pa.string()),
                    "class_index": pa.array(records["class_index"], pa.int32()),
                    "object_id": pa.array(records["object_id"], pa.int64()),
                    "kind": pa.array(records["kind"].tolist(), pa.string()),
                    "area": pa.array(records["area"], pa.int64()),
                    **{k: pa.array(records[k], pa.int64()) for k in ("y0", "x0", "y1", "x1")},
                    "centroid_y": pa.array(records["centroid_y"], pa.float64()),
                    "centroid_x": pa.array(records["centroid_x"], pa.float64()),
                    "matched_id": pa.array(matched, pa.int64(), mask=matched == 0),
                    "iou": pa.array(records["iou"], pa.float64(), mask=matched == 0),
                }
            )
        )
    return pa.concat_tables(parts)

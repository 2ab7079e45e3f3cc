"""``score --objects``: its options, their checks, and the per-object table (SPEC §4.7)."""

from __future__ import annotations

from typing import Annotated, Any

import pyarrow as pa
import typer

from tinyseg_cli.cli.options import parquet_path
from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.tables import write_table
from tinyseg_cli.metrics.objects import (
    DEFAULT_SIZE_BINS,
    ObjectOptions,
    parse_match,
    parse_size_bins,
)
from tinyseg_cli.scoring.counts import CountsSet

Objects = Annotated[
    bool,
    typer.Option(
        "--objects",
        help="Also score defects as objects: connected components per class of truth and "
        "prediction, matched one to one (2D maps).",
    ),
]
Connectivity = Annotated[
    int | None,
    typer.Option(
        "--connectivity",
        help="With --objects: 4 or 8 neighbours join pixels into one object. [default: 8: "
        "thin cracks run diagonally]",
        metavar="4|8",
        show_default=False,
    ),
]
Match = Annotated[
    str | None,
    typer.Option(
        "--match",
        help="With --objects: when a true and a predicted object match: overlap (any shared "
        "pixel), iou:T (IoU >= T) or cover:T (>= T of the true object covered). "
        "[default: overlap]",
        metavar="RULE",
        show_default=False,
    ),
]
SizeBins = Annotated[
    str | None,
    typer.Option(
        "--size-bins",
        help="With --objects: object recall per size of the true object, by these upper "
        "bounds in pixels (4,16 → <= 4, 5-16, > 16). [default: 4,16,64,256]",
        metavar="A,B,…",
        show_default=False,
    ),
]
ObjectsOut = Annotated[
    str | None,
    typer.Option(
        "--objects-out",
        help="With --objects: write one row per true and per predicted object here (area, "
        "box, centroid, matched_id, iou): the list of missed and false defects (.parquet).",
        metavar="PATH",
        callback=parquet_path,
    ),
]


def object_options(
    objects: bool,
    connectivity: int | None,
    match: str | None,
    size_bins: str | None,
    objects_out: str | None,
    *,
    points: bool,
    counts: bool,
) -> ObjectOptions | None:
    """The object options, or None without ``--objects``; usage errors for options that
    need it or cannot apply (3D points, counts tables given to ``--objects-out``)."""
    given = {
        "--connectivity": connectivity,
        "--match": match,
        "--size-bins": size_bins,
        "--objects-out": objects_out,
    }
    if not objects:
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise UsageError(f"{named[0]} needs --objects")
        return None
    if points:
        raise UsageError("--objects scores 2D label maps; it does not apply to 3D points")
    if counts and (connectivity, match, size_bins, objects_out) != (None,) * 4:
        raise UsageError(
            "--counts reduces the object counts the tables hold; --connectivity, --match, "
            "--size-bins and --objects-out apply when maps are scored"
        )
    if connectivity not in (None, 4, 8):
        raise UsageError(f"--connectivity {connectivity}: expected 4 or 8")
    return ObjectOptions(
        connectivity=connectivity or 8,
        rule=parse_match(match or "overlap"),
        size_bins=parse_size_bins(size_bins) if size_bins else DEFAULT_SIZE_BINS,
    )


def check_object_counts(by_run: dict[str | None, CountsSet]) -> None:
    """``--objects`` over counts tables needs their object columns."""
    for run, counts in by_run.items():
        if counts.objects is None:
            where = f"run {run}: " if run else ""
            raise TinysegError(
                f"{where}the counts hold no object counts (count them with 'tinyseg score "
                "--objects … --counts-out')"
            )


def options_metadata(options: ObjectOptions) -> dict[str, Any]:
    """How objects were found and matched, recorded with the tables."""
    return {
        "objects": {
            "connectivity": options.connectivity,
            "match": str(options.rule),
            "size_bins": list(options.size_bins),
        }
    }


def write_objects_table(
    by_run: dict[str | None, CountsSet], path: str, metadata: dict[str, Any]
) -> None:
    """The per-object rows of every run (a ``run`` column when there are runs)."""
    tables = []
    for run, counts in by_run.items():
        records = counts.objects.records if counts.objects is not None else None
        if records is None:
            continue  # a run given as a counts table has no objects to list
        if run is not None:
            records = records.add_column(0, "run", pa.array([run] * records.num_rows, pa.string()))
        tables.append(records)
    if not tables:
        raise TinysegError("--objects-out: no run was scored from maps, so no object to list")
    write_table(pa.concat_tables(tables, promote_options="default"), path, metadata)

"""``tinyseg voxelize``: LAS/LAZ point clouds -> sparse voxel table + point map (SPEC §4.4)."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    Classes,
    Force,
    Json,
    Quiet,
    Shard,
    Verbose,
    output_dir,
    parse_shard,
    parsed,
)
from tinyseg_cli.commands.voxelize import run as steps
from tinyseg_cli.commands.voxelize.reader import parse_features, read_scene_splits
from tinyseg_cli.commands.voxelize.run import (
    POINTS,
    REGION_SIDES,
    VOXELS,
    VoxelizeOptions,
    VoxelizeSummary,
)
from tinyseg_cli.io.atomic import check_output_dir, check_outputs
from tinyseg_cli.io.classmap import parse_class_map
from tinyseg_cli.io.label_map import parse_label_map
from tinyseg_cli.io.las_meta import parse_unit
from tinyseg_cli.io.provenance import provenance

EXAMPLES = """\
Examples:

  tinyseg voxelize scan.laz --voxel 0.5 --tile 100 --region north:0.35 -o vox

  tinyseg voxelize a.las b.las --tile 100 --stride 50 --label-rule rare-first --split train -o train

  tinyseg voxelize scan.laz --label-map 2:ground,5:vegetation,6:building --json -o v | jq .classes
"""


class LabelRule(StrEnum):
    majority = "majority"
    rare_first = "rare-first"


class SplitName(StrEnum):
    train = "train"
    val = "val"
    test = "test"


def register(app: typer.Typer) -> None:
    app.command(
        "voxelize",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="LAS/LAZ point clouds to sparse voxels (voxel table + point map).",
    )(voxelize)


def voxelize(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="LAS or LAZ files; each is one scene, named by its file stem.",
            metavar="LAS...",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        output_dir(
            "Output folder: voxels.parquet (one row per occupied voxel of each tile) and "
            "points.parquet (one row per point and tile that holds it).",
        ),
    ],
    voxel: Annotated[
        float,
        typer.Option(
            "--voxel",
            help="Voxel side in the files' units (metres): voxel = floor((p − tile origin) / "
            "side). The default, 0.02, is the urban study's (dense photogrammetric scans); "
            "airborne LiDAR at a few points per m² wants 0.25–1.",
            metavar="SIDE",
        ),
    ] = 0.02,
    tile: Annotated[
        float,
        typer.Option(
            "--tile",
            help="Side of the square XY tiles (the STPLS3D baselines use 50 m).",
            metavar="SIDE",
        ),
    ] = 50.0,
    units: Annotated[
        str | None,
        typer.Option(
            "--units",
            help="Horizontal unit of files whose CRS names none: m, ft, us-ft or metres per "
            "unit. Sizes are in the files' units; a unit other than the metre is named in a "
            "warning with the sizes in metres.",
            metavar="UNIT",
        ),
    ] = None,
    stride: Annotated[
        float | None,
        typer.Option(
            "--stride",
            help="Step between tile origins; below --tile, tiles overlap (training) and a "
            "point belongs to every tile covering it. Default: --tile (evaluation).",
            metavar="STEP",
        ),
    ] = None,
    min_points: Annotated[
        int,
        typer.Option(
            "--min-points",
            help="Tiles with fewer points are dropped (default 1 keeps every point).",
            min=1,
            metavar="N",
        ),
    ] = 1,
    features: Annotated[
        str | None,
        typer.Option(
            "--features",
            help="Feature columns, comma-separated: xyz (offsets from the tile origin), rgb, "
            "intensity, or single columns (x, red, …). Default: every one all inputs have.",
            metavar="LIST",
        ),
    ] = None,
    label_dim: Annotated[
        str,
        typer.Option("--label-dim", help="Dimension holding the labels.", metavar="NAME"),
    ] = "classification",
    label_map: Annotated[
        str | None,
        typer.Option(
            "--label-map",
            help="Source code -> class: 'CODE:INDEX,…', 'CODE:NAME,…' (indices in the order "
            "of --classes, else of first mention) or a JSON object of either; unlisted codes "
            "become -100 (ignored). Default: the codes are the labels.",
            metavar="MAP|FILE",
        ),
    ] = None,
    classes: Classes = None,
    label_rule: Annotated[
        LabelRule,
        typer.Option(
            "--label-rule",
            help="A voxel's label: majority of its points (ties: the rarer class), or "
            "rare-first: the rarest class present, rarity from this call's class counts. "
            "Points labelled -100 vote only in voxels that hold nothing else.",
        ),
    ] = LabelRule.majority,
    split: Annotated[
        SplitName | None,
        typer.Option("--split", help="Write a 'split' column with this value on every voxel."),
    ] = None,
    splits: Annotated[
        str | None,
        typer.Option(
            "--splits",
            help="A table with columns scene, split (train/val/test): each scene's split.",
            metavar="TABLE",
        ),
    ] = None,
    val_every: Annotated[
        int | None,
        typer.Option(
            "--val-every",
            help="Hold out whole tiles: tiles whose id is a multiple of K validate, the others "
            "train (a split column; tiles must not overlap). For a single scan, where splits "
            "by scene are impossible.",
            min=2,
            metavar="K",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="Hold out one side of each scan: 'east:0.35' validates the east 35 % of its "
            "tile columns (west, east, south, north), the rest trains (a split column; tiles "
            "must not overlap). For a single survey: a scene-like split without cutting files.",
            metavar="SIDE:SHARE",
        ),
    ] = None,
    chunk_size: Annotated[
        int,
        typer.Option(
            "--chunk-size",
            help="Points read at a time; memory grows with it, not with the file size.",
            min=1,
            metavar="N",
        ),
    ] = 250_000,
    shard_: Shard = None,
    json_: Json = False,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Voxelize LAS/LAZ point clouds into a voxel table and a point map.

    Each file is cut into square XY tiles from its header's minimum corner; each tile is
    quantised on its own (x, y from the tile origin, z from the scene's minimum) into one row
    per occupied voxel: mean features, n_points and a label. points.parquet maps every point
    back (voxel_row = row of voxels.parquet in the same folder); with overlapping tiles a point
    has one row per tile. Files are read in chunks and spilled per tile to a temporary folder
    inside OUT_DIR (50 bytes per point and tile with all 7 features), so memory does not grow
    with the file size. A per-class report says how many points end up in a voxel of their own
    class. --shard K/N takes every N-th file, or every N-th tile of each file when there are
    fewer than N files; each shard writes its own OUT_DIR. Without --split, --splits or
    --val-every there is no split column, and 'tinyseg train' trains on every tile.
    --val-every K splits one scan by tile: tiles whose id (row-major over the scan's tile
    grid) is a multiple of K validate, the others train; --region north:0.35 holds out the
    northern 35 % of its tile rows instead, a scene-like split of one survey ('tinyseg
    voxelize scan.laz --region east:0.3 --voxel 1 -o vox', then 'infer --split val').

    Labels: without --label-map (or --classes) the classification codes present become the
    classes, compacted in code order and named by the ASPRS LAS 1.4 standard (2 ground, 6
    building, 9 water, 17 bridge_deck, …; others class_<code>); 0 and 1 (never classified,
    unclassified) are ignored, and 'infer --las' writes the input's codes back. A
    --label-map that keeps no point is refused, naming the codes the input holds. Sizes are
    in the files' units: a CRS in feet is named in a warning with the sizes in metres
    (--units states the unit of a file without a CRS).
    """
    console.configure(verbose, quiet)
    part = parse_shard(shard_)
    _check_usage(voxel, tile, stride, split, splits)
    held_out = _held_out_option(val_every, region, tile, stride, split, splits)
    class_map = parse_class_map(classes) if classes else None
    options = VoxelizeOptions(
        voxel=voxel,
        tile=tile,
        stride=stride,
        min_points=min_points,
        features=parse_features(features) if features is not None else None,
        label_dim=label_dim,
        label_map=parse_label_map(label_map, class_map) if label_map else None,
        class_map=class_map,
        label_rule=label_rule.value,
        chunk_size=chunk_size,
        shard=part,
        split=split.value if split is not None else None,
        splits=read_scene_splits(splits, tuple(SplitName)) if splits is not None else None,
        val_every=val_every,
        region=held_out,
        units=parsed(units, parse_unit, "--units"),
    )
    check_output_dir(output)
    check_outputs(
        {"-o": [output / VOXELS, output / POINTS]},
        force,
        {"LAS": list(inputs), "--splits": splits, "--label-map": label_map},
    )
    metadata = {"provenance": provenance(list(inputs), console.STATE.argv)}
    summary = steps.voxelize(
        list(inputs), output, options, metadata, warn=console.warn, progress=console.progress
    )
    if json_:
        typer.echo(json.dumps(summary_json(summary, output), indent=2))
    if not console.STATE.quiet:
        _print_summary(summary, output, options)


def _held_out_option(
    val_every: int | None,
    region: str | None,
    tile: float,
    stride: float | None,
    split: object,
    splits: str | None,
) -> tuple[str, float] | None:
    """--val-every and --region hold out whole tiles: alone (not together, nor with
    --split/--splits) and without overlap, else a held-out tile would share points with a
    training one. Returns the parsed --region."""
    if val_every is None and region is None:
        return None
    hint = "--val-every" if val_every is not None else "--region"
    if val_every is not None and region is not None:
        raise typer.BadParameter("give --val-every or --region, not both", param_hint=hint)
    if split is not None or splits is not None:
        raise typer.BadParameter(f"give {hint} or --split/--splits, not both", param_hint=hint)
    if stride is not None and stride < tile:
        raise typer.BadParameter(
            f"needs tiles that do not overlap (--stride {stride:g} < --tile {tile:g}): a "
            "held-out tile would share points with a training tile",
            param_hint=hint,
        )
    if region is None:
        return None
    side, _, share = region.partition(":")
    try:
        fraction = float(share)
    except ValueError:
        fraction = math.nan
    if side not in REGION_SIDES or not 0 < fraction < 1:
        raise typer.BadParameter(
            f"{region!r}: expected SIDE:SHARE with SIDE one of {', '.join(REGION_SIDES)} and "
            "0 < SHARE < 1",
            param_hint="--region",
        )
    return side, fraction


def _check_usage(
    voxel: float, tile: float, stride: float | None, split: object, splits: str | None
) -> None:
    """Usage errors (exit 2) before any input is read."""
    for hint, value in (("--voxel", voxel), ("--tile", tile), ("--stride", stride)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise typer.BadParameter(f"{value:g} is not a finite length > 0", param_hint=hint)
    if voxel > tile:
        raise typer.BadParameter(
            f"{voxel:g} > --tile {tile:g}: a tile would be smaller than one voxel",
            param_hint="--voxel",
        )
    if stride is not None and stride > tile:
        raise typer.BadParameter(
            f"{stride:g} > --tile {tile:g} would leave gaps between tiles", param_hint="--stride"
        )
    if split is not None and splits is not None:
        raise typer.BadParameter("give --split or --splits, not both", param_hint="--splits")


def summary_json(summary: VoxelizeSummary, output: Path) -> dict[str, Any]:
    """The ``--json`` summary: outputs, counts and the per-class survival."""
    return {
        "voxels_table": str(output / VOXELS),
        "points_table": str(output / POINTS),
        "scenes": summary.scenes,
        "points": summary.points,
        "features": list(summary.features),
        "tiles": summary.tiles,
        "dropped_tiles": summary.dropped_tiles,
        "voxels": summary.voxels,
        "point_rows": summary.point_rows,
        "shard_by": summary.shard_by,
        "parameters": summary.metadata["voxelize"],
        "classes": [
            {
                "label": row.label,
                "code": row.code,
                "name": row.name,
                "points": row.points,
                "voxels": row.voxels,
                "point_tiles": row.members,
                "kept": row.kept,
                "share_kept": row.share_kept,
            }
            for row in summary.classes
        ],
    }


def _print_summary(summary: VoxelizeSummary, output: Path, options: VoxelizeOptions) -> None:
    table = Table(title_justify="left", caption_justify="left")
    codes = any(row.code != row.label for row in summary.classes)  # labels mapped from codes
    for header in ("label", *(("code",) if codes else ()), "class", "points", "voxels", "kept"):
        table.add_column(header, justify="left" if header == "class" else "right")
    for row in summary.classes:
        share = row.share_kept
        table.add_row(
            str(row.label),
            *((str(row.code),) if codes else ()),
            console.safe(row.name),
            f"{row.points:,}",
            f"{row.voxels:,}",
            "—" if share is None else f"{100 * share:.2f} %",
        )
    table.title = (
        f"{summary.points:,} points of {len(summary.scenes)} scene(s) -> {summary.voxels:,} "
        f"voxels in {summary.tiles} tile(s) ({options.label_rule} labels)"
    )
    table.caption = (
        "kept: share of the class's points (per tile holding them) that lie in a voxel "
        "labelled with their class"
    )
    console.stderr.print(table)
    if summary.dropped_tiles:
        console.stderr.print(
            f"{summary.dropped_tiles} tile(s) with fewer than {options.min_points} points dropped"
        )
    if (
        options.split is None
        and options.splits is None
        and options.val_every is None
        and (options.region is None)
    ):
        console.stderr.print(
            "note: no --split/--splits, so no split column: 'tinyseg train' will train on "
            "every tile and validate on none"
        )
    console.stderr.print(
        f"wrote {console.safe(output / VOXELS)} and {console.safe(output / POINTS)}"
    )

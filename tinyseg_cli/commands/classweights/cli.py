"""``tinyseg classweights``: class pixel counts of the training rows and their weights
(SPEC §4.3, §6)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    Classes,
    Force,
    Jobs,
    Json,
    Output,
    Palette,
    Quiet,
    Shard,
    Verbose,
    parse_shard,
    single_stdout,
)
from tinyseg_cli.commands.classweights.run import (
    Source,
    WeightsResult,
    absent_classes,
    compute_weights,
    fit_class_map,
    open_input,
    weights_json,
    weights_table,
)
from tinyseg_cli.commands.classweights.voxels import count_voxels
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import check_outputs
from tinyseg_cli.io.classmap import ClassMap, parse_class_map
from tinyseg_cli.io.palette import load_palette
from tinyseg_cli.io.provenance import provenance
from tinyseg_cli.io.tables import write_table
from tinyseg_cli.runtime.parallel import default_jobs, shard
from tinyseg_cli.scoring.class_counts import ClassCounts, count_masks
from tinyseg_cli.scoring.pairs import CountOptions

EXAMPLES = """\
Examples:

  tinyseg classweights masks --scheme iscf -o weights.parquet

  tinyseg classweights masks --classes bg,crack --scheme icf --binary crack

  tinyseg classweights masks --scheme iscf --json | jq '.classes[].weight'
"""


class Count(StrEnum):
    pixels = "pixels"
    voxels = "voxels"
    points = "points"


class Scheme(StrEnum):
    icf = "icf"
    iscf = "iscf"
    max_ratio = "max-ratio"
    uniform = "uniform"


def register(app: typer.Typer) -> None:
    app.command(
        "classweights",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Pixels per class over the training rows, and class weights.",
    )(classweights)


def classweights(
    input_: Annotated[
        str,
        typer.Argument(
            help="A manifest (training rows: split == 'train', or every row without a split "
            "column), a counts table of 'tinyseg score --counts-out', a class counts table "
            "(class_index, pixels; rows of one class add up), a voxel table of 'tinyseg "
            "voxelize' (or its OUT_DIR; training voxels as for manifests), or a folder or glob "
            "of masks. '-' reads a table from stdin.",
            metavar="INPUT",
            show_default=False,
        ),
    ],
    scheme: Annotated[
        Scheme,
        typer.Option(
            "--scheme",
            help="icf: alpha_c = C·(1/n_c)/Σ_k(1/n_k); iscf: the same with 1/√n_c (both sum "
            "to C); max-ratio: max_k n_k / n_c; uniform: 1.",
            show_default=False,
        ),
    ],
    binary: Annotated[
        str | None,
        typer.Option(
            "--binary",
            help="One-vs-rest weights of class C (name or index), two rows: rest, C. "
            "alpha_C = f_C/(f_C + f_rest), alpha_rest = 1 - alpha_C with the scheme's f "
            "(uniform: 0.5, 0.5); max-ratio keeps the plain ratios (larger side 1, the other "
            "n_larger/n_smaller, as a BCE pos_weight).",
            metavar="C",
        ),
    ] = None,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing",
            help="A class without pixels gets weight 0 (with a warning) and is left out of "
            "the normalisation (C counts the classes with pixels), instead of an error.",
        ),
    ] = False,
    count: Annotated[
        Count | None,
        typer.Option(
            "--count",
            help="What n_c counts: pixels (masks and counts tables); for a voxel table voxels "
            "(one per row) or points (each voxel weighs its n_points, the points it holds). "
            "Default: pixels, or voxels for a voxel table.",
            show_default=False,
        ),
    ] = None,
    classes: Classes = None,
    palette: Palette = None,
    ignore_index: Annotated[
        int | None,
        typer.Option(
            "--ignore-index",
            help="Label left out of the counts. Default: 255 for masks; in a voxel table -100 "
            "is always left out, and this label too when given.",
            metavar="INT",
            show_default=False,
        ),
    ] = None,
    output: Output = None,
    json_: Json = False,
    jobs: Jobs = 0,
    shard_: Shard = None,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Count the pixels of each class over the training rows and write class weights.

    Pixels are counted inside each row's ROI (y0, x0, y1, x1), the ignore label left out,
    in parallel over the masks. INPUT can also be the counts of 'tinyseg score
    --counts-out' through a pipe: 'tinyseg score --truth t --pred p --counts-out - |
    tinyseg classweights - --scheme icf' (n_c is then the truth pixels, TP + FN). With
    --shard K/N only every N-th mask is counted, so the table holds that shard's counts
    and weights; concatenated shard tables are class counts that add up, and classweights
    reads them back to weigh the whole.

    A voxel table of 'tinyseg voxelize' (or its OUT_DIR) counts voxels per class over the
    training scenes (split == 'train' when it has a split column), label -100 left out, or
    with --count points the points they hold (each voxel weighs its n_points); --shard takes
    every N-th scene. The output keeps the column name 'pixels' for either count (so tables
    of both kinds read back alike) and records the unit as 'count' in its metadata and JSON.
    Example: 'tinyseg classweights vox/ --scheme max-ratio --count points -o weights.parquet'.
    """
    console.configure(verbose, quiet)
    part = parse_shard(shard_)
    single_stdout(output=output, json=json_)
    check_outputs(
        {"-o": output}, force, {"INPUT": input_, "--classes": classes, "--palette": palette}
    )
    class_map = parse_class_map(classes) if classes else None
    source = open_input(input_)
    class_map = class_map or source.class_map
    unit = _unit(count, source)
    if source.voxels is not None:
        ignore_index = -100 if ignore_index is None else ignore_index  # -100: always left out
        per_scene = count_voxels(
            source.voxels,
            source.name,
            unit=unit,
            n_classes=len(class_map) if class_map else None,
            ignore_index=ignore_index,
            part=part,
        )
        counts = ClassCounts.from_samples(per_scene)
    elif source.refs is not None:
        ignore_index = 255 if ignore_index is None else ignore_index
        options = CountOptions(
            n_classes=len(class_map) if class_map else None,
            ignore_index=ignore_index,
            palette=load_palette(palette) if palette else None,
        )
        counts = _count(source, options, jobs or default_jobs(), part)
    else:
        if part != (0, 1):
            raise typer.BadParameter(
                "--shard splits masks; INPUT holds counts", param_hint="--shard"
            )
        counts = source.counts  # type: ignore[assignment]
    class_map, counts = fit_class_map(class_map, counts)
    index = _binary_index(binary, class_map)
    result = compute_weights(counts, class_map, scheme.value, index)
    _check_absent(result, allow_missing, unit)
    metadata = _metadata(result, class_map, source, input_, part, ignore_index)
    metadata["count"] = unit
    if output is not None:
        write_table(weights_table(result), output, metadata)
    if json_:
        typer.echo(json.dumps({**weights_json(result), "count": unit}, indent=2))
    if not console.STATE.quiet:
        _print_summary(result, unit)


def _unit(count: Count | None, source: Source) -> str:
    """What the counts count; a unit the input cannot give is a usage error."""
    if source.voxels is not None:
        if count == Count.pixels:
            raise typer.BadParameter(
                "a voxel table counts voxels or points, not pixels", param_hint="--count"
            )
        return (count or Count.voxels).value
    if count not in (None, Count.pixels):
        raise typer.BadParameter(
            f"{count.value} need a voxel table as INPUT",
            param_hint="--count",  # type: ignore[union-attr]
        )
    if source.refs is None:  # counts made before keep their own unit
        return str(source.metadata.get("count", Count.pixels.value))
    return Count.pixels.value


def _metadata(
    result: WeightsResult,
    class_map: ClassMap,
    source: Source,
    input_: str,
    part: tuple[int, int],
    ignore_index: int | None,
) -> dict[str, object]:
    """Schema metadata of the weights table: how the weights were made, and from what."""
    if source.refs is None and source.voxels is None:  # counted before: keep their record
        ignore_index = source.metadata.get("ignore_index")
    binary = None
    if result.binary is not None:
        binary = {"index": result.binary[0], "name": result.binary[1]}
    return {
        "provenance": provenance([input_], console.STATE.argv),
        "classes": result.class_map.to_metadata(),
        "scheme": result.scheme,
        "binary": binary,
        "source_classes": None if binary is None else class_map.to_metadata(),
        "ignore_index": ignore_index,
        "shard": None if part == (0, 1) else f"{part[0]}/{part[1]}",
    }


def _count(source: Source, options: CountOptions, jobs: int, part: tuple[int, int]) -> ClassCounts:
    refs = shard(source.refs or [], *part)
    if not refs:
        raise TinysegError(f"{source.name}: shard {part[0]}/{part[1]} holds no sample")
    with console.progress(f"counting {source.name}", len(refs)) as advance:
        return count_masks(refs, options, jobs, on_done=advance)


def _binary_index(binary: str | None, class_map: ClassMap) -> int | None:
    if binary is None:
        return None
    try:
        return class_map.index(binary)
    except TinysegError as error:
        raise typer.BadParameter(str(error), param_hint="--binary") from None


def _check_absent(result: WeightsResult, allow_missing: bool, unit: str) -> None:
    """A class without pixels: an error, or with --allow-missing a warning (weight 0)."""
    names = absent_classes(result.counts, result.class_map)
    if not names:
        return
    listed = ", ".join(repr(name) for name in names)
    which = f"class {listed} has" if len(names) == 1 else f"classes {listed} have"
    where = "the training rows" if result.counts.n_samples is not None else "the input"
    if not allow_missing:
        raise TinysegError(
            f"{which} no {unit} in {where} (pass --allow-missing to give it weight 0)"
        )
    console.warn(f"{which} no {unit} in {where}: weight 0")


def _print_summary(result: WeightsResult, unit: str) -> None:
    counts = result.counts
    total = int(counts.pixels.sum())
    table = Table(title_justify="left", caption_justify="left")
    holders = "samples" if unit == "pixels" else "scenes"
    for header in ("index", "class", unit, "share", holders, "weight"):
        table.add_column(header, justify="left" if header == "class" else "right")
    for index, name in enumerate(result.class_map.names):
        pixels = int(counts.pixels[index])
        samples = counts.samples[index]
        table.add_row(
            str(index),
            console.safe(name),
            f"{pixels:,}",
            f"{100 * pixels / total:.3f} %",
            "—" if samples is None else str(samples),
            f"{result.weights[index]:.4f}",
        )
    over = "" if counts.n_samples is None else f" over {counts.n_samples} {holders[:-1]}(s)"
    binary = "" if result.binary is None else f", {console.safe(result.binary[1])} vs rest"
    table.title = f"{result.scheme} weights{binary}{over}"
    present = counts.pixels[counts.pixels > 0]
    table.caption = f"largest : smallest class = {present.max() / present.min():,.1f} : 1"
    console.stderr.print(table)

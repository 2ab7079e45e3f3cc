"""``tinyseg infer``: full-region and tiled 2D inference, one TIFF per image; 3D inference of
a voxel table, one prediction per original point (SPEC §4.6)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    FINITE,
    Device,
    Force,
    Json,
    Quiet,
    Shard,
    Verbose,
    output_dir,
    parse_shard,
)
from tinyseg_cli.io.atomic import check_output_dir, check_outputs, output_folder

if TYPE_CHECKING:  # torch-heavy modules load when the command runs, not with every --help
    from tinyseg_cli.commands.infer.run import InferJob, InferResult

EXAMPLES = """\
Examples:

  tinyseg infer --checkpoint model.pt images -o out --probs

  tinyseg infer --checkpoint model.pt images/a.png images/b.png -o out --json

  tinyseg infer -c model.pt images -o big --max-pixels 1000000 --tile 512
"""

DEFAULT_MAX_PIXELS = 4096 * 4096  # the library's defaults, repeated: no torch import for --help
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 64
TILING = "Tiling"
SPARSE = "3D (voxel tables)"


class Blend(StrEnum):
    linear = "linear"
    gaussian = "gaussian"


def register(app: typer.Typer) -> None:
    """Add ``infer`` to the ``tinyseg`` group."""
    app.command(
        "infer",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Predict label maps of images, or labels of point clouds, with a checkpoint.",
    )(infer)


def infer(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Images: a manifest (column 'image', ROI columns y0, x0, y1, x1 honoured; "
            "with --split), a folder, a glob, image files (TIFF, PNG, NPY), or '-': a manifest "
            "table or image paths, one per line, on stdin. Or one voxel table of 'tinyseg "
            "voxelize' (or its folder) for a 3D checkpoint.",
            metavar="INPUT...",
            show_default=False,
        ),
    ],
    checkpoints: Annotated[
        list[Path],
        typer.Option(
            "--checkpoint",
            "-c",
            help="A checkpoint of 'tinyseg train'. Repeated: binary one-vs-rest models fused "
            "into one label map (per pixel the class of the highest probability at or above "
            "its model's threshold, else background 0; labels are the classes' source indices).",
            metavar="CKPT",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        output_dir(
            "Output folder: <sample_id>.tif per image (uint8 labels, uint16 beyond 255 "
            "classes; the size of the image or ROI), probs/<sample_id>.tif with --probs, and "
            "predictions.parquet listing them.",
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Only the manifest (voxel table) rows of this split; 3D: only the points of "
            "its tiles get rows (the rest belong to other splits).",
            metavar="NAME",
        ),
    ] = None,
    probs: Annotated[
        bool,
        typer.Option(
            "--probs",
            help="Also write float16 class probabilities C×H×W as probs/<sample_id>.tif "
            "(binary model: 1 − p, p; fusion: each model's p at its class, 1 − max p at 0).",
        ),
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Binary models: a pixel is the class where its probability is >= this. "
            "[default: the checkpoint's own, else 0.5]",
            min=0.0,
            max=1.0,
            callback=FINITE,
            show_default=False,
        ),
    ] = None,
    max_pixels: Annotated[
        int,
        typer.Option(
            "--max-pixels",
            help="Images up to this many pixels are predicted in one pass (padded to the "
            "network stride); larger ones in tiles.",
            min=1,
            rich_help_panel=TILING,
        ),
    ] = DEFAULT_MAX_PIXELS,
    tile: Annotated[
        int,
        typer.Option("--tile", help="Largest tile side, in pixels.", min=1, rich_help_panel=TILING),
    ] = DEFAULT_TILE,
    overlap: Annotated[
        int,
        typer.Option(
            "--overlap",
            help="Smallest overlap of neighbouring tiles, in pixels.",
            min=0,
            rich_help_panel=TILING,
        ),
    ] = DEFAULT_OVERLAP,
    blend: Annotated[
        Blend,
        typer.Option(
            "--blend",
            help="Weights of overlapping tiles' logits: linear (a ramp over the overlap) or "
            "gaussian (σ = tile/8).",
            rich_help_panel=TILING,
        ),
    ] = Blend.linear,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            help="Tiles per forward pass (3D: voxel tiles; default 1, 3D 4).",
            min=1,
            rich_help_panel=TILING,
        ),
    ] = 1,
    points: Annotated[
        Path | None,
        typer.Option(
            "--points",
            help="The voxel table's point map [default: points.parquet beside it].",
            metavar="PATH",
            rich_help_panel=SPARSE,
            show_default=False,
        ),
    ] = None,
    las: Annotated[
        bool,
        typer.Option(
            "--las",
            help="Also write OUT_DIR/<scene>.las (.laz like the source): the source with an "
            "extra dimension 'prediction' in the input's own label codes (inverse of "
            "voxelize --label-map; a class without a code → 0).",
            rich_help_panel=SPARSE,
        ),
    ] = False,
    fill: Annotated[
        str | None,
        typer.Option(
            "--fill",
            help="Class (name or index) of points in no kept tile (voxelize --min-points "
            "dropped their tiles); without it such points are an error.",
            metavar="CLASS",
            rich_help_panel=SPARSE,
        ),
    ] = None,
    device: Device = "auto",
    shard_: Shard = None,
    json_: Json = False,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Predict a label map for each image with a checkpoint of 'tinyseg train'.

    An image (or its ROI) up to --max-pixels goes through the network in one pass, padded to
    the network stride and cropped back: no patch seams. A larger one is predicted in
    overlapping tiles whose logits are blended; finished rows of tiles go to disk as they
    come, so memory does not grow with the image. Models trained with --resize see the image
    resized to their size, and their prediction is resized back (labels nearest,
    probabilities bilinear).

    An interrupted run resumes: rerun the same command. Finished images are kept (each TIFF
    records the checkpoint, image and options it was made from), a tiled image continues at
    its first unfinished row of tiles, and a half-written file is never left under its name.
    With --shard K/N the table is predictions-K-of-N.parquet; concatenate the shards' tables.
    Score the output with 'tinyseg score --truth MASKS --pred OUT_DIR' (or --pred
    OUT_DIR/predictions.parquet).

    3D: a voxel table and a checkpoint of the sparse U-Net give OUT_DIR/predictions.parquet,
    one row per original point (scene, point_index, prediction; prob_<class> with --probs):
    each point's softmax is the mean over its voxels in every tile that holds it. Scenes
    are predicted one at a time: memory holds one scene's voxels and points, and --las
    copies are written chunk by chunk.
    """
    console.configure(verbose, quiet)
    check_output_dir(output)
    from tinyseg_cli.io.voxels import voxel_table_path

    table = voxel_table_path(inputs[0]) if len(inputs) == 1 else None
    if table is not None:
        if shard_ is not None:  # one table of voxelize --shard K/N is already one shard
            raise typer.BadParameter(
                "not for voxel tables: shard the input with 'voxelize --shard K/N' and infer "
                "each shard's table",
                param_hint="--shard",
            )
        options = VoxelOptions(split, points, probs, las, fill, batch, force, json_)
        _infer_voxels(table, checkpoints, output, device, options)
        return
    part = parse_shard(shard_)
    if overlap >= tile:
        raise typer.BadParameter(
            f"--overlap {overlap} must be smaller than --tile {tile}", param_hint="--overlap"
        )
    from tinyseg_cli.commands.infer import run as steps
    from tinyseg_cli.inference.predict import TileOptions
    from tinyseg_cli.runtime.device import resolve_device

    options = steps.InferOptions(
        TileOptions(max_pixels, tile, overlap, blend.value, batch), threshold, probs, force
    )
    ensemble = steps.load_ensemble(checkpoints, resolve_device(device), threshold)
    refs = steps.gather_inputs(inputs, split, sys.stdin.buffer)
    job = steps.prepare(ensemble, refs, output, options, part, inputs)
    start = time.perf_counter()
    total = sum(job.bands(target) for target in job.targets)
    with output_folder(output):  # made here: removed again if nothing could be written
        try:
            with console.progress(f"infer {len(job.targets)} image(s)", total) as advance:
                result = steps.run(job, on_band=advance)
        except KeyboardInterrupt:
            console.error(
                f"interrupted: the finished predictions in {console.safe(output)} are kept "
                "(and a large image's finished rows); run the same command again to continue"
            )
            raise typer.Exit(130) from None
        steps.write_predictions(job, result, [*checkpoints, *inputs], console.STATE.argv)
    _warn_one_class(result.one_class, job.ensemble.classes)
    summary = run_summary(job, result, time.perf_counter() - start)
    if not console.STATE.quiet:
        _print_summary(summary)
    if json_:
        typer.echo(json.dumps(summary, indent=2))


def _warn_one_class(maps: list[tuple[str, int]], classes: tuple[str, ...]) -> None:
    """A whole map of one foreground class is a model that learnt nothing but that class."""
    foreground = [(sample, classes[label]) for sample, label in maps if label != 0]
    if foreground:
        shown = ", ".join(f"{sample} ({name})" for sample, name in foreground[:5])
        more = f" and {len(foreground) - 5} more" if len(foreground) > 5 else ""
        console.warn(
            f"{len(foreground)} prediction(s) are one foreground class over the whole image: "
            f"{shown}{more}; is the model degenerate?"
        )


def run_summary(job: InferJob, result: InferResult, seconds: float) -> dict[str, Any]:
    """What a run did (the ``--json`` summary)."""
    return {
        "out_dir": str(job.out_dir),
        "table": str(job.table),
        "images": len(job.targets),
        "predicted": result.predicted,
        "kept": result.kept,
        "tiled": result.tiled,
        "classes": list(job.ensemble.classes),
        "seconds": round(seconds, 3),
    }


def _print_summary(summary: dict[str, Any]) -> None:
    out_dir = console.safe(summary["out_dir"])
    table = Table(title=f"infer → {out_dir}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("images predicted", str(summary["predicted"]))
    table.add_row("kept from an earlier run", str(summary["kept"]))
    table.add_row("images predicted in tiles", str(summary["tiled"]))
    table.add_row("classes", console.safe(", ".join(summary["classes"])))
    table.add_row("table", console.safe(summary["table"]))
    table.add_row("time", f"{summary['seconds']:.1f} s")
    console.stderr.print(table)


@dataclass(frozen=True)
class VoxelOptions:
    """The options of a 3D run."""

    split: str | None
    points: Path | None
    probs: bool
    las: bool
    fill: str | None
    batch: int
    force: bool
    json_: bool


def _infer_voxels(
    table: Path, checkpoints: list[Path], output: Path, device: str, options: VoxelOptions
) -> None:
    """3D: predictions.parquet (and LAS copies) for one voxel table."""
    from tinyseg_cli.commands.infer import voxels as steps
    from tinyseg_cli.io.provenance import provenance
    from tinyseg_cli.io.table_stream import table_stream
    from tinyseg_cli.runtime.device import resolve_device

    if len(checkpoints) != 1:
        raise typer.BadParameter("3D takes one checkpoint", param_hint="--checkpoint")
    start = time.perf_counter()
    model = steps.load_voxel_model(checkpoints[0], resolve_device(device))
    source = steps.open_voxel_input(model, table, options.points)
    fill = None if options.fill is None else model.classes.index(options.fill)
    target = output / steps.PREDICTIONS
    inputs = {"INPUT": table, "--points": source.points, "--checkpoint": checkpoints}
    check_outputs({"-o": target}, options.force, inputs)
    las_files = {}
    scenes, tiles = steps.scenes_and_tiles(source, options.split)
    if options.las:
        las_files = steps.las_outputs(source, scenes, output)
        sources = [path for path, _ in las_files.values()]
        copies = [path for _, path in las_files.values()]
        check_outputs({"-o": [target, *copies]}, options.force, {**inputs, "LAS": sources})
    metadata = {
        "classes": model.classes.to_metadata(),
        "voxelize": source.metadata.get("voxelize"),
        "scenes": source.metadata.get("scenes"),
        "provenance": provenance([checkpoints[0], table, source.points], console.STATE.argv),
    }
    codes = steps.source_codes(source.metadata.get("voxelize") or {}, len(model.classes))
    points = 0
    with (
        console.progress(f"infer {tiles} tile(s) of {table.name}", tiles) as advance,
        table_stream(
            target, steps.prediction_schema(model.classes, options.probs), metadata
        ) as predictions,
    ):

        def on_tiles(count: int) -> None:
            for _ in range(count):
                advance("")

        for scene, rows in steps.scene_predictions(
            model,
            source,
            scenes,
            split=options.split,
            fill=fill,
            with_probs=options.probs,
            tiles_per_batch=options.batch if options.batch > 1 else 4,
            on_tiles=on_tiles,
        ):
            predictions.append_table(rows)
            points += rows.num_rows
            if scene in las_files:
                steps.write_las_prediction(rows, codes, *las_files[scene])
    summary = {
        "out_dir": str(output),
        "table": str(target),
        "points": points,
        "scenes": scenes,
        "las": [str(out) for _, out in las_files.values()],
        "classes": list(model.classes.names),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if not console.STATE.quiet:
        console.stderr.print(
            f"predicted {summary['points']:,} points of {len(summary['scenes'])} scene(s) → "
            f"{console.safe(target)}" + (f" and {len(las_files)} LAS file(s)" if las_files else "")
        )
    if options.json_:
        typer.echo(json.dumps(summary, indent=2))

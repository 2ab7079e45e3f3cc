"""``tinyseg infer``: full-region and tiled 2D inference, one TIFF per image (SPEC §4.6)."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import Device, Force, Json, Quiet, Shard, Verbose, parse_shard

if TYPE_CHECKING:  # torch-heavy modules load when the command runs, not with every --help
    from tinyseg_cli.engine.infer import InferJob, InferResult

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


class Blend(StrEnum):
    linear = "linear"
    gaussian = "gaussian"


def register(app: typer.Typer) -> None:
    """Add ``infer`` to the ``tinyseg`` group."""
    app.command(
        "infer",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Predict label maps (and probabilities) of images with a checkpoint.",
    )(infer)


def infer(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Images: a manifest (column 'image', ROI columns y0, x0, y1, x1 honoured; "
            "with --split), a folder, a glob, image files (TIFF, PNG, NPY), or '-': a manifest "
            "table or image paths, one per line, on stdin.",
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
        typer.Option(
            "--output",
            "-o",
            help="Output folder: <sample_id>.tif per image (uint8 labels, uint16 beyond 255 "
            "classes; the size of the image or ROI), probs/<sample_id>.tif with --probs, and "
            "predictions.parquet listing them.",
            metavar="OUT_DIR",
            show_default=False,
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option("--split", help="Only the manifest rows of this split.", metavar="NAME"),
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
        typer.Option("--batch", help="Tiles per forward pass.", min=1, rich_help_panel=TILING),
    ] = 1,
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
    """
    console.configure(verbose, quiet)
    part = parse_shard(shard_)
    if overlap >= tile:
        raise typer.BadParameter(
            f"--overlap {overlap} must be smaller than --tile {tile}", param_hint="--overlap"
        )
    from tinyseg_cli.engine import infer as engine
    from tinyseg_cli.engine.device import resolve_device
    from tinyseg_cli.inference.predict import TileOptions

    options = engine.InferOptions(
        TileOptions(max_pixels, tile, overlap, blend.value, batch), threshold, probs, force
    )
    ensemble = engine.load_ensemble(checkpoints, resolve_device(device), threshold)
    refs = engine.gather_inputs(inputs, split, sys.stdin.buffer)
    job = engine.prepare(ensemble, refs, output, options, part)
    for target in job.targets:
        if target.broken:
            console.warn(f"{target.labels}: unreadable or truncated; predicting it again")
    start = time.perf_counter()
    total = sum(job.bands(target) for target in job.targets)
    with console.progress(f"infer {len(job.targets)} image(s)", total) as advance:
        result = engine.run(job, on_band=advance)
    engine.write_predictions(job, result, [*checkpoints, *inputs], console.STATE.argv)
    summary = run_summary(job, result, time.perf_counter() - start)
    if not console.STATE.quiet:
        _print_summary(summary)
    if json_:
        typer.echo(json.dumps(summary, indent=2))


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
    table = Table(title=f"infer → {summary['out_dir']}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("images predicted", str(summary["predicted"]))
    table.add_row("kept from an earlier run", str(summary["kept"]))
    table.add_row("images predicted in tiles", str(summary["tiled"]))
    table.add_row("classes", ", ".join(summary["classes"]))
    table.add_row("table", summary["table"])
    table.add_row("time", f"{summary['seconds']:.1f} s")
    console.stderr.print(table)

"""``tinyseg overlay``: pictures for review: errors drawn on the images, crops of the worst
objects, image | truth | prediction panels and a static HTML gallery (SPEC §4.9)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    FINITE,
    Classes,
    Force,
    IgnoreIndex,
    Jobs,
    Json,
    MissingPolicy,
    Palette,
    PredClasses,
    PredPalette,
    Quiet,
    Verbose,
    in_range,
    output_dir,
)
from tinyseg_cli.io.atomic import check_output_dir, output_folder

INPUTS = "tinyseg overlay --image images --truth t --pred p"
EXAMPLES = f"""\
Examples:

  tinyseg overlay --image images --truth masks --pred pred -o review

  {INPUTS} -o worst --crops 3 --panel --outlines

  {INPUTS} -o strict --match iou:0.5 --json | jq -r '.samples[0].overlay'
"""
DRAWING = "Drawing"
OBJECTS = "Objects (as score --objects)"


def register(app: typer.Typer) -> None:
    """Add ``overlay`` to the ``tinyseg`` group."""
    app.command(
        "overlay",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Errors drawn on the images, crops of the worst objects, an HTML gallery.",
    )(overlay)


def _connectivity(value: int) -> int:
    if value not in (4, 8):
        raise typer.BadParameter(f"expected 4 or 8, found {value}")
    return value


def overlay(
    image: Annotated[
        str,
        typer.Option(
            "--image",
            help="Images: a folder, glob, manifest (image column, ROI columns honoured) or one "
            "file (TIFF, PNG, NPY; grey or RGB, any bit depth), matched to the maps by sample id.",
            metavar="PATH",
            show_default=False,
        ),
    ],
    truth: Annotated[
        str,
        typer.Option(
            "--truth",
            help="Ground truth: a folder, glob, manifest (mask column) or one file.",
            metavar="PATH",
            show_default=False,
        ),
    ],
    pred: Annotated[
        str,
        typer.Option(
            "--pred",
            help="Predictions: a folder (such as the OUT_DIR of 'tinyseg infer'), glob, manifest "
            "(prediction column) or one file; label maps or probabilities (--threshold).",
            metavar="PATH",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        output_dir(
            "Output folder: <sample_id>.png, thumbs/, crops/, panels/ and index.html.",
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="With a split manifest as --image or --truth: only the rows of this split.",
            metavar="NAME",
        ),
    ] = None,
    classes: Classes = None,
    palette: Palette = None,
    pred_classes: PredClasses = None,
    pred_palette: PredPalette = None,
    ignore_index: IgnoreIndex = 255,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Binary probability maps: foreground where p >= T, as in 'tinyseg score'. "
            "Default 0.5 for float maps; C×H×W maps use argmax.",
            metavar="T",
            min=0.0,
            max=1.0,
            callback=FINITE,
        ),
    ] = None,
    crops: Annotated[
        int,
        typer.Option(
            "--crops",
            help="Write the K worst objects of each sample as enlarged crops: missed true "
            "objects first, then false detections, each largest first (0: none).",
            metavar="K",
            min=0,
            rich_help_panel=DRAWING,
        ),
    ] = 6,
    panel: Annotated[
        bool,
        typer.Option(
            "--panel",
            help="Also write panels/<sample_id>.png: image | truth | prediction side by side.",
            rich_help_panel=DRAWING,
        ),
    ] = False,
    outlines: Annotated[
        bool,
        typer.Option(
            "--outlines",
            help="Draw the outlines of the true objects, one dash style per class.",
            rich_help_panel=DRAWING,
        ),
    ] = False,
    max_size: Annotated[
        int,
        typer.Option(
            "--max-size",
            help="Longest side of a picture; larger images are shrunk by a whole factor, their "
            "error pixels max-pooled so that none disappears.",
            metavar="PIXELS",
            min=16,
            rich_help_panel=DRAWING,
        ),
    ] = 2048,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            help="Opacity of the error colours over the image (1: opaque).",
            metavar="A",
            min=0.0,
            max=1.0,
            callback=in_range(0, 1),
            rich_help_panel=DRAWING,
        ),
    ] = 0.7,
    connectivity: Annotated[
        int,
        typer.Option(
            "--connectivity",
            help="4 or 8 neighbours join pixels into one object.",
            metavar="4|8",
            callback=_connectivity,
            rich_help_panel=OBJECTS,
        ),
    ] = 8,
    match: Annotated[
        str,
        typer.Option(
            "--match",
            help="When a true and a predicted object match: overlap (any shared pixel), iou:T "
            "(IoU >= T) or cover:T (>= T of the true object covered).",
            metavar="RULE",
            rich_help_panel=OBJECTS,
        ),
    ] = "overlap",
    missing: Annotated[
        MissingPolicy,
        typer.Option(
            "--missing",
            help="A sample without its image, truth or prediction: stop, or skip it.",
        ),
    ] = MissingPolicy.error,
    jobs: Jobs = 0,
    json_: Json = False,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Draw each sample's errors on its image, for review.

    Per sample, OUT_DIR/<sample_id>.png shows the image (grey or RGB; 16-bit and float
    images stretched from their minimum to their maximum) with every foreground class's
    errors blended in colour-blind-safe colours (Okabe–Ito): TP bluish green, FP yellow,
    FN vermillion. A pixel of one class predicted as another is drawn as FN. Below the
    picture, a legend strip gives one row per class: its TP, FP and FN pixels and its
    objects missed and false. With several foreground classes, --outlines tells the classes
    apart: each class's true objects are outlined (reddish purple) in its own dash style
    (solid, dashed, dotted, dash-dot), shown in the legend; crops name their class.

    An image larger than --max-size is shrunk by a whole factor: the image by block means,
    the error pixels by max-pooling (FN over FP over TP over outlines), so a single missed
    pixel stays visible. thumbs/<sample_id>.png are shrunk the same way.

    Objects are matched as 'tinyseg score --objects' matches them (--connectivity, --match).
    crops/<sample_id>_<k>.png show the K worst: missed true objects first, then false
    detections, each group largest first; a crop is the object's box with context around
    it (at least 8 pixels, or the object's size), enlarged by nearest neighbour to about
    256 pixels, the object framed in its error colour.

    Truth and prediction must share their class map (as in 'tinyseg score'): a prediction
    of other classes needs --pred-classes, e.g. '--pred-classes rest,fray' for a
    one-vs-rest model; --palette maps the truth's colours, --pred-palette the prediction's.

    OUT_DIR/index.html is a static page (no script, no network) listing the samples by
    object recall, then pixel F2, both ascending: the worst first. It shows each sample's
    thumbnail, object and pixel counts, and links to its pictures. With --json, the same
    list goes to stdout.
    """
    from tinyseg_cli.commands.overlay import run as steps
    from tinyseg_cli.io.classmap import parse_class_map
    from tinyseg_cli.io.palette import load_palette
    from tinyseg_cli.metrics.objects import ObjectOptions, parse_match
    from tinyseg_cli.review.sample import ReviewOptions
    from tinyseg_cli.runtime.parallel import default_jobs
    from tinyseg_cli.scoring.class_maps import predictions_class_map, scored_classes
    from tinyseg_cli.scoring.pairs import CountOptions, classes_of_inputs

    console.configure(verbose, quiet)
    rule = parse_match(match)
    check_output_dir(output)
    class_map, truth_remap = scored_classes(
        parse_class_map(classes) if classes else classes_of_inputs([truth]),
        predictions_class_map([pred]),
        parse_class_map(pred_classes) if pred_classes else None,
        (truth, pred),
    )
    options = ReviewOptions(
        counting=CountOptions(
            n_classes=len(class_map) if class_map else None,
            ignore_index=ignore_index,
            threshold=threshold,
            palette=load_palette(palette) if palette else None,
            pred_palette=load_palette(pred_palette) if pred_palette else None,
            truth_remap=truth_remap,
        ),
        objects=ObjectOptions(connectivity=connectivity, rule=rule),
        class_names=tuple(class_map.names) if class_map else (),
        crops=crops,
        max_size=max_size,
        alpha=alpha,
        outlines=outlines,
        panel=panel,
    )
    samples, skipped = steps.gather_samples(image, truth, pred, split, missing.value)
    for side, names in skipped.items():
        if names:
            console.warn(f"skipped {len(names)} sample(s) with no {side}: {', '.join(names[:5])}")
    sources = {
        "--image": image, "--truth": truth, "--pred": pred, "--classes": classes,
        "--palette": palette, "--pred-classes": pred_classes, "--pred-palette": pred_palette,
    }  # fmt: skip
    planned = steps.check_run(samples, output, options, force, sources)
    with output_folder(output), steps.removed_on_failure(output, planned):
        with console.progress(f"overlay {len(samples)} sample(s)", len(samples)) as advance:
            summaries = steps.draw_samples(
                samples, output, options, jobs or default_jobs(), lambda s: advance(s.sample_id)
            )
        index = steps.write_gallery(summaries, output, options)
    if json_:
        typer.echo(json.dumps(summary_json(summaries, output, index), indent=2))
    if not console.STATE.quiet:
        missed = sum(s.missed for s in summaries)
        false = sum(s.false for s in summaries)
        console.stderr.print(
            f"drew {len(summaries)} sample(s): {missed:,} missed and {false:,} false object(s) "
            f"→ {console.safe(index)}",
            soft_wrap=True,
        )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def summary_json(summaries: list[Any], output: Path, index: Path) -> dict[str, Any]:
    """The ``--json`` summary: the gallery's list, worst first, with each sample's files."""
    from tinyseg_cli.review import layout
    from tinyseg_cli.review.gallery import ordered

    return {
        "out_dir": str(output),
        "index": str(index),
        "samples": [
            {
                "sample_id": s.sample_id,
                "overlay": str(output / layout.overlay_name(s.sample_id)),
                "thumb": str(output / layout.thumb_name(s.sample_id)),
                "panel": str(output / layout.panel_name(s.sample_id)) if s.panel else None,
                "crops": [str(output / crop.name) for crop in s.crops],
                "true_objects": s.true_objects,
                "missed": s.missed,
                "false": s.false,
                "object_recall": _number(s.object_recall),
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
                "pixel_f2": _number(s.pixel_f2),
            }
            for s in ordered(summaries)
        ],
    }

"""``tinyseg plot``: training curves, run statistics, TPR/FPR and precision/recall scatters and
tune-oii searches as PNG, SVG or PDF figures, from tinyseg's own tables (SPEC §4.9)."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    Force,
    Quiet,
    Verbose,
    classes_choice,
    metric_option,
    repeated_names,
    table_labels,
)
from tinyseg_cli.io.atomic import STDIO, check_outputs
from tinyseg_cli.io.provenance import command_line
from tinyseg_cli.plots.draw import FORMATS, PlotOptions, check_options, plot_tables
from tinyseg_cli.plots.tables import open_sources, parse_names, resolve_kind

RUNS = "tinyseg score --truth t --run a=run_a/pred --run b=run_b/pred -o -"
TRAIN = "tinyseg train split.parquet --arch half-unet --patch-size 8 -b 4 --iterations 2 -o run"
EXAMPLES = f"""\
Examples:

  {RUNS} | tinyseg plot - --metric f2,oii -o runs.svg

  tinyseg score --truth t --pred p --thresholds 99 --sweep-out - -q | tinyseg plot - -o pr.png

  {TRAIN} && tinyseg plot run -o curves.pdf
"""
DRAWN = {
    "log": "training curves",
    "runs": "mean ± std across runs",
    "scatter": "TPR/FPR and precision/recall of runs",
    "tune": "tune-oii search",
    "pr": "precision/recall curves",
}


class KindChoice(StrEnum):
    auto = "auto"
    log = "log"
    runs = "runs"
    scatter = "scatter"
    tune = "tune"
    pr = "pr"


def register(app: typer.Typer) -> None:
    app.command(
        "plot",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Training curves, run statistics, scatters of runs, tune-oii searches.",
    )(plot)


def plot(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Tables of one kind: training logs (a RUN_DIR of 'tinyseg train' or its "
            "log.parquet), scores tables of 'tinyseg score' (with --run or not), or tune-oii "
            "logs (a TUNE_DIR or its steps.parquet). '-' reads a table from stdin.",
            metavar="TABLE...",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="The figure; its suffix gives the format: .png, .svg or .pdf.",
            metavar="FIGURE",
            show_default=False,
        ),
    ],
    kind: Annotated[
        KindChoice,
        typer.Option(
            "--kind",
            help="What to draw. auto: by the tables' columns (log, runs, tune or pr); log: "
            "loss, lr and validation scores over steps; runs: mean ± std across runs per "
            "class, with each run's value; scatter: TPR vs FPR and precision vs recall, a point "
            "per run and class; tune: searched value vs OII with the target band; pr: "
            "precision/recall curves of thresholds tables ('score --sweep-out'), ODS and OIS "
            "points marked, iso-F lines.",
        ),
    ] = KindChoice.auto,
    metric: Annotated[
        list[str] | None,
        metric_option(
            "Score columns to draw, one panel each (log, runs): f2, iou, oii, recall, "
            "precision, fpr, f1, rw_f1, rw_iou, …; repeat or separate by commas. "
            "Default: f2, iou, oii.",
        ),
    ] = None,
    classes: Annotated[
        str | None,
        classes_choice(
            "Which classes to draw (log, runs, scatter): names or indices, and micro or "
            "macro for the averages, e.g. 'crack,pore,macro'. Default: the foreground "
            "classes (all but index 0).",
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        table_labels(
            "Name of each TABLE in the legend, once per TABLE in order. Default: a log's "
            "folder name, another table's file stem (with parent folders when they clash).",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Target band (m0, m1) to shade (tune). Default: the band the log records.",
            metavar="M0,M1",
            show_default=False,
        ),
    ] = None,
    title: Annotated[
        str | None, typer.Option("--title", help="Title above the figure.", metavar="TEXT")
    ] = None,
    dpi: Annotated[
        int, typer.Option("--dpi", help="Resolution of PNG output.", min=30, max=1200, metavar="N")
    ] = 150,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Draw the curves of training logs, score runs or tune-oii searches into one figure.

    The kind of table is told by its columns (--kind auto): a training log has step, loss
    and lr; a scores table has stat, level and class_name; a tune-oii log has step, oii and
    its bracket; a thresholds table has threshold and its counts. All TABLEs must be of one
    kind. Precision/recall curves: 'tinyseg score --truth masks --pred probs --thresholds 99
    --tolerance 2 --sweep-out sweep.parquet' then 'tinyseg plot sweep.parquet -o pr.png'.

    Several training logs are overlaid, each in its colour (the validation scores of each
    class then in its own dash). Several scores tables are pooled: every run of every table
    is one run of the mean ± std, named 'LABEL:RUN' (a table without runs is one run named by
    its label); the mean and standard deviation (ddof = 1, null scores left out) are those
    'tinyseg score --run' reports. Several tune-oii logs are drawn on one axis, each with its
    band. --kind scatter takes the same scores tables as runs.
    """
    console.configure(verbose, quiet)
    _check_format(output)
    options = PlotOptions(
        metrics=repeated_names(metric),
        classes=parse_names(classes),
        target=_target(target),
        title=title,
        dpi=dpi,
    )
    check_outputs({"-o": output}, force, {"TABLE": [p for p in inputs if p != STDIO]})
    sources = open_sources(inputs, label)
    found = resolve_kind(sources, kind.value)
    check_options(found, options)
    plot_tables(found, sources, options, output, command_line(console.STATE.argv))
    if not console.STATE.quiet:
        names = ", ".join(source.label for source in sources)
        console.stderr.print(
            f"wrote {console.safe(output)}: {DRAWN[found]} of {console.safe(names)}",
            soft_wrap=True,
        )


def _check_format(output: str) -> None:
    """-o names a .png, .svg or .pdf file (a usage error otherwise): its suffix is the format."""
    if output == STDIO:
        raise typer.BadParameter(
            "a figure is written to a file named .png, .svg or .pdf, not to stdout",
            param_hint="-o",
        )
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise typer.BadParameter(
            f"{output!r}: expected a .png, .svg or .pdf file name (the format follows it)",
            param_hint="-o",
        )


def _target(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not two numbers m0,m1", param_hint="--target"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise typer.BadParameter(f"{text!r}: expected finite m0 < m1", param_hint="--target")
    return low, high

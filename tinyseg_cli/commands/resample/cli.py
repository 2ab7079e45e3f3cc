"""``tinyseg resample``: class-aware patch sampling from the training rows (SPEC §4.2)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    FINITE,
    Classes,
    Force,
    IgnoreIndex,
    Jobs,
    Json,
    Output,
    Palette,
    Quiet,
    Seed,
    Verbose,
    single_stdout,
)
from tinyseg_cli.commands.resample.run import (
    Options,
    Patches,
    check_feasible,
    default_targets,
    draw_patches,
    memory_needed,
    patch_rows,
    patch_table,
    physical_memory,
)
from tinyseg_cli.commands.resample.survey import Sample, Settings, read_manifest, survey_samples
from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.atomic import check_outputs
from tinyseg_cli.io.classmap import ClassMap, parse_class_map
from tinyseg_cli.io.palette import load_palette
from tinyseg_cli.io.provenance import provenance
from tinyseg_cli.io.tables import write_table
from tinyseg_cli.prep.patches import HANDFUL, NO_TARGET, composition
from tinyseg_cli.runtime.parallel import default_jobs

EXAMPLES = """\
Examples:

  tinyseg split --from-dir t --masks masks --ratios 0.5,0.5 -o s.parquet

  tinyseg resample s.parquet --strategy equal-samples -n 4 --size 4 -o p.parquet

  tinyseg resample s.parquet --strategy binary --class 1 --size 2 --json
"""


class Strategy(StrEnum):
    random = "random"
    equal_samples = "equal-samples"
    oversample = "oversample"
    equal_pixels = "equal-pixels"
    binary = "binary"


def register(app: typer.Typer) -> None:
    app.command(
        "resample",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Class-aware patch table from the training rows.",
    )(resample)


def resample(
    manifest: Annotated[
        str,
        typer.Argument(
            help="A manifest (sample_id, image, mask, optional ROI y0, x0, y1, x1): its "
            "training rows (split == 'train', or every row without a split column). '-' "
            "reads it from stdin (paths then resolve against the current directory).",
            metavar="MANIFEST",
            show_default=False,
        ),
    ],
    strategy: Annotated[
        Strategy,
        typer.Option(
            "--strategy",
            help="random: uniform over all patches. equal-samples: N patches per class. "
            "oversample: N patches, the --class classes in --proportions, the rest random. "
            "equal-pixels: draw for the class lowest in pixels until the totals agree within "
            f"--tolerance, each patch the one of {HANDFUL} random candidates that adds the fewest "
            "pixels of the classes already ahead. binary: N patches, --positive-fraction of "
            "them holding --class.",
            show_default=False,
        ),
    ],
    size: Annotated[
        int, typer.Option("--size", help="Patch side in pixels.", min=1, metavar="N")
    ] = 256,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            "-n",
            help="Patches per class (equal-samples) or in all (the others; equal-pixels: at "
            "least this many), per draw.",
            min=1,
            metavar="N",
        ),
    ] = 100,
    draws: Annotated[
        int,
        typer.Option(
            "--draws", help="Independent draws, numbered 0… in column 'draw'.", min=1, metavar="K"
        ),
    ] = 1,
    per_image: Annotated[
        bool,
        typer.Option(
            "--per-image",
            help="Draw the composition within each training row instead of over all of them: "
            "N (per class) per image; a class without candidates in an image gets no patches "
            "there. Not with equal-pixels.",
        ),
    ] = False,
    seed: Seed = 0,
    class_: Annotated[
        list[str] | None,
        typer.Option(
            "--class",
            help="Class to draw for (name or index; repeat for several): required by "
            "oversample, one for binary; restricts equal-samples (default every class) and "
            "equal-pixels (default every class but 0).",
            metavar="C",
            show_default=False,
        ),
    ] = None,
    proportions: Annotated[
        str | None,
        typer.Option(
            "--proportions",
            help="oversample: share of the N patches for each --class, in order, summing to "
            "at most 1; the remainder is drawn at random. Default: equal shares, no remainder.",
            metavar="P,Q,…",
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="equal-pixels: stop when (max − min)/max of the balanced classes' pixel "
            "totals is at most this. [default: 0.10]",
            min=0.0,
            max=1.0,
            callback=FINITE,
            show_default=False,
        ),
    ] = None,
    max_patches: Annotated[
        int | None,
        typer.Option(
            "--max-patches",
            help="equal-pixels: give up (exit 1, no output) after this many patches per "
            "draw. [default: 100 × N]",
            min=1,
            metavar="N",
            show_default=False,
        ),
    ] = None,
    positive_fraction: Annotated[
        float | None,
        typer.Option(
            "--positive-fraction",
            help="binary: fraction of the patches that hold --class, exactly "
            "round(f × N); the others hold none of it. [default: 0.5]",
            min=0.0,
            max=1.0,
            callback=FINITE,
            show_default=False,
        ),
    ] = None,
    classes: Classes = None,
    palette: Palette = None,
    ignore_index: IgnoreIndex = 255,
    output: Output = None,
    json_: Json = False,
    jobs: Jobs = 0,
    force: Force = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Draw patches from the training rows of a manifest and write the patch table.

    A patch is a SIZE×SIZE window fully inside the row's ROI (y0, x0, y1, x1; else the
    whole mask). It is a candidate for class c when it holds at least one pixel of c; each
    patch is drawn uniformly, with replacement, among the candidates of its class over all
    training rows, so images weigh by their candidates.

    equal-pixels looks at what a patch brings along: a rare class found next to a common
    one would drag more of the common class in with every uniform draw and never catch up.
    So each of its patches is chosen among a handful of such draws (see --strategy): the
    one that lifts the other balanced classes least above the largest total, per pixel of
    the class it is drawn for (ties: the most pixels of that class). Pixels per candidate
    come from a summed-area table per class, exact; the same seed gives the same table.

    The table has one row per patch: sample_id, image, mask (paths relative to the output
    table; with '-o -' as they resolve from the current directory), y, x (top-left corner
    in image coordinates; the centre is y + SIZE//2, x + SIZE//2), h, w, draw,
    target_class (the class drawn for; -1 for random patches and binary negatives) and
    one px_NAME column per class with its pixels in the patch (the ignore label left out).

    The composition (patches and pixels per class, background included) goes to stderr,
    or with --json to stdout; without -o only the composition is shown. A class without a
    candidate, a mask or ROI smaller than the patch, or a tolerance not met within
    --max-patches is an error (exit 1, no output).
    """
    console.configure(verbose, quiet)
    single_stdout(output=output, json=json_)
    _check_usage(strategy, class_, proportions, tolerance, max_patches, positive_fraction)
    if per_image and strategy is Strategy.equal_pixels:
        raise typer.BadParameter("equal-pixels balances over all rows", param_hint="--per-image")
    check_outputs(
        {"-o": output}, force, {"MANIFEST": manifest, "--classes": classes, "--palette": palette}
    )
    source = read_manifest(manifest)
    class_map = parse_class_map(classes) if classes else source.class_map
    settings = Settings(
        size,
        len(class_map) if class_map else None,
        ignore_index,
        load_palette(palette) if palette else None,
    )
    targets = _targets(strategy, class_ or [], class_map) if class_map else None
    asked = Options(strategy.value, samples, draws, per_image)  # before the survey: at least
    n_targets = len(targets) if targets else len(class_ or ())  # these classes, one image
    _check_memory(asked, n_targets, 1, len(class_map) if class_map else 1, source.samples)
    jobs = jobs or default_jobs()
    with console.progress(f"surveying {source.name}", len(source.samples)) as advance:
        surveys = survey_samples(source.samples, settings, jobs, advance)
    class_map = class_map or ClassMap.numbered(max(1, surveys.pixels.shape[1]))
    settings = replace(settings, n_classes=len(class_map))
    if targets is None:  # class names could only be checked once the masks told the classes
        targets = _targets(strategy, class_ or [], class_map)
    options = Options(
        strategy.value,
        samples,
        draws,
        per_image,
        seed,
        targets,
        _proportions(proportions),
        0.10 if tolerance is None else tolerance,
        max_patches,
        0.5 if positive_fraction is None else positive_fraction,
    )
    check_feasible(surveys, class_map, options, size)
    _check_memory(options, len(targets), len(source.samples), len(class_map), source.samples)
    patches = draw_patches(source.samples, surveys, options, settings, jobs, console.progress)
    summary = _summary(patches, class_map, options, size)
    if output is not None:
        table = patch_table(source.samples, patches, class_map, size, _path_text(output))
        write_table(table, output, _metadata(manifest, class_map, options, size, ignore_index))
    if json_:
        typer.echo(json.dumps(summary, indent=2))
    if not console.STATE.quiet:
        _print_summary(summary)


def _check_usage(
    strategy: Strategy,
    class_: list[str] | None,
    proportions: str | None,
    tolerance: float | None,
    max_patches: int | None,
    positive_fraction: float | None,
) -> None:
    """Options that the strategy does not take, or takes in another number, are usage errors."""
    only = {
        "--proportions": (proportions, Strategy.oversample),
        "--tolerance": (tolerance, Strategy.equal_pixels),
        "--max-patches": (max_patches, Strategy.equal_pixels),
        "--positive-fraction": (positive_fraction, Strategy.binary),
    }
    for hint, (value, owner) in only.items():
        if value is not None and strategy is not owner:
            raise typer.BadParameter(f"applies to --strategy {owner.value}", param_hint=hint)
    n_classes = len(class_ or [])
    if strategy is Strategy.random and n_classes:
        raise typer.BadParameter("random draws for no class", param_hint="--class")
    if strategy is Strategy.oversample and not n_classes:
        raise typer.BadParameter("oversample needs at least one --class", param_hint="--class")
    if strategy is Strategy.binary and n_classes != 1:
        raise typer.BadParameter("binary needs exactly one --class", param_hint="--class")
    if proportions is not None and len(_proportions(proportions) or ()) != n_classes:
        raise typer.BadParameter(
            f"{proportions!r}: one proportion per --class ({n_classes})",
            param_hint="--proportions",
        )


def _check_memory(
    options: Options, n_targets: int, n_images: int, n_classes: int, samples: list[Sample]
) -> None:
    """Refuse, before the work, a patch table that cannot fit in this machine's memory."""
    have = physical_memory()
    rows = patch_rows(options, n_targets, n_images)
    chars = max(
        (len(s.sample_id) + len(str(s.image)) + len(str(s.mask)) for s in samples), default=0
    )
    need = memory_needed(rows, n_classes, chars)
    if have is not None and need > have:
        raise UsageError(
            f"-n {options.samples}: {rows:,} patches would need about {need / 2**30:,.1f} GiB "
            f"of memory, this machine has {have / 2**30:,.1f} GiB (lower -n or --draws)"
        )


def _proportions(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: not numbers", param_hint="--proportions") from None
    if any(not 0 < value <= 1 for value in values) or sum(values) > 1 + 1e-9:
        raise typer.BadParameter(
            f"{text!r}: each in (0, 1], summing to at most 1", param_hint="--proportions"
        )
    return values


def _targets(strategy: Strategy, names: list[str], class_map: ClassMap) -> tuple[int, ...]:
    if not names:
        targets = default_targets(strategy.value, len(class_map))
        if strategy is Strategy.equal_pixels and not targets:
            raise TinysegError("equal-pixels: the masks hold only class 0, nothing to balance")
        return targets
    try:
        targets = tuple(class_map.index(name) for name in names)
    except TinysegError as error:
        raise typer.BadParameter(str(error), param_hint="--class") from None
    if len(set(targets)) != len(targets):
        raise typer.BadParameter("a class is named twice", param_hint="--class")
    return targets


def _path_text(output: str) -> Callable[[Path], str]:
    """Paths as the next step reads them: relative to the output table's folder, or as
    they resolve from the current directory when the table goes to stdout."""
    if output == "-":
        return str
    folder = Path(output).parent
    return lambda path: os.path.relpath(path, folder)


def _metadata(
    manifest: str, class_map: ClassMap, options: Options, size: int, ignore_index: int
) -> dict[str, Any]:
    settings = {
        "strategy": options.strategy,
        "size": size,
        "samples": options.samples,
        "draws": options.draws,
        "per_image": options.per_image,
        "seed": options.seed,
        "classes": [class_map.name(c) for c in options.targets],
    }
    if options.strategy == "oversample":
        settings["proportions"] = options.proportions
    if options.strategy == "equal-pixels":
        settings["tolerance"] = options.tolerance
        settings["max_patches"] = options.max_patches or 100 * options.samples
        settings["handful"] = options.handful
    if options.strategy == "binary":
        settings["positive_fraction"] = options.positive_fraction
    return {
        "provenance": provenance([manifest], console.STATE.argv),
        "classes": class_map.to_metadata(),
        "ignore_index": ignore_index,
        "resample": settings,
    }


def _summary(patches: Patches, class_map: ClassMap, options: Options, size: int) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "strategy": options.strategy,
        "size": size,
        "seed": options.seed,
        "draws": options.draws,
        "per_image": options.per_image,
        "patches": int(patches.image.size),
        "untargeted": int(np.count_nonzero(patches.target == NO_TARGET)),
        "classes": composition(patches.pixels, patches.target, class_map.names),
    }
    if patches.spreads is not None:
        summary["tolerance"] = options.tolerance
        summary["spread"] = patches.spreads
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title_justify="left", caption_justify="left")
    for header in ("index", "class", "drawn for", "patches with", "pixels", "share"):
        table.add_column(header, justify="left" if header == "class" else "right")
    for row in summary["classes"]:
        table.add_row(
            str(row["index"]),
            console.safe(row["name"]),
            f"{row['drawn']:,}",
            f"{row['samples']:,}",
            f"{row['pixels']:,}",
            f"{100 * row['share']:.3f} %",
        )
    draws = summary["draws"]
    over = f" in {draws} draws" if draws > 1 else ""
    table.title = (
        f"{summary['strategy']}: {summary['patches']:,} patches of "
        f"{summary['size']}×{summary['size']}{over}"
    )
    notes = []
    if summary["untargeted"]:
        notes.append(f"{summary['untargeted']:,} patches drawn for no class")
    if "spread" in summary:
        notes.append(
            f"pixel spread (max − min)/max of the balanced classes: {max(summary['spread']):.1%}"
            f" (tolerance {summary['tolerance']:.0%})"
        )
    table.caption = "; ".join(notes) or None
    console.stderr.print(table)

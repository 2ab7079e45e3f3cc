"""``tinyseg split``: grouped, leak-free splits, folds and region splits, their report, the
leakage check, and nnU-Net's ``splits_final.json`` (SPEC §4.1)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
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
    parsed,
    single_stdout,
)
from tinyseg_cli.commands.split.args import (
    check_usage,
    folder_layout,
    reject_with_check,
    split_mode,
)
from tinyseg_cli.commands.split.manifest import split_table
from tinyseg_cli.commands.split.nnunet import splits_of, write_splits
from tinyseg_cli.commands.split.report import (
    PartSummary,
    check_split_table,
    summarize,
    summary_json,
)
from tinyseg_cli.commands.split.run import SplitRequest, make_split
from tinyseg_cli.io.atomic import check_outputs
from tinyseg_cli.io.classmap import ClassMap, parse_class_map
from tinyseg_cli.io.palette import load_palette
from tinyseg_cli.io.provenance import provenance
from tinyseg_cli.io.tables import write_table
from tinyseg_cli.prep.folds import Plan
from tinyseg_cli.prep.splits import parse_ratios, parse_region
from tinyseg_cli.runtime.parallel import default_jobs

# MVTec AD's layout: test/<defect>/NNN.png, truth/<defect>/NNN_mask.png, test/good/ without
FOLDERS = "--mask-suffix _mask --class-from-folder '([^/]+)$' --background-folder good"
EXAMPLES = f"""\
Examples:

  tinyseg split --from-dir t --masks masks --ratios 0.5,0.5 -o split.parquet

  tinyseg split --from-dir test --masks truth {FOLDERS} --ratios 0.5,0.5 -o d.parquet

  tinyseg split split.parquet --region top:0.25 -o - | tinyseg split --check - --no-group
"""


def register(app: typer.Typer) -> None:
    app.command(
        "split",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Grouped, leak-free train/val/test splits, folds and region splits.",
    )(split)


def split(
    manifest: Annotated[
        str | None,
        typer.Argument(
            help="Manifest table (Parquet or CSV; '-' reads stdin): sample_id, mask, "
            "optionally image, ROI columns y0, x0, y1, x1 and any others, which are kept. "
            "With --check: the split table to check.",
            metavar="MANIFEST",
            show_default=False,
        ),
    ] = None,
    from_dir: Annotated[
        str | None,
        typer.Option(
            "--from-dir",
            help="Build the manifest from this folder (or glob) of images and --masks, "
            "matched by file stem.",
            metavar="IMAGES",
        ),
    ] = None,
    masks: Annotated[
        str | None,
        typer.Option(
            "--masks",
            help="The masks of --from-dir: a folder or glob (with --class-from-folder, a "
            "tree parallel to IMAGES; without it there, each mask lies beside its image).",
            metavar="MASKS",
        ),
    ] = None,
    class_from_folder: Annotated[
        str | None,
        typer.Option(
            "--class-from-folder",
            help="One class per folder: IMAGES is searched recursively and each image's class "
            "is captured by this regular expression from its folder below IMAGES (group 1 or "
            "(?P<class>…)), e.g. 'MT_([^/]+)' or '([^/]+)$'. Each mask's nonzero pixels are "
            "that class (column mask_class); the class map is background + the classes found "
            "in name order, or --classes.",
            metavar="REGEX",
        ),
    ] = None,
    background_folder: Annotated[
        list[str] | None,
        typer.Option(
            "--background-folder",
            help="A folder of defect-free images (e.g. good, MT_Free): no mask, every pixel "
            "background. Repeatable.",
            metavar="NAME",
        ),
    ] = None,
    mask_suffix: Annotated[
        str,
        typer.Option(
            "--mask-suffix",
            help="A mask is named <image stem><suffix> (MVTec AD: _mask). Masks beside "
            "their images need it unless the images are JPEG.",
            metavar="SUFFIX",
        ),
    ] = "",
    mask_threshold: Annotated[
        int | None,
        typer.Option(
            "--mask-threshold",
            help="Binarise soft masks (0–255 with anti-aliased edges): a pixel >= T is the "
            "row's class (foreground, class 1, without --class-from-folder). Recorded in "
            "the table, so every later command reads the masks so.",
            min=1,
            max=65535,
            metavar="T",
        ),
    ] = None,
    ratios: Annotated[
        str | None,
        typer.Option(
            "--ratios",
            help="Fractions of the groups in train,val[,test]; they sum to 1. Every split "
            "with a positive fraction gets at least one group.",
            metavar="TRAIN,VAL[,TEST]",
        ),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            help="K-fold cross-validation: column 'fold' (0..K-1), the fold whose held-out "
            "part a row is; fold sizes differ by one group at most.",
            min=2,
            metavar="K",
        ),
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            "--val-fraction",
            help="With --folds: carve this fraction of each fold's training groups out as "
            "its validation part, column 'val_fold' (a group validates one fold at most, "
            "so F <= 1/(K-1)); each fold's held-out part then tests.",
            metavar="F",
        ),
    ] = None,
    fold: Annotated[
        int | None,
        typer.Option(
            "--fold",
            help="Write fold N as the 'split' column (train/val/test), of new --folds or "
            "of a MANIFEST that has a 'fold' column.",
            min=0,
            metavar="N",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="Split inside each image: the top (bottom, left, right) fraction of its "
            "rows (columns) is val, the rest train, as two ROI rows ID@top and ID@rest "
            "(column 'region').",
            metavar="SIDE:F",
        ),
    ] = None,
    test_ids: Annotated[
        str | None,
        typer.Option(
            "--test-ids",
            help="Groups held out as test: 'a,b' or a file with one id per line. --ratios "
            "then gives train,val of the other groups; with --folds they are in no fold.",
            metavar="IDS|FILE",
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="Column whose rows stay together. Default: 'group' when the manifest has "
            "one, else each sample alone (also --group sample_id). With --check: the "
            "column the table's split metadata names, else 'group'.",
            metavar="COL",
        ),
    ] = None,
    no_group: Annotated[
        bool,
        typer.Option(
            "--no-group",
            help="With --check: take each row as its own group. For a table that lost "
            "tinyseg's split metadata (rewritten by another tool) and has no 'group' "
            "column, whose rows really are independent; otherwise name the column with "
            "--group. Such a table without either is a usage error.",
        ),
    ] = False,
    stratify: Annotated[
        bool,
        typer.Option(
            "--stratify",
            help="Balance the presence of each class across the splits or folds, rarest "
            "class first (counts every mask).",
        ),
    ] = False,
    from_nnunet: Annotated[
        str | None,
        typer.Option(
            "--from-nnunet",
            help="Take the folds of an nnU-Net splits_final.json (case ids are sample ids); "
            "one entry gives train/val.",
            metavar="FILE",
        ),
    ] = None,
    export_nnunet: Annotated[
        str | None,
        typer.Option(
            "--export-nnunet",
            help="Also write the folds as nnU-Net's splits_final.json: per fold, val = its "
            "held-out rows, train = the other rows in folds; without folds one entry, "
            "train vs val.",
            metavar="FILE",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Check the split table MANIFEST: exit 1 when a group crosses splits or "
            "folds, a sample id or an image+ROI appears twice, or windows of one image "
            "overlap across splits.",
        ),
    ] = False,
    no_counts: Annotated[
        bool,
        typer.Option("--no-counts", help="Do not read the masks: report images and groups only."),
    ] = False,
    seed: Seed = 0,
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
    """Assign the rows of a manifest to train/val/test splits, cross-validation folds or
    image regions, keeping the rows of each group together.

    The rows of one group (multi-view images of one object, tiles of one scene) always land
    in the same split or fold; ratios and fold sizes count groups. The same inputs and
    --seed give the same table. The output is the manifest, every column kept, plus
    'split' (train/val/test); with --folds also 'fold' (the fold whose held-out part the
    row is; empty and split 'test' for --test-ids rows, split 'train' for the others) and
    with --val-fraction 'val_fold'. Paths are written relative to the output table's folder
    (absolute ones stay absolute), and absolute when the table goes to stdout. Without -o,
    --export-nnunet or --json only the report is printed.

    A defect set laid out one folder per class becomes one multi-class set with
    --class-from-folder: magnetic-tile ('tinyseg split --from-dir magnetic_tile
    --class-from-folder "MT_([^/]+)" --background-folder MT_Free --mask-threshold 128
    --ratios 0.7,0.15,0.15 -o split.parquet', each mask beside its JPEG image) or MVTec AD
    (--from-dir test --masks ground_truth --mask-suffix _mask --class-from-folder '([^/]+)$'
    --background-folder good). No mask is rewritten: the table records each row's class in
    'mask_class' (and the threshold in its metadata), and every later command reads the
    masks so. Soft masks (grey edges) without --mask-threshold are refused.

    Fold N of a fold table ('tinyseg train --fold N', or '--fold N' here) reads: rows with
    fold N validate, the other rows of folds train, test rows stay out; with a 'val_fold'
    column, fold N's rows test and the rows with val_fold N validate.

    A report on stderr gives, per split or fold, the images, groups, pixels per class and
    the imbalance ratio (largest : smallest class present); --json prints it on stdout.
    Tables flow on: 'tinyseg split manifest.parquet --group apple_id --ratios
    0.7,0.15,0.15 -o - | tinyseg classweights - --scheme iscf'.
    """
    console.configure(verbose, quiet)
    if check:
        reject_with_check(locals())
        return _check(manifest, group, no_group, json_)
    if no_group:
        raise typer.BadParameter(
            "goes with --check; to split each sample alone use --group sample_id",
            param_hint="--no-group",
        )
    request = SplitRequest(
        split_mode(ratios, folds, region, from_nnunet, manifest),
        manifest,
        from_dir,
        masks,
        folder_layout(from_dir, masks, class_from_folder, background_folder, mask_suffix),
        mask_suffix,
        mask_threshold,
        Plan(parsed(ratios, parse_ratios, "--ratios"), folds, val_fraction, stratify, seed),
        parsed(region, parse_region, "--region"),
        test_ids,
        group,
        fold,
        from_nnunet,
        not no_counts,
        parse_class_map(classes) if classes else None,
        load_palette(palette) if palette else None,
        ignore_index,
        jobs or default_jobs(),
    )
    check_usage(request, no_counts)
    single_stdout(output=output, json=json_, export_nnunet=export_nnunet)
    check_outputs(
        {"-o": output, "--export-nnunet": export_nnunet},
        force,
        {
            "MANIFEST": manifest, "--from-dir": from_dir, "--masks": masks,
            "--test-ids": test_ids, "--from-nnunet": from_nnunet, "--classes": classes,
            "--palette": palette,
        },
    )  # fmt: skip
    result = make_split(request, console.progress, console.warn)
    if output is not None:
        metadata = {
            "provenance": provenance(result.inputs, console.STATE.argv),
            "classes": result.class_map.to_metadata() if result.class_map else None,
            "ignore_index": ignore_index,
            "split": result.record,
            "masks": result.manifest.metadata.get("masks"),
        }
        write_table(split_table(result.manifest, result.assignment, output), output, metadata)
    if export_nnunet is not None:
        write_splits(splits_of(result.assignment, result.manifest.sample_ids), export_nnunet)
    summaries = summarize(result.assignment, result.keys, result.counts)
    width = 1 if result.counts is None else max(result.counts.shape[1], 1)
    names = result.class_map or ClassMap.numbered(width)
    if json_:
        summary = summary_json(summaries, names, result.record, len(set(result.keys)))
        typer.echo(json.dumps(summary, indent=2))
    if not console.STATE.quiet:
        _print_report(summaries, names, result.record)


def _check(table: str, group: str | None, no_group: bool, json_: bool) -> None:
    result = check_split_table(table, group, no_group)
    if json_:
        typer.echo(json.dumps({"ok": True, **result.__dict__, "no_group": no_group}, indent=2))
    if not console.STATE.quiet:
        by = f"column {result.group_column!r}" if result.group_column else "one per sample"
        grouping = f"{result.groups} groups ({by}); no group crosses splits,"
        if no_group:  # rows as groups cannot leak: say that groups were not looked at
            grouping = "each its own group (--no-group: groups not checked);"
        parts = "; ".join(
            f"{column} " + ", ".join(f"{value}: {n}" for value, n in counts.items())
            for column, counts in result.parts.items()
        )
        console.stderr.print(
            f"OK: {result.rows} rows, {grouping} no sample or image+ROI twice; {parts}",
            markup=False,
        )


def _print_report(summaries: list[PartSummary], class_map: ClassMap, settings: dict) -> None:
    if not summaries:  # a table whose split column is empty
        return
    table = Table(title_justify="left", caption_justify="left")
    counted = summaries[0].pixels is not None
    headers = ["part", "images", "groups"]
    if counted:
        size = summaries[0].pixels.size  # type: ignore[union-attr]
        headers += [console.safe(class_map.name(i)) for i in range(size)]
        headers.append("imbalance")
    for header in headers:
        table.add_column(header, justify="left" if header == "part" else "right")
    for summary in summaries:
        cells = [console.safe(summary.name), str(summary.images), str(summary.groups)]
        if summary.pixels is not None:
            cells += [f"{int(n):,}" for n in summary.pixels]
            ratio = summary.imbalance
            cells.append("—" if ratio is None else f"{ratio:,.1f} : 1")
        table.add_row(*cells)
    by = settings.get("group")
    table.title = (
        f"{settings['mode']} split, grouped by {console.safe(repr(by))}"
        if by
        else f"{settings['mode']} split"
    )
    if counted:
        table.caption = "pixels per class; imbalance = largest : smallest class present"
    console.stderr.print(table)

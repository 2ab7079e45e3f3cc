"""``tinyseg score``: confusion counts and every metric of SPEC §5 (SPEC §4.7)."""

from __future__ import annotations

import json
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

import typer

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import (
    FINITE,
    Classes,
    Force,
    Jobs,
    Json,
    MissingPolicy,
    Output,
    Palette,
    PredClasses,
    PredPalette,
    Quiet,
    Shard,
    Verbose,
    in_range,
    parquet_path,
    parse_shard,
    single_stdout,
)
from tinyseg_cli.commands.score.args import check_modes
from tinyseg_cli.commands.score.objects import (
    Connectivity,
    Match,
    Objects,
    ObjectsOut,
    SizeBins,
    check_object_counts,
    object_options,
    options_metadata,
    write_objects_table,
)
from tinyseg_cli.commands.score.points import (
    CONVENTION,
    MODALITY,
    any_point_input,
    check_map_usage,
    check_point_usage,
    count_points,
    point_inputs,
)
from tinyseg_cli.commands.score.sources import (
    count_maps,
    count_runs,
    final_class_map,
    read_counts_tables,
    warn_unscored,
)
from tinyseg_cli.commands.score.summary import print_summary
from tinyseg_cli.commands.score.sweep_run import (
    PerImageMean,
    SweepOut,
    Thin,
    Thresholds,
    ToleranceOption,
    ToleranceRule,
    all_sweep_tables,
    check_sweep_usage,
    score_sweep,
)
from tinyseg_cli.io.atomic import check_outputs
from tinyseg_cli.io.classmap import parse_class_map
from tinyseg_cli.io.palette import load_palette
from tinyseg_cli.io.provenance import provenance
from tinyseg_cli.io.tables import (
    write_table,
)
from tinyseg_cli.metrics.tolerance import Rule, ThinMode
from tinyseg_cli.runtime.parallel import default_jobs
from tinyseg_cli.scoring.class_maps import predictions_class_map, scored_classes
from tinyseg_cli.scoring.pairs import CountOptions, classes_of_inputs
from tinyseg_cli.scoring.results import (
    ScoreResult,
    result_counts_table,
    result_json,
    result_table,
    score_counts,
)

SWEEP_EXAMPLE = "tinyseg score --truth t --pred p --thresholds 99 --tolerance 2 --sweep-out -"
EXAMPLES = f"""\
Examples:

  tinyseg score --truth masks/ --pred pred/ --classes bg,crack -o scores.parquet

  {SWEEP_EXAMPLE} | tinyseg score --counts -

  tinyseg score --truth masks/ --run a=run_a/pred --run b=run_b/pred --objects --json
"""


class Empty(StrEnum):
    null = "null"
    zero = "0"
    one = "1"


def register(app: typer.Typer) -> None:
    app.command(
        "score",
        epilog=EXAMPLES,
        no_args_is_help=True,
        short_help="Confusion counts and every metric of predictions vs truth.",
    )(score)


def score(
    tables: Annotated[
        list[str] | None,
        typer.Argument(
            help="Counts tables to reduce (with --counts); '-' reads one from stdin.",
            show_default=False,
            metavar="TABLE...",
        ),
    ] = None,
    truth: Annotated[
        str | None,
        typer.Option(
            "--truth",
            help="Ground truth: a folder, glob, manifest (mask column) or one file; 3D: LAS/LAZ "
            "files or a per-point table.",
            metavar="PATH",
        ),
    ] = None,
    pred: Annotated[
        str | None,
        typer.Option(
            "--pred",
            help="Predictions: a folder, glob, manifest (prediction column) or one file; 3D: "
            "LAS/LAZ files, a per-point table or the OUT_DIR of 'tinyseg infer'.",
            metavar="PATH",
        ),
    ] = None,
    counts: Annotated[
        bool,
        typer.Option(
            "--counts",
            help="Reduce the counts tables given as arguments instead of reading maps.",
        ),
    ] = False,
    runs: Annotated[
        list[str] | None,
        typer.Option(
            "--run",
            help="A run to score, repeated: PATH is a predictions folder or a counts table; "
            "each run is scored alone, then the mean and std across runs.",
            metavar="NAME=PATH",
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="With a split manifest as --truth: score only rows of this split.",
            metavar="NAME",
        ),
    ] = None,
    classes: Classes = None,
    palette: Palette = None,
    pred_classes: PredClasses = None,
    pred_palette: PredPalette = None,
    truth_dim: Annotated[
        str | None,
        typer.Option(
            "--truth-dim",
            help="3D: the LAS dimension or table column of the truth labels. Default: "
            "classification (or the dimension voxelize read) for LAS, label for tables.",
            metavar="NAME",
        ),
    ] = None,
    pred_dim: Annotated[
        str | None,
        typer.Option(
            "--pred-dim",
            help="3D: the LAS dimension or table column of the predictions. Default: "
            "prediction (tables without one: label).",
            metavar="NAME",
        ),
    ] = None,
    label_map: Annotated[
        str | None,
        typer.Option(
            "--label-map",
            help="3D, LAS inputs: source code -> class as in voxelize ('CODE:INDEX,…', "
            "'CODE:NAME,…' or a JSON object); unlisted codes become -100: ignored in the "
            "truth, an error in a prediction. Default: the map recorded in the predictions "
            "table (voxelize's), else the codes are the class indices.",
            metavar="MAP|FILE",
        ),
    ] = None,
    ignore_index: Annotated[
        int | None,
        typer.Option(
            "--ignore-index",
            help="Truth label excluded from counts and scores. Default: 255 for 2D masks, -100 "
            "for 3D labels (always excluded in 3D).",
            metavar="INT",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Binary probability maps: foreground where p >= T (floats as they "
            "are, integer maps scaled to their type's range). Default 0.5 for float maps; C×H×W "
            "maps use argmax.",
            metavar="T",
            min=0.0,
            max=1.0,
            callback=FINITE,  # infer's rule
        ),
    ] = None,
    beta: Annotated[
        list[float] | None,
        typer.Option(
            "--beta",
            help="Also report F-beta for this beta > 0 (repeatable); F1 and F2 are always "
            "reported.",
            metavar="B",
            callback=in_range(0, open_low=True),
        ),
    ] = None,
    include_background: Annotated[
        bool | None,
        typer.Option(
            "--include-background/--foreground-only",
            help="Micro and macro averages over every class, or only the foreground (classes "
            "1..K-1). Default: foreground for 2D maps, every class for 3D points.",
            show_default=False,
        ),
    ] = None,
    per_sample: Annotated[
        bool, typer.Option("--per-sample", help="Also report the scores of each sample.")
    ] = False,
    empty: Annotated[
        Empty,
        typer.Option(
            "--empty",
            help="Value of a 0/0 ratio; null ones are left out of macro means.",
        ),
    ] = Empty.null,
    missing: Annotated[
        MissingPolicy,
        typer.Option(
            "--missing",
            help="A sample with only a truth or only a prediction: stop, or skip it.",
        ),
    ] = MissingPolicy.error,
    objects: Objects = False,
    connectivity: Connectivity = None,
    match: Match = None,
    size_bins: SizeBins = None,
    objects_out: ObjectsOut = None,
    thresholds: Thresholds = None,
    tolerance: ToleranceOption = None,
    tolerance_rule: ToleranceRule = Rule.matched,
    thin: Thin = ThinMode.pred,
    sweep_out: SweepOut = None,
    per_image_mean: PerImageMean = False,
    counts_out: Annotated[
        str | None,
        typer.Option(
            "--counts-out",
            help="Write the per-sample confusion counts table here (.parquet; '-': stdout).",
            metavar="PATH",
            callback=parquet_path,
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
    """Score predictions against ground truth.

    Counts TP/FP/FN/TN per sample and class, then reports recall, precision, FPR, IoU, F1,
    F2, F-beta, recall-weighted F1 and IoU, OII, OA and mIoU, micro and macro averaged over
    the foreground classes. Truth and predictions are named options, never positional, so
    a swap cannot silently exchange FP and FN.

    Outputs: --counts-out writes the counts table (sample_id, class_index, tp, fp, fn, tn;
    plus run), which --counts reduces later. -o writes the scores table: one row per class
    and a micro, macro and summary (OA, mIoU) row, told apart by the level column, keyed by
    run, stat (value, mean, std) and sample_id (null for all samples). --json prints
    {classes, micro, macro, oa, miou, n_samples, empty}, or with runs
    {runs: {n_runs, mean, std, by_run}, empty}. The standard deviation across runs is the
    sample one (n - 1).

    Probability maps (float TIFF/NPY, 8/16-bit PNG, the probs/ of 'tinyseg infer --probs')
    are scored as the crack and edge literature scores them with --thresholds: every
    threshold's counts from one pass over each map, then per class ODS (pooled counts, the
    best threshold), OIS (each image at its best) and AP, as the BSDS benchmark computes them.
    --tolerance counts within a distance of the truth, one-to-one (matched, the benchmark's
    rule, with a maximum matching) or each side alone (relaxed), after thinning the
    thresholded prediction: 'tinyseg score --truth masks --pred pred/probs --thresholds 99
    --tolerance 0.0075diag --sweep-out sweep.parquet --json'; 'tinyseg plot sweep.parquet'
    draws the curves. Exact-pixel scores at one threshold (--threshold) and tolerance scores
    are different conventions: compare numbers only within one.

    Class maps travel with the inputs (a manifest's metadata, the predictions.parquet of
    'tinyseg infer'); a prediction whose classes differ from the truth's is refused unless
    --pred-classes names them, and the truth is then scored in the prediction's classes: a
    one-vs-rest fray model against a six-class truth is 'tinyseg score --truth split.parquet
    --pred pred_fray --pred-classes rest,fray' (every other truth class counts as rest).
    --palette maps the truth's colours only; predictions use --pred-palette.

    3D: --truth and --pred may be LAS/LAZ files (a file, folder or glob; a file's scene is
    its stem) or per-point tables (scene, point_index and a label column, such as the
    predictions.parquet of 'tinyseg infer', or its OUT_DIR). Points pair by scene and
    point_index, or by their order in two LAS files of one scene; every truth point needs a
    prediction (--missing skip leaves unpaired points out). Samples are scenes; -100 is
    ignored. OA, mIoU, micro and macro are over all classes (the 3D benchmark convention,
    stated in the output; --foreground-only for micro and macro over classes 1..K-1).
    Example: 'tinyseg score --truth scans/ --pred out/ --label-map 2:ground,6:building'.

    Objects (--objects, 2D maps): the connected components of each foreground class
    (--connectivity 8 by default; truth pixels with the ignore label belong to no object in
    either map) are matched one to one within their class under --match: overlap (any
    shared pixel), iou:T or cover:T (T of the true object covered). Where several
    candidates compete, the matching has the most pairs, then the largest summed IoU. A
    true object with a match is detected, one without is missed; a predicted object
    without one is a false detection. Object recall, precision and F-beta are the pixel
    formulas with TP = detected, FN = missed, FP = false detections; mean_iou averages the
    matched pairs; recall_le4 … recall_gt256 split recall by the true object's area
    (--size-bins). The counts join --counts-out (true_objects, pred_objects,
    matched_objects, matched_iou_sum and per size bin), so shards and runs reduce them;
    JSON adds "objects": {classes, micro, macro}; the scores table adds objects_* columns.

    Worked example (--match overlap): the truth holds a 10-pixel crack A and a 1-pixel
    pore B; the prediction holds two pieces of A, P1 (3 pixels) and P2 (5 pixels), and a
    blob C away from both. A competes for P1 (IoU 0.3) and P2 (IoU 0.5) and takes P2; P1
    and C are false detections and B is missed. So 2 true objects, 3 predicted, 1
    detected: object recall 1/2, precision 1/3, F2 = 5·1 / (5·1 + 4·1 + 2) = 5/11, mean
    IoU 0.5. Under --match iou:0.6 no pair qualifies: recall 0. Under cover:0.5, P2 covers
    half of A: the same as overlap.
    """
    console.configure(verbose, quiet)
    part = parse_shard(shard_)
    single_stdout(
        output=output, counts_out=counts_out, objects_out=objects_out, sweep_out=sweep_out,
        json=json_,
    )  # fmt: skip
    run_list = check_modes(tables or [], truth, pred, counts, runs or [])
    check_sweep_usage(locals())
    check_outputs(
        {
            "-o": output, "--counts-out": counts_out, "--objects-out": objects_out,
            "--sweep-out": sweep_out,
        },
        force,
        {
            "TABLE": tables, "--truth": truth, "--pred": pred,
            "--run": [path for _, path in run_list], "--classes": classes,
            "--palette": palette, "--label-map": label_map, "--pred-classes": pred_classes,
            "--pred-palette": pred_palette,
        },
    )  # fmt: skip
    preds = [pred] if pred else [path for _, path in run_list]
    points = not counts and any_point_input([truth, *preds])
    found_objects = object_options(
        objects, connectivity, match, size_bins, objects_out, points=points, counts=counts
    )
    class_map = parse_class_map(classes) if classes else None
    truth_remap = None
    if points and not counts:
        class_map = class_map or classes_of_inputs([truth, *preds])
    elif not counts:
        class_map, truth_remap = scored_classes(
            class_map or classes_of_inputs([truth]),
            predictions_class_map(preds),
            parse_class_map(pred_classes) if pred_classes else None,
            (str(truth), ", ".join(preds)),
        )
    if thresholds is not None or (counts and all_sweep_tables(tables or [])):
        if points:
            raise typer.BadParameter("probability maps are 2D; 3D scores per-point labels")
        spec = {
            **locals(), "tolerance_rule": tolerance_rule.value, "thin": thin.value,
            "missing": missing.value, "jobs": jobs or default_jobs(), "part": part,
            "ignore_index": 255 if ignore_index is None else ignore_index,
        }  # fmt: skip
        sources = [*(tables or []), *filter(None, [truth, pred])]
        metadata = {"provenance": provenance(sources, console.STATE.argv), "empty": 0}
        palette_ = load_palette(palette) if palette else None
        return score_sweep(spec, class_map, truth_remap, palette_, metadata)
    point_inputs_ = None
    if points:
        check_point_usage(split, palette, threshold, pred_palette, pred_classes)
        point_inputs_, class_map = point_inputs(
            (truth_dim, pred_dim), label_map, class_map, preds, ignore_index,
            missing.value, jobs or default_jobs(), part,
        )  # fmt: skip
        count_one = partial(count_points, inputs=point_inputs_)
        ignore = point_inputs_.options.ignore_index
    else:
        check_map_usage(truth_dim, pred_dim, label_map)
        ignore = 255 if ignore_index is None else ignore_index
        options = CountOptions(
            n_classes=len(class_map) if class_map else None,
            ignore_index=ignore,
            threshold=threshold,
            palette=load_palette(palette) if palette else None,
            pred_palette=load_palette(pred_palette) if pred_palette else None,
            truth_remap=truth_remap,
            objects=found_objects,
        )
        count_one = partial(
            count_maps, options=options, missing=missing.value, split=split,
            jobs=jobs or default_jobs(), part=part,
        )  # fmt: skip
    if counts:
        by_run, found_map, found = read_counts_tables(tables or [])
        points = found.get("modality") == MODALITY
        ignore = found.get("ignore_index", ignore)
    else:
        by_run, found_map = count_runs(truth, pred, run_list, count_one)
    if objects:
        check_object_counts(by_run)
    warn_unscored(by_run, "scene" if points else "sample", "point" if points else "pixel", ignore)
    class_map = final_class_map(class_map or found_map, by_run)
    result = score_counts(
        by_run,
        list(class_map.names),
        include_background=points if include_background is None else include_background,
        betas=tuple(beta or ()),
        empty=empty.value,
        per_sample=per_sample,
    )
    report = point_inputs_.report() if point_inputs_ else {}
    if points:
        report = {"modality": MODALITY, "convention": CONVENTION, **report}
    metadata = {
        "provenance": provenance(
            [*(tables or []), *filter(None, [truth, *preds])], console.STATE.argv
        ),
        "classes": class_map.to_metadata(),
        "empty": empty.value,
        "ignore_index": ignore,
        **{key: report[key] for key in ("modality", "convention") if key in report},
        **(options_metadata(found_objects) if found_objects and not counts else {}),
        **({"objects": found["objects"]} if counts and "objects" in found else {}),
    }
    _write_outputs(result, metadata, report, output, counts_out, json_)
    if objects_out is not None:
        write_objects_table(by_run, objects_out, metadata)
    if not console.STATE.quiet:
        print_summary(result, "scene" if points else "sample", CONVENTION if points else "")


def _write_outputs(
    result: ScoreResult,
    metadata: dict[str, Any],
    report: dict[str, Any],
    output: str | None,
    counts_out: str | None,
    json_: bool,
) -> None:
    """The counts table, the scores table and the JSON summary, as asked."""
    if counts_out is not None:
        write_table(result_counts_table(result), counts_out, metadata)
    if output is not None:
        write_table(result_table(result), output, metadata)
    if json_:
        typer.echo(json.dumps({**result_json(result), **report}, indent=2))

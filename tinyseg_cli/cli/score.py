"""``tinyseg score``: confusion counts and every metric of SPEC §5 (SPEC §4.7)."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
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
    Shard,
    Verbose,
    parse_shard,
    single_stdout,
)
from tinyseg_cli.engine.counts import (
    CountsSet,
    counts_from_matrices,
    counts_from_table,
    merge_counts,
)
from tinyseg_cli.engine.parallel import default_jobs, shard
from tinyseg_cli.engine.report import (
    ScoreResult,
    result_counts_table,
    result_json,
    result_table,
    score_counts,
)
from tinyseg_cli.engine.score import CountOptions, count_pairs, pair_maps
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import check_output
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata, parse_class_map
from tinyseg_cli.io.palette import load_palette
from tinyseg_cli.io.provenance import provenance
from tinyseg_cli.io.sources import resolve_maps
from tinyseg_cli.io.tables import is_table_path, read_table, table_metadata, write_table

EXAMPLES = """\
Examples:

  tinyseg score --truth masks/ --pred pred/ --classes bg,crack -o scores.parquet

  tinyseg score --truth t --pred p --counts-out - | tinyseg score --counts -

  tinyseg score --truth masks/ --run a=run_a/pred --run b=run_b/pred --json
"""


class Empty(StrEnum):
    null = "null"
    zero = "0"
    one = "1"


class MissingPolicy(StrEnum):
    error = "error"
    skip = "skip"


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
            help="Ground truth: a folder, glob, manifest (mask column) or one file.",
            metavar="PATH",
        ),
    ] = None,
    pred: Annotated[
        str | None,
        typer.Option(
            "--pred",
            help="Predictions: a folder, glob, manifest (prediction column) or one file.",
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
    ignore_index: IgnoreIndex = 255,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Binary probability maps: foreground where p >= T (floats as they "
            "are, integer maps scaled to their type's range). Default 0.5 for float maps; C×H×W "
            "maps use argmax.",
            metavar="T",
        ),
    ] = None,
    beta: Annotated[
        list[float] | None,
        typer.Option(
            "--beta",
            help="Also report F-beta for this beta (repeatable); F1 and F2 are always reported.",
            metavar="B",
        ),
    ] = None,
    include_background: Annotated[
        bool,
        typer.Option(
            "--include-background",
            help="Average over every class, not only the foreground (classes 1..K-1).",
        ),
    ] = False,
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
    counts_out: Annotated[
        str | None,
        typer.Option(
            "--counts-out",
            help="Write the per-sample confusion counts table here ('-': stdout).",
            metavar="PATH",
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
    """
    console.configure(verbose, quiet)
    shard_index, shard_count = parse_shard(shard_)
    single_stdout(output=output, counts_out=counts_out, json=json_)
    _check_modes(tables or [], truth, pred, counts, runs or [])
    for path in (output, counts_out):
        if path is not None:
            check_output(path, force)
    class_map = parse_class_map(classes) if classes else None
    if class_map is None and not counts:
        class_map = classes_of_inputs([truth, pred, *(path for _, path in _parse_runs(runs or []))])
    options = CountOptions(
        n_classes=len(class_map) if class_map else None,
        ignore_index=ignore_index,
        threshold=threshold,
        palette=load_palette(palette) if palette else None,
    )
    map_args = {
        "options": options,
        "missing": missing.value,
        "split": split,
        "jobs": jobs or default_jobs(),
        "part": (shard_index, shard_count),
    }
    inputs: list[str] = []
    if counts:
        by_run, found_map = _read_counts_tables(tables or [])
        inputs += tables or []
    elif runs:
        by_run, found_map = {}, None
        for name, path in _parse_runs(runs):
            if is_table_path(path) and Path(path).is_file():
                table_runs, found_map = _read_counts_tables([path])
                if len(table_runs) != 1:
                    raise TinysegError(f"{path}: --run {name} needs a counts table of one run")
                by_run[name] = next(iter(table_runs.values()))
            else:
                by_run[name] = _count_maps(truth, path, **map_args)  # type: ignore[arg-type]
            inputs.append(path)
        inputs += [truth] if truth else []
    else:
        by_run = {None: _count_maps(truth, pred, **map_args)}  # type: ignore[arg-type]
        found_map = None
        inputs += [truth, pred]  # type: ignore[list-item]
    class_map = class_map or found_map
    n_classes = max([len(class_map) if class_map else 0, *(c.n_classes for c in by_run.values())])
    if class_map and n_classes > len(class_map):
        raise TinysegError(
            f"counts hold {n_classes} classes but the class map names {len(class_map)}"
        )
    class_map = class_map or ClassMap.numbered(n_classes)
    result = score_counts(
        by_run,
        list(class_map.names),
        include_background=include_background,
        betas=tuple(beta or ()),
        empty=empty.value,
        per_sample=per_sample,
    )
    metadata = {
        "provenance": provenance(inputs, console.STATE.argv),
        "classes": class_map.to_metadata(),
        "empty": empty.value,
        "ignore_index": ignore_index,
    }
    if counts_out is not None:
        write_table(result_counts_table(result), counts_out, metadata)
    if output is not None:
        write_table(result_table(result), output, metadata)
    if json_:
        typer.echo(json.dumps(result_json(result), indent=2))
    if not console.STATE.quiet:
        _print_summary(result)


def _check_modes(
    tables: list[str], truth: str | None, pred: str | None, counts: bool, runs: list[str]
) -> None:
    if counts:
        if not tables:
            raise typer.BadParameter("--counts needs at least one counts table ('-' for stdin)")
        if truth or pred or runs:
            raise typer.BadParameter(
                "--counts reduces tables; it takes no --truth, --pred or --run"
            )
        return
    if tables:
        raise typer.BadParameter(
            f"unexpected argument {tables[0]!r}: maps are given with --truth and --pred, and "
            "counts tables need --counts"
        )
    if runs:
        if pred:
            raise typer.BadParameter("--run replaces --pred (use --run NAME=PREDICTIONS)")
        return
    if not truth or not pred:
        raise typer.BadParameter("give --truth and --pred, or --run NAME=PATH, or --counts TABLE")


def classes_of_inputs(specs: list[str | None]) -> ClassMap | None:
    """The class map that travels with the inputs: a manifest's metadata, or the
    ``predictions.parquet`` that ``tinyseg infer`` writes beside its label maps."""
    for spec in specs:
        if not spec or spec == "-":
            continue  # stdin can be read only once
        path = Path(spec)
        table_path = path / "predictions.parquet" if path.is_dir() else path
        if is_table_path(table_path) and table_path.is_file():
            found = class_map_from_metadata(table_metadata(read_table(table_path)))
            if found is not None:
                return found
    return None


def _parse_runs(runs: list[str]) -> list[tuple[str, str]]:
    parsed = []
    for value in runs:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"{value!r} is not NAME=PATH", param_hint="--run")
        parsed.append((name, path))
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise typer.BadParameter("run names must differ", param_hint="--run")
    return parsed


def _read_counts_tables(paths: list[str]) -> tuple[dict[str | None, CountsSet], ClassMap | None]:
    gathered: dict[str | None, list[CountsSet]] = {}
    class_map = None
    for path in paths:
        table = read_table(path)
        class_map = class_map or class_map_from_metadata(table_metadata(table))
        source = "<stdin>" if path == "-" else path
        for run, values in counts_from_table(table, source).items():
            gathered.setdefault(run, []).append(values)
    return {
        run: merge_counts(sets, f"run {run}" if run else "counts") for run, sets in gathered.items()
    }, class_map


def _count_maps(
    truth: str | None,
    pred: str,
    *,
    options: CountOptions,
    missing: str,
    split: str | None,
    jobs: int,
    part: tuple[int, int],
) -> CountsSet:
    if truth is None:
        raise typer.BadParameter("--run with a predictions folder needs --truth")
    single_files = all(Path(p).is_file() and not is_table_path(p) for p in (truth, pred))
    pairing = pair_maps(
        resolve_maps(truth, columns=("mask",), split=split),
        resolve_maps(pred, columns=("prediction", "mask")),
        missing,  # type: ignore[arg-type]
        single_files,
    )
    for side, names in (("prediction", pairing.truth_only), ("ground truth", pairing.pred_only)):
        if names:
            console.warn(f"skipped {len(names)} sample(s) with no {side}: {', '.join(names[:5])}")
    pairs = shard(pairing.pairs, *part)
    if not pairs:
        raise TinysegError(f"shard {part[0]}/{part[1]} holds no sample")
    with console.progress(f"scoring {pred}", len(pairs)) as advance:
        matrices = count_pairs(pairs, options, jobs=jobs, on_done=advance)
    return counts_from_matrices(matrices, options.n_classes)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _print_summary(result: ScoreResult) -> None:
    """Metrics as rows, classes as columns: narrow enough for a terminal with few classes."""
    names = result.class_names
    averaged = set(next(iter(result.summaries.values())).averaged)
    headers = [name if i in averaged else f"{name}*" for i, name in enumerate(names)]
    table = Table(title_justify="left", caption_justify="left")
    table.add_column("")
    for header in [*headers, "micro", "macro"]:
        table.add_column(header, justify="right")
    if result.has_runs:
        mean, std = result.run_statistics
        table.title = f"mean ± std over {len(result.counts)} runs"
        for metric in result.metrics:
            keys = [*(f"class.{n}.{metric}" for n in names), f"micro.{metric}", f"macro.{metric}"]
            table.add_row(metric, *(_fmt(mean[k]) for k in keys))
            table.add_row("  ± std", *(_fmt(std[k]) for k in keys), style="dim")
        table.caption = (
            f"OA {_fmt(mean['oa'])} ± {_fmt(std['oa'])}   "
            f"mIoU {_fmt(mean['miou'])} ± {_fmt(std['miou'])}"
        )
    else:
        summary = result.summaries[None]
        table.title = f"scores over {summary.n_samples} sample(s)"
        chosen = summary.averaged
        for count in ("tp", "fp", "fn"):
            values = summary.counts[count]
            table.add_row(
                count.upper(), *(str(int(v)) for v in values), str(int(values[chosen].sum())), ""
            )
        for metric in result.metrics:
            table.add_row(
                metric,
                *(_fmt(v) for v in summary.per_class[metric]),
                _fmt(summary.micro[metric]),
                _fmt(summary.macro[metric]),
            )
        table.caption = f"OA {_fmt(summary.oa)}   mIoU {_fmt(summary.miou)}"
    table.caption += f"   0/0 -> {result.empty}"
    if len(averaged) < len(names):
        table.caption += "   * not averaged"
    console.stderr.print(table)

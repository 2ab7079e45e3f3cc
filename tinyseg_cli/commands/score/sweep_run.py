"""``score --thresholds`` end to end: its options and their checks, the sweep of the maps
(or the thresholds tables given to --counts), the outputs and the table on stderr."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.cli.options import parquet_path
from tinyseg_cli.commands.score.sweeps import (
    SweepOptions,
    parse_tolerance,
    read_sweep_tables,
    summary_json,
    summary_table,
    sweep_maps,
    sweep_pairs,
)
from tinyseg_cli.errors import UsageError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.palette import Palette
from tinyseg_cli.io.tables import file_schema, read_table, write_table
from tinyseg_cli.metrics.sweep import SweepSummary, parse_thresholds
from tinyseg_cli.metrics.tolerance import Rule, ThinMode
from tinyseg_cli.scoring.sweep_tables import SweepSet, is_sweep_table, sweep_table

# -- options --------------------------------------------------------------------------------

SWEEP = "Threshold sweeps (probability maps)"
Thresholds = Annotated[
    str | None,
    typer.Option(
        "--thresholds",
        help="Sweep probability maps over thresholds: N evenly spaced in (0, 1) (the BSDS "
        "benchmark uses 99) or t1,t2,…. Reports ODS, OIS and AP per class.",
        metavar="N|T1,T2,…",
        rich_help_panel=SWEEP,
    ),
]
ToleranceOption = Annotated[
    str | None,
    typer.Option(
        "--tolerance",
        help="Count a prediction right within D of the truth: pixels (2, as DeepCrack) or "
        "a share of the image diagonal (0.0075diag, as the BSDS benchmark).",
        metavar="D|Fdiag",
        rich_help_panel=SWEEP,
    ),
]


ToleranceRule = Annotated[
    Rule,
    typer.Option(
        "--tolerance-rule",
        help="matched: one-to-one pairs within D (a maximum matching, as the benchmark's "
        "correspondPixels); relaxed: each side on its own (a predicted pixel with a truth "
        "pixel within D is right; a truth pixel with a predicted one within D is found).",
        rich_help_panel=SWEEP,
    ),
]
Thin = Annotated[
    ThinMode,
    typer.Option(
        "--thin",
        help="With --tolerance: thin the thresholded prediction (pred, the benchmark's "
        "default), prediction and truth (both), or neither.",
        rich_help_panel=SWEEP,
    ),
]
SweepOut = Annotated[
    str | None,
    typer.Option(
        "--sweep-out",
        help="Write the thresholds table here (.parquet; '-': stdout): per sample, class "
        "and threshold tp, fp, fn, tn, or with --tolerance the benchmark's cnt_r, sum_r, "
        "cnt_p, sum_p; additive, 'score --counts' reads it.",
        metavar="PATH",
        callback=parquet_path,
        rich_help_panel=SWEEP,
    ),
]
PerImageMean = Annotated[
    bool,
    typer.Option(
        "--per-image-mean",
        help="Also report the best mean of per-image F over the thresholds: what part of the "
        "crack literature calls ODS (not comparable with the pooled ODS).",
        rich_help_panel=SWEEP,
    ),
]


def check_sweep_usage(given: dict[str, Any]) -> None:
    """Sweep options that need --thresholds, and modes a sweep does not combine with."""
    if given["thresholds"] is None:
        for name in ("tolerance", "sweep_out"):
            if given[name] is not None:
                raise UsageError(f"--{name.replace('_', '-')} needs --thresholds")
        if given["per_image_mean"]:
            raise UsageError("--per-image-mean needs --thresholds")
        return
    for name in ("runs", "objects", "counts_out", "threshold"):
        if given[name]:
            flag = {"runs": "--run", "counts_out": "--counts-out"}.get(
                name, "--" + name.replace("_", "-")
            )
            raise UsageError(f"{flag} does not go with --thresholds (score each sweep alone)")


def run_sweep(
    swept: SweepSet,
    class_map: ClassMap,
    metadata: dict[str, Any],
    *,
    output: str | None,
    sweep_out: str | None,
    json_: bool,
    per_image_mean: bool,
) -> None:
    """Write what a sweep was asked for: the thresholds table, the scores table, the JSON
    summary, and the per-class table on stderr."""
    found = swept.summaries(per_image_mean)
    n_samples = len({sample for sample, _ in swept.counts})
    if sweep_out is not None:
        write_table(sweep_table(swept, class_map), sweep_out, metadata)
    if output is not None:
        write_table(summary_table(found, class_map), output, metadata)
    summary = summary_json(found, class_map, metadata.get("sweep") or {}, n_samples)
    if json_:
        typer.echo(json.dumps(summary, indent=2))
    if not console.STATE.quiet:
        _print_summary(found, class_map, summary["sweep"], n_samples)


def _print_summary(
    found: dict[int, SweepSummary], class_map: ClassMap, record: dict[str, Any], n_samples: int
) -> None:
    table = Table(title_justify="left", caption_justify="left")
    for header in ("class", "ODS", "at t", "P", "R", "OIS", "AP"):
        table.add_column(header, justify="left" if header == "class" else "right")
    for class_index, summary in found.items():
        ods = summary.ods
        table.add_row(
            console.safe(class_map.name(class_index)),
            f"{ods.f:.4f}", f"{ods.threshold:.3f}", f"{ods.precision:.4f}", f"{ods.recall:.4f}",
            f"{summary.ois.f:.4f}", f"{summary.ap:.4f}",
        )  # fmt: skip
    within = record.get("tolerance")
    how = (
        "exact pixels"
        if within is None
        else (f"within {within} px" if not str(within).endswith("diag") else f"within {within}")
        + ("" if within is None else f", {record.get('rule')}, thin {record.get('thin')}")
    )
    table.title = (
        f"{len(record.get('thresholds', []))} thresholds over {n_samples} sample(s), {how}"
    )
    table.caption = "ODS: pooled counts, best threshold; OIS: each image at its best; AP: BSDS"
    console.stderr.print(table)


def all_sweep_tables(paths: list[str]) -> bool:
    """Whether the TABLEs of --counts are thresholds tables (a file's schema is enough;
    stdin is read whole, and kept for the reading that follows)."""
    return bool(paths) and all(
        is_sweep_table(read_table(path).column_names if path == "-" else file_schema(path).names)
        for path in paths
    )


def score_sweep(
    spec: dict[str, Any],
    class_map: ClassMap | None,
    truth_remap: np.ndarray | None,
    palette: Palette | None,
    metadata: dict[str, Any],
) -> None:
    """``score --thresholds`` (or ``score --counts`` of thresholds tables) end to end;
    ``spec`` holds the command's parsed options by name."""
    if spec["counts"]:
        if spec["thresholds"] is not None:
            raise UsageError("--counts reads the thresholds from its tables; drop --thresholds")
        swept, record, found_map = read_sweep_tables(spec["tables"])
        class_map = class_map or found_map
    else:
        try:
            thresholds = parse_thresholds(spec["thresholds"])
            tolerance = parse_tolerance(spec["tolerance"]) if spec["tolerance"] else None
        except ValueError as error:
            raise UsageError(str(error)) from None
        options = SweepOptions(
            thresholds,
            tolerance,
            spec["tolerance_rule"],
            spec["thin"],
            spec["ignore_index"],
            palette,
            truth_remap,
        )
        pairs = sweep_pairs(
            spec["truth"], spec["pred"], missing=spec["missing"], split=spec["split"],
            part=spec["part"], warn=console.warn,
        )  # fmt: skip
        with console.progress(f"sweeping {spec['pred']}", len(pairs)) as advance:
            swept = sweep_maps(pairs, options, spec["jobs"], advance, spec["pred"])
        record = options.record()
    names = class_map or ClassMap.numbered(max(swept.classes()) + 1)
    metadata = {**metadata, "classes": names.to_metadata(), "sweep": record}
    run_sweep(
        swept, names, metadata, output=spec["output"], sweep_out=spec["sweep_out"],
        json_=spec["json_"], per_image_mean=spec["per_image_mean"],
    )  # fmt: skip

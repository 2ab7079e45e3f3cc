"""Markdown tables of tinyseg's own tables (``tinyseg report``): scores tables side by side,
one row per table with mean ± std over its runs, and tune-oii searches step by step. Pure:
strings in, strings out; the readers are those of ``tinyseg plot``
(:mod:`tinyseg_cli.plots.tables`, :mod:`tinyseg_cli.plots.curves`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.plots.curves import read_runs, read_tune
from tinyseg_cli.plots.tables import SUMMARY, SUMMARY_METRICS, Source, floats
from tinyseg_cli.text import printable

NULL = "–"  # a score that is undefined (0/0) or absent
TUNE_METRICS = ("oii", "iou", "precision")  # the output-imbalance study's columns per step


@dataclass(frozen=True)
class ReportOptions:
    """What ``tinyseg report`` lists: score columns, classes, digits and a title."""

    metrics: list[str]
    digits: int = 3
    title: str | None = None
    each_run: bool = False  # runs: also one row per run, before the table's mean ± std


def escape_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell: pipes escaped, line breaks as spaces, and
    control characters (a terminal escape in a class name) shown escaped, never written."""
    cell = " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())
    return printable(cell)


MAX_DIGITS = 6


def number(value: float, digits: int) -> str:
    """A score rounded to ``digits`` decimals, or to more where that would print a value
    short of 1 as 1 (OA 0.9996 as 1.000) or one above 0 as 0; ``–`` when undefined."""
    if math.isnan(value):
        return NULL
    while digits < MAX_DIGITS and round(value, digits) in (0.0, 1.0) and value not in (0, 1):
        digits += 1
    return f"{value:.{digits}f}"


def mean_std(mean: float, std: float, digits: int) -> str:
    """``mean ± std``, or the mean alone where the spread is undefined (fewer than 2 runs)."""
    if math.isnan(mean) or math.isnan(std):
        return number(mean, digits)
    return f"{number(mean, digits)} ± {number(std, digits)}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A GitHub-flavoured Markdown table; the first ``left`` columns left-aligned, the rest
    (numbers) right-aligned. Cells are escaped here."""
    rule = [":---" if n < left else "---:" for n in range(len(header))]
    lines = [header, rule, *rows]
    return "\n".join(
        "| " + " | ".join(cell if line is rule else escape_cell(cell) for cell in line) + " |"
        for line in lines
    )


def runs_markdown(sources: list[Source], series: list[list[str]], options: ReportOptions) -> str:
    """One row per scores table: its label, its number of runs, then per metric and class
    the mean ± std over its runs (ddof = 1, null scores left out, as ``score --run``); OA and
    mIoU (the summary row) take one column each."""
    names = list(dict.fromkeys(key for chosen in series for key in chosen))
    header = ["table", "runs"]
    for metric in options.metrics:
        header += [metric] if metric in SUMMARY_METRICS else [f"{metric} {n}" for n in names]
    rows = []
    for source, chosen in zip(sources, series, strict=True):
        # one read: the chosen classes' rows and the summary row (OA, mIoU) of every run
        scores = read_runs([source], [[*chosen, SUMMARY]], options.metrics)
        where = {name: column for column, name in enumerate(scores.series)}
        columns = {
            metric: [where.get(SUMMARY, -1)]
            if metric in SUMMARY_METRICS
            else [where.get(name, -1) for name in names]
            for metric in options.metrics
        }
        if options.each_run and len(scores.runs) > 1:
            for run_index, run in enumerate(scores.runs):
                row = [f"{source.label}: {run}" if len(sources) > 1 else run, "1"]
                for metric in options.metrics:
                    values = scores.values[metric][run_index]
                    row += [
                        number(float(values[column]), options.digits) if column >= 0 else NULL
                        for column in columns[metric]
                    ]
                rows.append(row)
        row = [source.label, str(len(scores.runs))]
        for metric in options.metrics:
            means, stds = scores.mean(metric), scores.std(metric)
            row += [
                mean_std(float(means[column]), float(stds[column]), options.digits)
                if column >= 0
                else NULL
                for column in columns[metric]
            ]
        rows.append(row)
    return markdown_table(header, rows, left=1)


def best_table(sources: list[Source], series: list[list[str]], metric: str) -> str:
    """The label of the table whose mean ``metric`` (over its runs) is highest for the first
    chosen class (the summary row for OA and mIoU); the first such table on a tie. An error
    when no table has the score."""
    best: tuple[float, str] | None = None
    for source, chosen in zip(sources, series, strict=True):
        wanted = [SUMMARY] if metric in SUMMARY_METRICS else chosen[:1]
        scores = read_runs([source], [wanted], [metric])
        mean = float(scores.mean(metric)[0]) if scores.series else math.nan
        if not math.isnan(mean) and (best is None or mean > best[0]):
            best = (mean, source.label)
    if best is None:
        name = series[0][0] if series and series[0] else "the class"
        raise TinysegError(f"--best: no table has a defined {metric} of {name}")
    return best[1]


def tune_markdown(source: Source, options: ReportOptions) -> str:
    """The steps of one tune-oii search: the searched value, the scores, whether its OII is
    in the target band; then the number of trainings."""
    search = read_tune(source)
    metrics = [m for m in options.metrics if m in source.table.column_names] or ["oii"]
    order = np.argsort(floats(source, "step"), kind="stable")
    columns = {metric: floats(source, metric)[order] for metric in metrics}
    header = ["step", search.param, *metrics]
    band = search.target
    if band is not None:
        header.append(f"in [{band[0]:g}, {band[1]:g}]")
    rows = []
    for n, step in enumerate(search.steps):
        row = [str(int(step)), f"{search.values[n]:.{options.digits + 1}g}"]
        row += [number(float(columns[metric][n]), options.digits) for metric in metrics]
        if band is not None:
            oii = float(search.oii[n])
            row.append(NULL if math.isnan(oii) else ("yes" if band[0] <= oii <= band[1] else "no"))
        rows.append(row)
    table = markdown_table(header, rows, left=0)
    return f"{table}\n\n{len(rows)} training(s)."


def networks_markdown(summaries: list[tuple[str, dict[str, Any]]], title: str | None = None) -> str:
    """One row per ``train --dry-run --json`` summary: the network, its input, parameters in
    millions (4 decimals) and FLOPs in billions (1 decimal, 2 per multiply-add), the units
    and precision of the studies' tables."""
    header = ["network", "input", "parameters (M)", "FLOPs (B)"]
    rows = []
    for label, summary in summaries:
        size = summary.get("input_size")
        flops = summary.get("flops")
        rows.append(
            [
                label,
                "×".join(str(side) for side in size) if isinstance(size, list) else NULL,
                f"{int(summary['parameters']) / 1e6:.4f}",
                f"{int(flops) / 1e9:.1f}" if isinstance(flops, int) else NULL,
            ]
        )
    heading = [f"## {escape_cell(title)}"] if title else []
    return "\n\n".join([*heading, markdown_table(header, rows, left=2)]) + "\n"


def report_markdown(
    kind: str, sources: list[Source], series: list[list[str]], options: ReportOptions
) -> str:
    """The whole report: an optional title, then the table(s) of ``kind`` (runs or tune)."""
    parts = [f"## {escape_cell(options.title)}"] if options.title else []
    if kind == "tune":
        for source in sources:
            heading = f"### {escape_cell(source.label)}" if len(sources) > 1 else None
            parts += [*filter(None, [heading]), tune_markdown(source, options)]
    else:
        parts.append(runs_markdown(sources, series, options))
    return "\n\n".join(parts) + "\n"

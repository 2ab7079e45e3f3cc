"""The human-readable summary ``tinyseg score`` prints on stderr."""

from __future__ import annotations

import math

from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.metrics.object_scores import COUNT_KEYS
from tinyseg_cli.scoring.results import ScoreResult


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def print_summary(result: ScoreResult, unit: str = "sample", note: str = "") -> None:
    """Metrics as rows, classes as columns: narrow enough for a terminal with few classes."""
    names = result.class_names
    averaged = set(next(iter(result.summaries.values())).averaged)
    shown = [console.safe(name) for name in names]  # class names come from input
    headers = [name if i in averaged else f"{name}*" for i, name in enumerate(shown)]
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
        table.title = f"scores over {summary.n_samples} {unit}(s)"
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
    if note:
        table.caption += f"\n{note}"
    console.stderr.print(table)
    summary = next(iter(result.summaries.values()))
    if summary.objects is not None:
        print_objects(result)


def print_objects(result: ScoreResult) -> None:
    """The object scores: counts and metrics as rows, foreground classes as columns."""
    first = next(iter(result.summaries.values())).objects
    assert first is not None
    names = list(first["classes"])
    metrics = [key for key, value in first["micro"].items() if key not in COUNT_KEYS]
    table = Table(title_justify="left")
    table.add_column("objects")
    for header in [*(console.safe(name) for name in names), "micro", "macro"]:
        table.add_column(header, justify="right")
    if result.has_runs:
        mean, std = result.run_statistics
        table.title = f"objects: mean ± std over {len(result.counts)} runs"
        for metric in metrics:
            keys = [f"objects.class.{n}.{metric}" for n in names]
            keys += [f"objects.micro.{metric}", f"objects.macro.{metric}"]
            table.add_row(metric, *(_fmt(mean.get(k)) for k in keys))
            table.add_row("  ± std", *(_fmt(std.get(k)) for k in keys), style="dim")
    else:
        objects = result.summaries[None].objects
        assert objects is not None
        table.title = "objects"
        for key in COUNT_KEYS:
            values = [objects["classes"][n][key] for n in names]
            table.add_row(key.replace("_", " "), *map(str, values), str(objects["micro"][key]), "")
        for metric in metrics:
            values = [objects["classes"][n][metric] for n in names]
            table.add_row(
                metric,
                *(_fmt(v) for v in values),
                _fmt(objects["micro"][metric]),
                _fmt(objects["macro"][metric]),
            )
    console.stderr.print(table)

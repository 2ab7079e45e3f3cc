"""From tables of a known kind to a figure file: choose the series and scores, read them,
draw and write (SPEC §4.9). matplotlib is imported inside these functions, so only the plot
command pays for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinyseg_cli.errors import UsageError
from tinyseg_cli.plots import curves, tables
from tinyseg_cli.plots.tables import KIND_NAMES, Kind, Source

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")  # by the suffix of the output file


@dataclass(frozen=True)
class PlotOptions:
    """What to draw of the tables, and how: ``metrics`` and ``classes`` as given (None:
    the defaults), the tune band to shade instead of the recorded one, a title, PNG dpi."""

    metrics: list[str] | None = None
    classes: list[str] | None = None
    target: tuple[float, float] | None = None
    title: str | None = None
    dpi: int = 150


def check_options(kind: Kind, options: PlotOptions) -> None:
    """Usage errors for options the kind does not draw, before any table is read further."""
    if options.metrics is not None and kind in ("scatter", "tune", "pr"):
        raise UsageError(f"--metric applies to --kind log and runs; {kind} draws fixed scores")
    if options.classes is not None and kind == "tune":
        raise UsageError("--classes applies to logs and scores tables, not to tune-oii logs")
    if options.target is not None and kind != "tune":
        raise UsageError(f"--target applies to tune-oii logs, not to {KIND_NAMES[kind]}")


def build_figure(kind: Kind, sources: list[Source], options: PlotOptions) -> Figure:
    """The matplotlib figure of ``sources`` read as ``kind`` (call inside ``figures.style()``
    for tinyseg's look; :func:`plot_tables` does)."""
    from tinyseg_cli.plots import figures

    check_options(kind, options)
    if kind == "pr":
        found = [c for source in sources for c in curves.read_pr(source, options.classes)]
        return figures.pr_figure(found, options.title)
    if kind == "tune":
        searches = [curves.read_tune(source, options.target) for source in sources]
        return figures.tune_figure(searches, options.title)
    series = tables.choose_series(sources, options.classes)
    if kind == "scatter":
        scores = curves.read_runs(sources, series, list(tables.SCATTER_METRICS))
        return figures.scatter_figure(scores, options.title)
    metrics = tables.choose_metrics(sources, options.metrics)
    if kind == "runs":
        return figures.runs_figure(
            curves.read_runs(sources, series, metrics), metrics, options.title
        )
    logs = [
        curves.read_log(source, names, metrics)
        for source, names in zip(sources, series, strict=True)
    ]
    return figures.log_figure(logs, metrics, options.title)


def plot_tables(
    kind: Kind,
    sources: list[Source],
    options: PlotOptions,
    output: str | Path,
    description: str,
) -> None:
    """Draw ``sources`` as ``kind`` and write the figure to ``output`` atomically, in the
    format its suffix names; ``description`` (the command line) goes into its metadata."""
    from tinyseg_cli.plots import figures

    with figures.style():
        figure = build_figure(kind, sources, options)
        fmt = Path(output).suffix.lower().lstrip(".")
        figures.save_figure(figure, output, fmt, options.dpi, description)

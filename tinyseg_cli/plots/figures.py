"""Figures of the plot kinds (SPEC §4.9), drawn with matplotlib's object API on the Agg
canvas, without pyplot's global state, and saved atomically.

Every drawn series carries a gid (``loss/<label>``, ``f2/<series>``, ``run/<metric>/<run>``,
``point/<panel>/<run>/<series>``, ``band/<k>``…), which SVG output keeps as the ``id`` of its
group, so a figure can be checked or restyled by what it shows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from tinyseg_cli import __version__
from tinyseg_cli.io.atomic import atomic_path
from tinyseg_cli.plots.curves import PrCurve, RunScores, TrainingLog, TuneSearch

# Fixed ids and real text in SVG: the same tables give the same file, and its labels are
# text a browser can search and a test can read.
STYLE = {
    "svg.hashsalt": "tinyseg",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
# Okabe-Ito: told apart by readers with any common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", ":", "-.")
TITLES = {
    "f1": "F1",
    "f2": "F2",
    "iou": "IoU",
    "oii": "OII",
    "fpr": "FPR",
    "recall": "recall (TPR)",
    "precision": "precision",
    "rw_f1": "recall-weighted F1",
    "rw_iou": "recall-weighted IoU",
}
BAND_COLOUR = "#009E73"


@contextlib.contextmanager
def style() -> Iterator[None]:
    """matplotlib settings of every tinyseg figure, for the time it is built and saved."""
    with matplotlib.rc_context(STYLE):
        yield


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def title_of(metric: str) -> str:
    return TITLES.get(metric, metric)


def _figure(rows: int, columns: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=columns == 1 and rows > 1)
    return figure, list(axes.flat)


def _bounded(axes: Axes, metric: str) -> None:
    """Scores in [0, 1] on a fixed scale; the OII in [-1, 1] with its zero line."""
    if metric in ("oii", "objects_oii"):
        axes.axhline(0.0, color="0.5", linewidth=0.8)
        axes.set_ylim(-1.05, 1.05)
    elif metric in TITLES:
        axes.set_ylim(-0.02, 1.02)


def _legend(axes: Axes, **options: object) -> None:
    if axes.get_legend_handles_labels()[0] or options.get("handles"):
        axes.legend(fontsize="small", **options)  # type: ignore[arg-type]


def log_figure(logs: list[TrainingLog], metrics: list[str], title: str | None = None) -> Figure:
    """Loss, learning rate and one panel per validation metric, over steps; one colour per
    log, and per series (class, micro, macro) a colour when one log is drawn, else a dash."""
    panels = ["loss", "lr", *(metrics if any(log.val for log in logs) else [])]
    figure, axes = _figure(len(panels), 1, 7.0, 1.3 + 1.8 * len(panels))
    several = len(logs) > 1
    for number, log in enumerate(logs):
        for panel, name, values in ((axes[0], "loss", log.loss), (axes[1], "lr", log.lr)):
            gid = f"{name}/{log.label}"
            panel.plot(log.steps, values, color=colour(number), label=log.label, gid=gid)
        for order, (series, scores) in enumerate(log.val.items()):
            label = f"{log.label} {series}" if several else series
            line = {"color": colour(number), "linestyle": DASHES[order % len(DASHES)]}
            if not several:
                line = {"color": colour(order), "linestyle": "-"}
            for panel, metric in zip(axes[2:], panels[2:], strict=True):
                panel.plot(
                    log.val_steps[series], scores[metric], marker="o", markersize=3,
                    label=label, gid=f"{metric}/{label}", **line,
                )  # fmt: skip
    for panel, name in zip(axes, panels, strict=True):
        panel.set_ylabel({"loss": "training loss", "lr": "learning rate"}.get(name, title_of(name)))
        if name not in ("loss", "lr"):
            _bounded(panel, name)
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes[-1].set_xlabel("step")
    if several:
        _legend(axes[0])
    if len(panels) > 2:
        _legend(axes[2], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        figure.suptitle(title)
    return figure


def runs_figure(scores: RunScores, metrics: list[str], title: str | None = None) -> Figure:
    """Per metric a panel: per series (class, micro, macro) a bar of the mean across runs
    with a ± std error bar, and each run's value as a dot beside the others."""
    width = max(3.2, 0.9 * len(scores.series) + 1.2)
    figure, axes = _figure(1, len(metrics), width * len(metrics) + 1.5, 3.4)
    x = np.arange(len(scores.series), dtype=np.float64)
    runs = len(scores.runs)
    offsets = np.linspace(-0.25, 0.25, runs) if runs > 1 else np.zeros(1)
    for panel, metric in zip(axes, metrics, strict=True):
        mean, std = scores.mean(metric), scores.std(metric)
        shown = ~np.isnan(mean)
        bars = panel.bar(
            x[shown], mean[shown], width=0.7, color="0.88", edgecolor="0.45", label="mean ± std"
        )
        for bar, name in zip(bars, np.array(scores.series, dtype=object)[shown], strict=True):
            bar.set_gid(f"mean/{metric}/{name}")
        spread = shown & ~np.isnan(std)
        if spread.any():
            whiskers = panel.errorbar(
                x[spread], mean[spread], yerr=std[spread], fmt="none", ecolor="0.1", capsize=4
            )
            for collection in whiskers.lines[2]:
                collection.set_gid(f"std/{metric}")
        for number, run in enumerate(scores.runs):
            panel.plot(
                x + offsets[number], scores.values[metric][number], linestyle="none",
                marker=MARKERS[number % len(MARKERS)], color=colour(number), markersize=5,
                label=run, gid=f"run/{metric}/{run}",
            )  # fmt: skip
        panel.set_xticks(x, scores.series)
        panel.set_title(title_of(metric))
        _bounded(panel, metric)
    _legend(axes[-1], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        figure.suptitle(title)
    return figure


SCATTERS = (("fpr", "recall"), ("recall", "precision"))  # (x, y) of each panel


def scatter_figure(scores: RunScores, title: str | None = None) -> Figure:
    """TPR against FPR and precision against recall: one point per run (colour) and series
    (marker), as the battery-foil study compares runs (its Fig. 4.1)."""
    figure, axes = _figure(1, 2, 9.5, 4.0)
    for panel, (x_name, y_name) in zip(axes, SCATTERS, strict=True):
        for number, run in enumerate(scores.runs):
            for order, series in enumerate(scores.series):
                x = scores.values[x_name][number, order]
                y = scores.values[y_name][number, order]
                if np.isnan(x) or np.isnan(y):
                    continue  # a null score has no place on the plane
                panel.plot(
                    [x], [y], linestyle="none", marker=MARKERS[order % len(MARKERS)],
                    color=colour(number), markersize=7, alpha=0.85,
                    gid=f"point/{x_name}-{y_name}/{run}/{series}",
                )  # fmt: skip
        panel.set_xlabel(title_of(x_name))
        panel.set_ylabel(title_of(y_name))
        panel.set_ylim(-0.02, 1.02)
        if x_name == "fpr":  # the FPR of tiny targets is small: its own scale, from 0
            highest = np.nanmax(scores.values["fpr"], initial=0.0)
            panel.set_xlim(-0.02 * (highest or 1.0), 1.08 * (highest or 1.0))
        else:
            panel.set_xlim(-0.02, 1.02)
    axes[0].set_title("TPR vs FPR")
    axes[1].set_title("precision vs recall")
    handles = [
        Line2D([], [], color=colour(n), marker="o", linestyle="none", label=run)
        for n, run in enumerate(scores.runs)
    ]
    handles += [
        Line2D([], [], color="0.35", marker=MARKERS[n % len(MARKERS)], linestyle="none", label=s)
        for n, s in enumerate(scores.series)
    ]
    _legend(axes[1], handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        figure.suptitle(title)
    return figure


ISO_F = (0.2, 0.4, 0.6, 0.8)


def pr_figure(curves: list[PrCurve], title: str | None = None) -> Figure:
    """Precision against recall over the thresholds, one curve per table and class, with
    its ODS point (circle) and OIS point (square) and iso-F lines, as edge and crack
    benchmarks draw them."""
    figure, axes = _figure(1, 1, 5.6, 5.0)
    panel = axes[0]
    recall = np.linspace(0.01, 1, 200)
    for level in ISO_F:
        precision = level * recall / (2 * recall - level)
        keep = (precision > 0) & (precision <= 1) & (2 * recall > level)
        panel.plot(
            recall[keep], precision[keep], color="0.75", linewidth=0.8, linestyle=":",
            gid=f"iso-f/{level:g}",
        )  # fmt: skip
        if keep.any():
            at = np.flatnonzero(keep)[-1]
            panel.annotate(f"F={level:g}", (recall[at], precision[at]), color="0.5", fontsize=7)
    for number, curve in enumerate(curves):
        ods, ois = curve.summary.ods, curve.summary.ois
        panel.plot(
            curve.recall, curve.precision, color=colour(number), linewidth=1.5,
            label=f"{curve.label} (ODS {ods.f:.3f}, OIS {ois.f:.3f}, AP {curve.summary.ap:.3f})",
            gid=f"pr/{curve.label}",
        )  # fmt: skip
        panel.plot(
            [ods.recall], [ods.precision], marker="o", color=colour(number), markersize=7,
            linestyle="none", gid=f"ods/{curve.label}",
        )  # fmt: skip
        panel.plot(
            [ois.recall], [ois.precision], marker="s", color=colour(number), markersize=6,
            markerfacecolor="none", linestyle="none", gid=f"ois/{curve.label}",
        )  # fmt: skip
    panel.set_xlim(-0.02, 1.02)
    panel.set_ylim(-0.02, 1.02)
    panel.set_xlabel("recall")
    panel.set_ylabel("precision")
    markers = [
        Line2D([], [], color="0.35", marker="o", linestyle="none", label="ODS"),
        Line2D([], [], color="0.35", marker="s", markerfacecolor="none", linestyle="none",
               label="OIS"),
    ]  # fmt: skip
    handles = panel.get_legend_handles_labels()[0]
    _legend(panel, handles=[*handles, *markers], loc="lower left")
    if title:
        figure.suptitle(title)
    return figure


def tune_figure(searches: list[TuneSearch], title: str | None = None) -> Figure:
    """The searched value against the validation OII per step (numbered), over the shaded
    target band (m0, m1) of each search (SPEC §4.8)."""
    figure, (panel,) = _figure(1, 1, 6.5, 4.2)
    bands = list(dict.fromkeys(s.target for s in searches if s.target is not None))
    for number, (low, high) in enumerate(bands):
        band = Rectangle(
            (0.0, low), 1.0, high - low, transform=panel.get_yaxis_transform(),
            facecolor=BAND_COLOUR, alpha=0.18, edgecolor="none",
            label=f"target band ({low:g}, {high:g})", gid=f"band/{number}",
        )  # fmt: skip
        panel.add_patch(band)
    for number, search in enumerate(searches):
        panel.plot(
            search.values, search.oii, marker="o", color=colour(number), label=search.label,
            gid=f"search/{search.label}",
        )  # fmt: skip
        for step, value, oii in zip(search.steps, search.values, search.oii, strict=True):
            if not (np.isnan(value) or np.isnan(oii)):
                panel.annotate(
                    f"{step:g}", (value, oii), textcoords="offset points", xytext=(4, 4),
                    fontsize="x-small", color=colour(number),
                )  # fmt: skip
    ranges = [search.searched for search in searches if search.searched is not None]
    if ranges:  # the whole searched range, to show where the bisection went
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
        panel.set_xlim(low - 0.03 * (high - low), high + 0.03 * (high - low))
    params = list(dict.fromkeys(search.param for search in searches))
    panel.set_xlabel(params[0] if len(params) == 1 else "searched value")
    panel.set_ylabel("validation OII")
    _bounded(panel, "oii")
    _legend(panel, loc="best")
    if title:
        figure.suptitle(title)
    return figure


def save_figure(figure: Figure, path: str | Path, fmt: str, dpi: int, description: str) -> None:
    """Write ``figure`` as ``fmt`` to ``path`` atomically (a temporary file, then rename),
    without a date, so the same tables and options give the same file."""
    creator = f"tinyseg {__version__}"
    metadata = {
        "png": {"Software": creator, "Description": description},
        "svg": {"Creator": creator, "Date": None, "Description": description},
        "pdf": {"Creator": creator, "CreationDate": None, "Subject": description},
    }[fmt]
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=fmt, dpi=dpi, metadata=metadata)

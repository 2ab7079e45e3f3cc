"""The tables ``tinyseg plot`` draws, told apart by their columns and metadata: a training log
(SPEC §3, §4.5), a scores table of ``score`` (§4.7) and a tune-oii log (§4.8); which series
(classes, micro, macro) and scores of them to draw. Pure: no matplotlib, no console;
:mod:`tinyseg_cli.plots.curves` reads the rows into arrays."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from tinyseg_cli.errors import TinysegError, UsageError, library_reason
from tinyseg_cli.io.atomic import STDIO
from tinyseg_cli.io.tables import read_table, table_metadata
from tinyseg_cli.scoring.sweep_tables import is_sweep_table

Kind = Literal["log", "runs", "scatter", "tune", "pr"]
KIND_NAMES: dict[str, str] = {
    "log": "a training log",
    "runs": "a scores table",
    "scatter": "a scores table",
    "tune": "a tune-oii log",
    "pr": "a thresholds table",
}
# What a folder given as TABLE holds: a RUN_DIR of ``train``, a TUNE_DIR of ``tune-oii``.
FOLDER_TABLES = ("log.parquet", "steps.parquet")
NEEDED: dict[str, frozenset[str]] = {
    "log": frozenset({"kind", "step", "loss", "lr"}),
    "runs": frozenset({"stat", "level", "class_name"}),
    "scatter": frozenset({"stat", "level", "class_name", "recall", "fpr", "precision"}),
    "tune": frozenset({"step", "oii"}),
    "pr": frozenset({"sample_id", "class_index", "threshold"}),
}
# A tune-oii log's own columns (commands/tune_oii/log.py), beside its "tinyseg.tune" metadata.
TUNE_COLUMNS = frozenset({"step", "oii", "bracket_lo", "bracket_hi"})
DEFAULT_METRICS = ("f2", "iou", "oii")
SCATTER_METRICS = ("fpr", "recall", "precision")  # the axes of the two scatters
LEVELS = ("micro", "macro")
SUMMARY = "summary"  # the level of a scores table's row of OA and mIoU
SUMMARY_METRICS = ("oa", "miou")  # scores of the summary row: one value per run, no class
# Float columns of the tables that are not per-class scores.
NOT_METRICS = frozenset(
    {"loss", "lr", "images_per_s", "oa", "miou", "beta", "bracket_lo", "bracket_hi", "seconds"}
)


@dataclass(frozen=True)
class Source:
    """One TABLE argument: the path given, its label in the figure, its rows and metadata."""

    path: str
    label: str
    table: pa.Table
    metadata: dict[str, Any]


THREE_D = ("points", "voxels")  # score tables of point clouds (metadata "modality")


def parse_names(text: str | None) -> list[str] | None:
    """``"crack, pore"`` -> ``["crack", "pore"]``; None stays None."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    return names or None


def table_path(path: str) -> str:
    """The table a TABLE argument names: a file, or the log in a RUN_DIR or TUNE_DIR."""
    if path == STDIO or not Path(path).is_dir():
        return path
    for name in FOLDER_TABLES:
        if (Path(path) / name).is_file():
            return str(Path(path) / name)
    raise TinysegError(
        f"{path}: a folder without log.parquet (tinyseg train) or steps.parquet (tinyseg tune-oii)"
    )


def default_labels(paths: list[str]) -> list[str]:
    """Labels of the tables: a log by its folder's name, another table by its stem, with as
    many parent folders as it takes to tell them apart (``a/run``, ``b/run``)."""
    parts = [_label_parts(path) for path in paths]
    depths = [1] * len(parts)
    while True:
        labels = ["/".join(p[-depth:]) for p, depth in zip(parts, depths, strict=True)]
        clashing = [
            n
            for n, label in enumerate(labels)
            if labels.count(label) > 1 and depths[n] < len(parts[n])
        ]
        if not clashing:
            return labels
        for n in clashing:
            depths[n] += 1


def _label_parts(path: str) -> list[str]:
    if path == STDIO:
        return ["stdin"]
    named = Path(path).resolve()
    named = named.parent if named.name in FOLDER_TABLES else named.with_suffix("")
    return [part for part in named.parts if part != named.anchor] or [named.name]


def _check_labels(paths: list[str], labels: list[str] | None) -> None:
    if labels and len(labels) != len(paths):
        raise UsageError(
            f"--label given {len(labels)} times for {len(paths)} TABLE(s); give one per TABLE"
        )


def open_sources(paths: list[str], labels: list[str] | None = None) -> list[Source]:
    """Read every TABLE (a folder stands for its log), labelled by ``labels`` or by name."""
    _check_labels(paths, labels)
    if paths.count(STDIO) > 1:
        raise UsageError("'-' (stdin) can be given once")
    resolved = [table_path(path) for path in paths]
    labels = labels or default_labels(resolved)
    sources = []
    for path, label in zip(resolved, labels, strict=True):
        table = read_table(path)
        if table.num_rows == 0:  # a log of a run that never stepped, a shard of nothing
            name = "<stdin>" if path == STDIO else path
            raise TinysegError(f"{name}: the table has no rows: nothing to draw or report")
        sources.append(Source(path, label, table, table_metadata(table)))
    return sources


def is_network_summary(path: str) -> bool:
    """Whether a TABLE argument is a ``train --dry-run --json`` summary (by its suffix)."""
    return Path(path).suffix.lower() == ".json"


def open_network_summaries(
    paths: list[str], labels: list[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(label, summary) of every ``train --dry-run --json`` file: the network's size and cost."""
    _check_labels(paths, labels)
    summaries = []
    for path, label in zip(paths, labels or default_labels(paths), strict=True):
        try:
            summary = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TinysegError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise TinysegError(f"{path}: not readable JSON ({library_reason(error)})") from None
        if not isinstance(summary, dict) or not {"arch", "parameters"} <= summary.keys():
            raise TinysegError(
                f"{path}: not a summary of 'tinyseg train --dry-run --json' (no arch, parameters)"
            )
        summaries.append((label, summary))
    return summaries


def detect_kind(source: Source) -> Kind:
    """Which table ``source`` is, by its columns and metadata; an error naming it if none."""
    columns = set(source.table.column_names)
    if NEEDED["pr"] <= columns and is_sweep_table(list(columns)):
        return "pr"
    if columns >= TUNE_COLUMNS or ("tune" in source.metadata and NEEDED["tune"] <= columns):
        return "tune"
    if NEEDED["log"] <= columns:
        return "log"
    if NEEDED["runs"] <= columns:
        return "runs"
    names = source.table.column_names
    shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "") or "none"
    raise TinysegError(
        f"{source.path}: not a training log, scores table or tune-oii log (its columns: {shown})"
    )


def check_kind(source: Source, kind: Kind) -> None:
    """``source`` has the columns ``kind`` needs, else an error naming the file and them."""
    missing = sorted(NEEDED[kind] - set(source.table.column_names))
    if missing:
        raise TinysegError(
            f"{source.path}: not {KIND_NAMES[kind]} (--kind {kind}): no column {', '.join(missing)}"
        )


def resolve_kind(sources: list[Source], kind: str) -> Kind:
    """The kind of every table: ``kind``, or for ``auto`` the one their columns say; tables
    of different kinds are an error (one figure draws one kind)."""
    if kind != "auto":
        for source in sources:
            check_kind(source, kind)  # type: ignore[arg-type]
        return kind  # type: ignore[return-value]
    kinds = [detect_kind(source) for source in sources]
    for source, found in zip(sources, kinds, strict=True):
        if found != kinds[0]:
            raise TinysegError(
                f"{sources[0].path} is {KIND_NAMES[kinds[0]]} but {source.path} is "
                f"{KIND_NAMES[found]}; plot one kind at a time"
            )
    return kinds[0]


def floats(source: Source, name: str) -> np.ndarray:
    """Column ``name`` as float64, NaN for null (or for every row when it is absent)."""
    table = source.table
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    try:
        column = table[name].cast(pa.float64())
    except (pa.ArrowException, ValueError) as error:
        raise TinysegError(
            f"{source.path}: column {name} is not numeric ({library_reason(error)})"
        ) from None
    return column.fill_null(math.nan).to_numpy(zero_copy_only=False)


def texts(source: Source, name: str) -> np.ndarray:
    """Column ``name`` as an object array of str or None (None throughout when absent)."""
    table = source.table
    if name not in table.column_names:
        return np.full(table.num_rows, None, dtype=object)
    values = table[name].to_pylist()
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def series_keys(source: Source, summary: bool = False) -> np.ndarray:
    """Per row, the series it belongs to: its class name (index when unnamed), ``micro``,
    ``macro``, ``summary`` (the row of OA and mIoU) when ``summary`` is asked for, or None
    (step rows, summary rows otherwise)."""
    levels, names = texts(source, "level"), texts(source, "class_name")
    indices = floats(source, "class_index")
    keys = np.full(len(levels), None, dtype=object)
    for row, level in enumerate(levels):
        if level == "class":
            index = indices[row]
            keys[row] = names[row] or ("" if np.isnan(index) else str(int(index)))
        elif level in LEVELS or (summary and level == SUMMARY):
            keys[row] = level
    return keys


def known_series(source: Source) -> list[tuple[str, int | None]]:
    """(series, class index) of a table: its classes by index, then micro and macro."""
    keys, indices = series_keys(source), floats(source, "class_index")
    classes: dict[str, int | None] = {}
    levels = []
    for key, index in zip(keys, indices, strict=True):
        if key in LEVELS:
            levels.append(key)
        elif key is not None and key not in classes:
            classes[key] = None if np.isnan(index) else int(index)
    ordered = sorted(classes.items(), key=lambda item: -1 if item[1] is None else item[1])
    return [*ordered, *((level, None) for level in LEVELS if level in levels)]


def choose_series(sources: list[Source], wanted: list[str] | None) -> list[list[str]]:
    """Per table, the series to draw: the ``--classes`` given (names, indices, micro,
    macro), or by default the foreground classes (all but index 0; all if only one) — every
    class for 3D scores, whose convention averages over all classes (ground included)."""
    known = [known_series(source) for source in sources]
    if wanted is None:
        chosen = []
        for source, series in zip(sources, known, strict=True):
            classes = [(key, index) for key, index in series if key not in LEVELS]
            every = [key for key, _ in classes]
            if source.metadata.get("modality") in THREE_D:
                chosen.append(every)
            else:
                chosen.append([key for key, index in classes if index != 0] or every)
        return chosen
    chosen = [_matching(series, wanted) for series in known]
    found = {token for series in known for token in wanted if _matching(series, [token])}
    for token in wanted:
        if token not in found:
            names = dict.fromkeys(key for series in known for key, _ in series)
            raise UsageError(
                f"--classes: no class or level {token!r} in the table(s); known: "
                f"{', '.join(names) or 'none'}"
            )
    return chosen


def _matching(series: list[tuple[str, int | None]], wanted: list[str]) -> list[str]:
    chosen = []
    for token in wanted:
        for key, index in series:
            if (token == key or (index is not None and token == str(index))) and key not in chosen:
                chosen.append(key)
                break
    return chosen


def metric_columns(source: Source) -> list[str]:
    """The score columns of a table: its float columns that are not losses or summaries."""
    return [
        field.name
        for field in source.table.schema
        if pa.types.is_floating(field.type) and field.name not in NOT_METRICS
    ]


def choose_metrics(
    sources: list[Source], wanted: list[str] | None, summary: bool = False
) -> list[str]:
    """The ``--metric`` columns asked for (each in some table), or F2, IoU and OII; with
    ``summary``, also the summary row's OA and mIoU."""
    available = dict.fromkeys(name for source in sources for name in metric_columns(source))
    if summary:
        available |= dict.fromkeys(
            name for name in SUMMARY_METRICS for s in sources if name in s.table.column_names
        )
    if wanted is None:
        chosen = [name for name in DEFAULT_METRICS if name in available]
        if not chosen:
            raise TinysegError(
                f"{sources[0].path}: no score column f2, iou or oii; pass --metric (known: "
                f"{', '.join(available) or 'none'})"
            )
        return chosen
    for name in wanted:
        if name not in available:
            raise UsageError(
                f"--metric {name}: no such score column in the table(s); known: "
                f"{', '.join(available) or 'none'}"
            )
    return list(dict.fromkeys(wanted))

"""``TUNE_DIR/steps.parquet``: one row per finished step of a search (SPEC §4.8), written
after every step, and read back so that a rerun replays finished steps instead of training
them again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyseg_cli.commands.tune_oii.search import SCORE_NAMES, Counts, Step
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.tables import read_table, write_table

LOG_NAME = "steps.parquet"
COUNT_COLUMNS = ("tp", "fp", "fn")
# Per-class counts: what the search reads (the OII of one class, micro or macro) on replay.
CLASS_COLUMNS = ("class_tp", "class_fp", "class_fn")


def log_schema(param: str, tie_beta: bool) -> pa.Schema:
    """Columns: step, the parameter (named after it), beta when tied, the scores and counts
    of the scored class(es), the bracket, the directions, the checkpoint and the time."""
    fields = [pa.field("step", pa.int32()), pa.field(param, pa.float64())]
    if tie_beta:
        fields.append(pa.field("beta", pa.float64()))
    fields += [pa.field(name, pa.float64()) for name in SCORE_NAMES]
    fields += [pa.field(name, pa.int64()) for name in COUNT_COLUMNS]
    fields += [
        pa.field("bracket_lo", pa.float64()),
        pa.field("bracket_hi", pa.float64()),
        pa.field("direction_expected", pa.string()),
        pa.field("direction_measured", pa.string()),
        pa.field("checkpoint", pa.string()),
        pa.field("seconds", pa.float64()),
    ]
    fields += [pa.field(name, pa.list_(pa.int64())) for name in CLASS_COLUMNS]
    return pa.schema(fields)


def _null_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def log_row(step: Step, param: str, tie_beta: bool) -> dict[str, Any]:
    """The log row of a finished step."""
    row: dict[str, Any] = {"step": step.step, param: step.value}
    if tie_beta:
        row["beta"] = 1.0 - step.value
    row.update({name: _null_if_nan(step.scores[name]) for name in SCORE_NAMES})
    row.update({name: int(step.scores[name]) for name in COUNT_COLUMNS})
    low, high = step.bracket if step.bracket is not None else (None, None)
    row.update(
        bracket_lo=low,
        bracket_hi=high,
        direction_expected=step.direction_expected,
        direction_measured=step.direction_measured,
        checkpoint=step.counts.details.get("checkpoint"),
        seconds=step.counts.details.get("seconds"),
    )
    class_counts = (step.counts.tp, step.counts.fp, step.counts.fn)
    for column, values in zip(CLASS_COLUMNS, class_counts, strict=True):
        row[column] = [int(v) for v in values]
    return row


def write_log(
    path: Path, rows: list[dict[str, Any]], schema: pa.Schema, metadata: dict[str, Any]
) -> None:
    write_table(pa.Table.from_pylist(rows, schema=schema), path, metadata)


def read_log(path: Path, param: str) -> list[tuple[float, Counts]]:
    """The finished steps of an earlier run, in order: (value, counts with their details)."""
    if not path.is_file():
        return []
    table = read_table(path)
    needed = {"step", param, "checkpoint", "seconds", *CLASS_COLUMNS}
    if not needed <= set(table.column_names):
        raise TinysegError(f"{path}: not a tune-oii log of --param {param} (pass --force)")
    done = []
    for number, row in enumerate(table.to_pylist(), start=1):
        if row["step"] != number:
            raise TinysegError(f"{path}: steps are not 1, 2, … in order (pass --force)")
        counts = Counts(
            *(np.asarray(row[column], np.int64) for column in CLASS_COLUMNS),
            details={"checkpoint": row["checkpoint"], "seconds": row["seconds"]},
        )
        done.append((float(row[param]), counts))
    return done

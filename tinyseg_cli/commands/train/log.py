"""The training log table (SPEC §3): a row per step, and per validation a row per class plus
the micro and macro averages with their confusion counts and the scores of §5."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from tinyseg_cli.commands.train.common import Validation
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.tables import read_table, write_table
from tinyseg_cli.metrics.functional import metric_names

COUNTS = ("tp", "fp", "fn", "tn")


def log_schema() -> pa.Schema:
    """Columns of the log: step rows fill loss/lr, validation rows the counts and scores."""
    fields = [
        pa.field("kind", pa.string()),  # "step" or "val"
        pa.field("step", pa.int64()),
        pa.field("epoch", pa.int64()),
        pa.field("loss", pa.float64()),
        pa.field("lr", pa.float64()),
        pa.field("images_per_s", pa.float64()),
        pa.field("level", pa.string()),  # val rows: "class", "micro" or "macro"
        pa.field("class_index", pa.int32()),
        pa.field("class_name", pa.string()),
        *(pa.field(name, pa.int64()) for name in COUNTS),
        *(pa.field(name, pa.float64()) for name in metric_names()),
    ]
    return pa.schema(fields)


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class TrainLog:
    """Rows of the log, kept in memory and rewritten whole (atomically) at each checkpoint."""

    def __init__(self, class_names: list[str], rows: list[dict[str, Any]] | None = None) -> None:
        self.class_names = class_names
        self.rows: list[dict[str, Any]] = rows or []

    def add_step(self, step: int, epoch: int, loss: float, lr: float, speed: float) -> None:
        self.rows.append(
            {
                "kind": "step",
                "step": step,
                "epoch": epoch,
                "loss": loss,
                "lr": lr,
                "images_per_s": speed,
            }
        )

    def add_validation(self, step: int, epoch: int, result: Validation) -> None:
        summary = result.summary
        base = {"kind": "val", "step": step, "epoch": epoch}
        for index, name in enumerate(self.class_names):
            row = {**base, "level": "class", "class_index": index, "class_name": name}
            row.update({k: int(summary.counts[k][index]) for k in COUNTS})
            row.update({m: _number(v[index]) for m, v in summary.per_class.items()})
            self.rows.append(row)
        averaged = summary.averaged
        sums = {k: int(summary.counts[k][averaged].sum()) for k in COUNTS}
        self.rows.append(
            {**base, "level": "micro", **sums, **{m: _number(v) for m, v in summary.micro.items()}}
        )
        self.rows.append(
            {**base, "level": "macro", **{m: _number(v) for m, v in summary.macro.items()}}
        )

    def table(self) -> pa.Table:
        schema = log_schema()
        columns = {f.name: [row.get(f.name) for row in self.rows] for f in schema}
        return pa.table(
            {name: pa.array(values, schema.field(name).type) for name, values in columns.items()},
            schema=schema,
        )

    def write(self, path: Path, config: dict[str, Any]) -> None:
        write_table(self.table(), path, {"classes": self.class_names, "config": config})

    @classmethod
    def read(cls, path: Path, class_names: list[str], upto_step: int) -> TrainLog:
        """The log of a run being resumed, without rows after its checkpoint's step."""
        if not path.is_file():
            return cls(class_names)
        table = read_table(path)
        if "step" not in table.column_names:
            raise TinysegError(f"{path}: not a tinyseg training log")
        rows = [row for row in table.to_pylist() if row["step"] <= upto_step]
        return cls(class_names, rows)

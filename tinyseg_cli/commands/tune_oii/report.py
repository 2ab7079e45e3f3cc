"""What ``tune-oii`` prints: the steps so far as a table on stderr after each step, then the
chosen step (and the ``--json`` summary)."""

from __future__ import annotations

import json
import math
from typing import Any

import typer
from rich.table import Table

from tinyseg_cli.cli import console
from tinyseg_cli.commands.tune_oii.search import SearchResult, Step

LOG_DISPLAY = ("value", "OII", "IoU", "precision", "recall", "F2", "bracket")


def _fmt(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4f}"


class StepsDisplay:
    """The steps so far as a table on stderr, printed again after every step."""

    def __init__(self, param: str, show: bool) -> None:
        self.param, self.show = param, show
        self.steps: list[Step] = []

    def add(self, step: Step) -> None:
        self.steps.append(step)
        if not self.show:
            return
        table = Table(title=f"tune-oii: {self.param}", title_justify="left")
        table.add_column("step", justify="right")
        for header in LOG_DISPLAY:
            table.add_column(self.param if header == "value" else header, justify="right")
        for s in self.steps:
            bracket = "—" if s.bracket is None else f"[{s.bracket[0]:.4g}, {s.bracket[1]:.4g}]"
            table.add_row(
                str(s.step),
                f"{s.value:.4g}",
                *(_fmt(s.scores[k]) for k in ("oii", "iou", "precision", "recall", "f2")),
                bracket,
            )
        console.stderr.print(table)


def print_result(
    result: SearchResult, search: dict[str, Any], param: str, seconds: float, json_: bool
) -> None:
    chosen = result.chosen
    m0, m1 = search["target"]
    if not console.STATE.quiet:
        console.stderr.print(
            f"chosen: {param} = {chosen.value:.6g} (step {chosen.step}), OII {chosen.oii:.4f}, "
            f"{result.trainings} training(s) in {seconds:.0f} s; checkpoint "
            f"{console.safe(chosen.counts.details.get('checkpoint'))}"
        )
    if not result.inside:
        why = {
            "max-steps": "--max-steps reached",
            "tol": "the bracket narrowed below --tol",
            "inconsistent": "the OII is not monotonic in the parameter",
            "grid": "no grid value",
        }[result.reason]
        console.stderr.print(
            f"no step reached OII in ({m0:g}, {m1:g}): {why}; the closest step is kept"
        )
    if json_:
        summary = {
            "param": param,
            "value": chosen.value,
            "oii": chosen.oii,
            "inside": result.inside,
            "step": chosen.step,
            "checkpoint": chosen.counts.details.get("checkpoint"),
            "reason": result.reason,
            "direction_flips": result.flips,
            "steps": [
                {"step": s.step, "value": s.value, **{k: s.scores[k] for k in ("oii", "iou", "f2")}}
                for s in result.steps
            ],
            "trainings": result.trainings,
            "grid_equivalent": (len(result.steps) if search["grid"] else 2**result.trainings + 1),
        }
        typer.echo(json.dumps(summary, indent=2))

"""`tune-oii`: trainings used by the bisection against the grid of the same resolution.

A training costs minutes to days, so the measure is the number of trainings, not seconds.
The stand-in objective is modelled on the output-imbalance study's Table 3, where the OII
falls smoothly as α grows: α → TP = 1000, FP = 600·α, FN = 600·(1 − α) (x = FP/FN grows
with α, so the OII falls; it crosses the band (0.3, 0.4) near α ≈ 0.38), optionally with
seeded noise on FP and FN. SPEC §8: at most ⌈log2((b − a)/tol)⌉ trainings (+1 after a
direction flip) where a grid needs (b − a)/tol + 1.
"""

from __future__ import annotations

import math

import numpy as np
from common import Section, Target, console
from rich.table import Table

from tinyseg_cli.commands.tune_oii.search import (
    Bisection,
    Counts,
    OiiOf,
    bisect,
    grid,
    grid_values,
    trainings_bound,
)

LOW, HIGH, BAND = 0.1, 0.9, (0.3, 0.4)
TOLERANCES = (0.1, 0.05, 0.01)
OF = OiiOf("class", (1,))


def table3_like(noise: float = 0.0, seed: int = 0):
    """The stand-in objective; ``noise`` is the relative jitter of FP and FN."""
    rng = np.random.default_rng(seed)

    def objective(alpha: float) -> Counts:
        jitter = 1 + noise * rng.standard_normal(2) if noise else np.ones(2)
        fp, fn = (
            max(0, round(600 * share * j))
            for share, j in zip((alpha, 1 - alpha), jitter, strict=True)
        )
        return Counts(np.array([10**6, 1000]), np.array([fn, fp]), np.array([fp, fn]))

    return objective


def cases() -> list[tuple[str, dict, float]]:
    """(name, bisection settings, noise): the expected direction, a wrong prior, noise, and a
    band too narrow to hit (the search runs until --tol: the worst case for the count)."""
    return [
        ("expected direction (lowers)", {"direction": "lowers"}, 0.0),
        ("wrong prior (raises), auto flip", {"direction": "raises"}, 0.0),
        ("noisy OII (±2 % FP/FN)", {"direction": "lowers"}, 0.02),
        ("band never hit", {"direction": "lowers", "target": (0.3500, 0.3501)}, 0.0),
    ]


def run(quick: bool = False) -> Section:
    """Trainings per tolerance and case, the grid's size and what each finds."""
    section = Section("tune-oii: bisection vs grid (trainings)")
    table = Table(title="trainings to reach OII in (0.3, 0.4), α ∈ [0.1, 0.9]")
    for header in ("case", "tol", "bisection", "bound", "grid", "grid / bisection", "α (OII)"):
        table.add_column(header, justify="left" if header == "case" else "right")
    for tol in TOLERANCES:
        grid_size = round((HIGH - LOW) / tol) + 1
        found = grid(table3_like(), grid_values(LOW, HIGH, grid_size - 1), BAND, OF)
        table.add_row(
            "grid (reference)", f"{tol:g}", "—", "—", str(grid_size), "—",
            f"{found.chosen.value:.3f} ({found.chosen.oii:.3f})",
        )  # fmt: skip
        for name, changes, noise in cases():
            settings = Bisection(
                **{"low": LOW, "high": HIGH, "target": BAND, "tol": tol, **changes}
            )
            result = bisect(table3_like(noise), settings, OF)
            bound = trainings_bound(HIGH - LOW, tol) + result.flips
            table.add_row(
                name, f"{tol:g}", str(result.trainings), str(bound), str(grid_size),
                f"{grid_size / result.trainings:.1f}×",
                f"{result.chosen.value:.3f} ({result.chosen.oii:.3f})"
                + ("" if result.inside else " outside"),
            )  # fmt: skip
            section.ratios.append(
                (f"grid / bisection, tol {tol:g}, {name}", grid_size / result.trainings, "")
            )
            section.targets.append(
                Target(
                    f"tune-oii trainings <= ⌈log2(0.8/tol)⌉ (+flips), tol {tol:g}, {name}",
                    result.trainings,
                    bound,
                    "<=",
                    f"grid needs {grid_size}",
                )
            )
            section.raw[f"{tol:g}/{name}"] = {
                "trainings": result.trainings,
                "bound": bound,
                "grid": grid_size,
                "value": result.chosen.value,
                "oii": result.chosen.oii,
                "inside": result.inside,
                "flips": result.flips,
            }
    console.print(table)
    bounds = ", ".join(str(math.ceil(math.log2((HIGH - LOW) / t))) for t in TOLERANCES)
    tols = ", ".join(f"{t:g}" for t in TOLERANCES)
    console.print(f"bound ⌈log2((b − a)/tol)⌉ = {bounds} for tol {tols}")
    return section

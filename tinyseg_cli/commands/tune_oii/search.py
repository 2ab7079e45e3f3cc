"""The output-imbalance-guided search of SPEC §4.8 as pure functions over an injected objective.

The objective maps a value of the searched loss parameter to the validation counts of a
model trained with it (TP, FP, FN per class); the search reads the OII of those counts
(SPEC §5): its sign says whether the model makes more FP (negative) or more FN (positive),
so each training tells which half of the bracket to keep. Nothing here trains: the command
supplies an objective that trains, infers and scores, and the tests supply formulas.

Direction: ``raises`` means a larger value gives a larger OII (SPEC §6.4: Tversky's α, the FP
weight). The expected direction is a prior; in ``auto`` mode each new step is compared with
the one before it, and if the OII moved the wrong way by more than the noise band the
direction flips once (a second disagreement is reported, not followed: the OII is then not
monotonic at this noise level and flipping back and forth would never end). After a flip the
bracket is rebuilt from every observation so far under the new direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tinyseg_cli.metrics.functional import compute_metrics

Direction = Literal["raises", "lowers"]
DIRECTIONS: tuple[Direction, ...] = ("raises", "lowers")
SCORE_NAMES = ("oii", "iou", "precision", "recall", "f1", "f2")
EPSILON = 1e-9  # float slack when a bracket is compared with the tolerance


@dataclass(frozen=True)
class Counts:
    """Validation counts per class (index = class); ``details`` travel to the log untouched."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OiiOf:
    """Which classes the OII is read from: one class, or micro/macro over several."""

    mode: Literal["class", "micro", "macro"]
    classes: tuple[int, ...]


def scores_of(counts: Counts, of: OiiOf) -> dict[str, float]:
    """OII, IoU, precision, recall, F1, F2 and TP/FP/FN of the scored class(es).

    ``class`` and ``micro`` score the summed counts; ``macro`` is the mean of each class's
    score over the classes where it is defined (SPEC §5). Counts are always the sums.
    """
    chosen = list(of.classes)
    tp, fp, fn = (np.asarray(a, np.int64)[chosen] for a in (counts.tp, counts.fp, counts.fn))
    totals = {"tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum())}
    if of.mode == "macro":
        per_class = compute_metrics(tp, fp, fn, np.zeros_like(tp))
        scores = {name: _nanmean(per_class[name]) for name in SCORE_NAMES}
    else:
        summed = compute_metrics(totals["tp"], totals["fp"], totals["fn"], 0)
        scores = {name: float(summed[name]) for name in SCORE_NAMES}
    return {**scores, **totals}


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


@dataclass(frozen=True)
class Bisection:
    """Settings of a bisection: range [low, high], target band (m0, m1), stopping rules."""

    low: float
    high: float
    target: tuple[float, float]
    tol: float
    max_steps: int | None = None
    direction: Direction = "raises"
    auto: bool = True  # flip (once) when the OII moves the wrong way beyond ``noise``
    noise: float = 0.02


@dataclass(frozen=True)
class Step:
    """One finished training of the search."""

    step: int
    value: float
    scores: dict[str, float]
    counts: Counts
    bracket: tuple[float, float] | None  # the interval whose midpoint ``value`` is (bisection)
    direction_expected: Direction | None  # the direction in force when ``value`` was chosen
    direction_measured: Direction | None  # from this step and the one before, beyond the noise

    @property
    def oii(self) -> float:
        return self.scores["oii"]


@dataclass
class SearchResult:
    """The steps taken, the one chosen, and why the search stopped."""

    steps: list[Step]
    chosen: Step
    inside: bool
    reason: str  # inside, max-steps, tol, inconsistent, grid
    flips: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def trainings(self) -> int:
        return len(self.steps)


def inside(oii: float, target: tuple[float, float]) -> bool:
    """Whether ``oii`` lies in the open band (m0, m1)."""
    return target[0] < oii < target[1]


def distance_to_band(oii: float, target: tuple[float, float]) -> float:
    """How far ``oii`` lies outside (m0, m1); 0 inside."""
    if inside(oii, target):
        return 0.0
    return target[0] - oii if oii <= target[0] else oii - target[1]


def choose(steps: Sequence[Step], target: tuple[float, float]) -> Step:
    """The step inside the band nearest its centre, else the step nearest the band (earliest
    on a tie)."""
    centre = (target[0] + target[1]) / 2
    return min(
        steps,
        key=lambda s: (distance_to_band(s.oii, target), abs(s.oii - centre), s.step),
    )


def measured_direction(
    before: Step | None, value: float, oii: float, noise: float
) -> Direction | None:
    """The direction two steps show: None when the OII moved by no more than ``noise``."""
    if before is None or value == before.value or abs(oii - before.oii) <= noise:
        return None
    rising = (oii - before.oii) * (value - before.value) > 0
    return "raises" if rising else "lowers"


def bracket_from(
    steps: Sequence[Step], settings: Bisection, direction: Direction
) -> tuple[float, float]:
    """The interval every observation so far points to, under ``direction``.

    An OII above m1 (too many FN) asks for a lower OII: below the step's value when the
    parameter raises the OII, above it when it lowers it; below m0, the opposite.
    """
    low, high = settings.low, settings.high
    for step in steps:
        if step.oii >= settings.target[1]:
            go_lower = direction == "raises"
        elif step.oii <= settings.target[0]:
            go_lower = direction == "lowers"
        else:
            continue
        if go_lower:
            high = min(high, step.value)
        else:
            low = max(low, step.value)
    return low, high


def trainings_bound(width: float, tol: float) -> int:
    """⌈log2(width / tol)⌉: trainings a bisection needs without a flip (SPEC §8)."""
    return max(1, math.ceil(math.log2(width / tol) - EPSILON))


def bisect(
    objective: Callable[[float], Counts],
    settings: Bisection,
    of: OiiOf,
    on_step: Callable[[Step], None] = lambda step: None,
    on_note: Callable[[str], None] = lambda text: None,
) -> SearchResult:
    """Bisection on the OII until it is inside the target band, ``max_steps`` trainings have
    run, or the bracket is no wider than ``tol``; step 1 trains at the midpoint."""
    steps: list[Step] = []
    notes: list[str] = []
    direction, flips = settings.direction, 0
    low, high = settings.low, settings.high
    reason = "tol"

    def note(text: str) -> None:
        notes.append(text)
        on_note(text)

    while True:
        if settings.max_steps is not None and len(steps) >= settings.max_steps:
            reason = "max-steps"
            break
        value = (low + high) / 2
        counts, scores = _observe(objective, value, of, len(steps) + 1)
        before = steps[-1] if steps else None
        measured = measured_direction(before, value, scores["oii"], settings.noise)
        step = Step(len(steps) + 1, value, scores, counts, (low, high), direction, measured)
        steps.append(step)
        on_step(step)
        if inside(step.oii, settings.target):
            reason = "inside"
            break
        if before is not None and measured is not None and measured != direction:
            moved = (
                f"step {step.step}: from {before.value:g} to {value:g} the OII went "
                f"{before.oii:.4f} → {step.oii:.4f}"
            )
            if settings.auto and flips == 0:
                direction, flips = measured, 1
                note(f"{moved}: the parameter {measured} the OII; searching that way from now on")
            else:
                note(f"{moved}, against the direction {direction}; kept (OII not monotonic?)")
        low, high = bracket_from(steps, settings, direction)
        if low >= high:
            reason = "inconsistent"
            note("the observations contradict each other (the OII is not monotonic here)")
            break
        if high - low <= settings.tol + EPSILON:
            break
    chosen = choose(steps, settings.target)
    return SearchResult(steps, chosen, inside(chosen.oii, settings.target), reason, flips, notes)


def _observe(
    objective: Callable[[float], Counts], value: float, of: OiiOf, number: int
) -> tuple[Counts, dict[str, float]]:
    counts = objective(value)
    scores = scores_of(counts, of)
    if math.isnan(scores["oii"]):
        raise ValueError(f"step {number}: the OII is undefined (TP = FP = FN = 0)")
    return counts, scores


def grid_values(low: float, high: float, intervals: int) -> list[float]:
    """K + 1 equally spaced values from ``low`` to ``high``."""
    return [low + (high - low) * i / intervals for i in range(intervals + 1)]


def grid(
    objective: Callable[[float], Counts],
    values: Sequence[float],
    target: tuple[float, float],
    of: OiiOf,
    noise: float = 0.02,
    on_step: Callable[[Step], None] = lambda step: None,
) -> SearchResult:
    """The grid search the bisection replaces: every value trained, the best one chosen."""
    steps: list[Step] = []
    for value in values:
        counts, scores = _observe(objective, value, of, len(steps) + 1)
        before = steps[-1] if steps else None
        measured = measured_direction(before, value, scores["oii"], noise)
        step = Step(len(steps) + 1, value, scores, counts, None, None, measured)
        steps.append(step)
        on_step(step)
    chosen = choose(steps, target)
    return SearchResult(steps, chosen, inside(chosen.oii, target), "grid")

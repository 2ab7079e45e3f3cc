"""What ``tune-oii`` checks before any training: the searched parameter, its range, the target
band, which classes the OII is read from, the expected direction (SPEC §4.8, §6.4), and the
record that lets a rerun continue a search only when it is the same search."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyseg_cli.commands.tune_oii.search import Direction, OiiOf
from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.atomic import atomic_path
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.losses.names import LOSSES, Param

# SPEC §6.4: how a larger value of a parameter moves the OII. α weights FP in the Tversky
# family (fewer FP: the OII rises); β weights FN (fewer FN: it falls); in dibe-dis α
# strengthens the missed-foreground term and β the false-positive one, and λ weighs the
# foreground pixels (fewer FN).
_TVERSKY_FAMILY = ("tversky", "focal-tversky", "dibe-reg", "dibe", "hf")
EXPECTED: dict[tuple[str, str], Direction] = {
    **{(loss, "alpha"): "raises" for loss in _TVERSKY_FAMILY},
    **{(loss, "beta"): "lowers" for loss in _TVERSKY_FAMILY},
    ("dibe-dis", "alpha"): "lowers",
    ("dibe-dis", "beta"): "raises",
    ("dibe-dis", "focal_lambda"): "lowers",
    ("dibe", "focal_lambda"): "lowers",
}
RECORD = "tune.json"
# Options that may change between a run and its continuation: they do not change results.
FREE_TO_CHANGE = frozenset({"device", "workers", "run_dir", "init_weights"})


@dataclass(frozen=True)
class SearchedParam:
    """The loss parameter being searched, and β when it follows α (β = 1 − α)."""

    loss: str
    name: str
    tie_beta: bool

    def loss_params(self, value: float) -> dict[str, float]:
        """The loss parameters a step trains with."""
        values = {self.name: value}
        if self.tie_beta:
            values["beta"] = 1.0 - value
        return values


def searched_param(loss: str, name: str, tie_beta: bool, given: dict[str, Any]) -> SearchedParam:
    """Check that ``loss`` has the float parameter ``name`` and that it is not also given."""
    name = {"lambda": "focal_lambda"}.get(name, name).replace("-", "_")
    params = {p.name: p for p in LOSSES[loss].params if p.kind == "float"}
    if name not in params:
        known = ", ".join(params) or "none"
        raise UsageError(f"--param {name}: loss {loss} has no such parameter (it has: {known})")
    tie = tie_beta and name == "alpha" and "beta" in params
    for fixed in (name, "beta") if tie else (name,):
        if given.get(fixed) is not None:
            option = params[fixed].option
            why = "β = 1 − α follows the search (--no-tie-beta keeps it)" if fixed != name else ""
            raise UsageError(
                f"{option} is set by the search (--param {name}); drop it {why}".strip()
            )
    return SearchedParam(loss, name, tie)


def check_range(param: SearchedParam, low: float, high: float) -> None:
    """The range lies inside the parameter's valid interval (and β's, when tied)."""
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UsageError(f"--range {low:g},{high:g}: expected a < b")
    spec = {p.name: p for p in LOSSES[param.loss].params}
    checks: list[tuple[Param, float]] = [(spec[param.name], low), (spec[param.name], high)]
    if param.tie_beta:
        checks += [(spec["beta"], 1.0 - low), (spec["beta"], 1.0 - high)]
    for rule, value in checks:
        try:
            rule.check(param.loss, value)
        except TinysegError as error:
            tied = " (β = 1 − α)" if rule.name != param.name else ""
            raise UsageError(f"--range {low:g},{high:g}{tied}: {error}") from None


def check_target(low: float, high: float) -> None:
    if not (-1.0 < low < high < 1.0):
        raise UsageError(
            f"--target {low:g},{high:g}: expected a band m0 < m1 inside (-1, 1), the OII's range"
        )


def oii_classes(spec: str | None, class_map: ClassMap) -> OiiOf:
    """``--oii-of``: a class (name or index), or micro/macro over the foreground classes."""
    foreground = tuple(range(1, len(class_map)))
    if spec in ("micro", "macro"):
        return OiiOf(spec, foreground)  # type: ignore[arg-type]
    if spec is None:
        if len(foreground) != 1:
            raise UsageError(
                f"--oii-of: the model predicts {len(foreground)} foreground classes "
                f"({', '.join(class_map.names[1:])}); name one, or micro or macro"
            )
        return OiiOf("class", foreground)
    try:
        index = class_map.index(spec)
    except TinysegError:
        raise UsageError(
            f"--oii-of {spec}: expected micro, macro or a class of ({', '.join(class_map.names)})"
        ) from None
    return OiiOf("class", (index,))


def expected_direction(loss: str, param: str) -> Direction | None:
    """SPEC §6.4's direction for ``param`` of ``loss``; None where the spec says nothing."""
    return EXPECTED.get((loss, param))


def check_record(tune_dir: Path, record: dict[str, Any]) -> bool:
    """Whether TUNE_DIR continues this same search (True), or starts one (False).

    A TUNE_DIR made with other options is an error naming the first option that differs.
    """
    path = tune_dir / RECORD
    if not path.is_file():
        return False
    try:
        found = json.loads(path.read_text())
    except ValueError:
        raise TinysegError(f"{path}: unreadable (pass --force to start over)") from None
    for section in ("search", "train"):
        old, new = found.get(section, {}), record[section]
        for key in sorted(set(old) | set(new)):
            if key in FREE_TO_CHANGE or old.get(key) == new.get(key):
                continue
            flag = "--" + key.rstrip("_").replace("_", "-")
            raise TinysegError(
                f"{tune_dir}: holds a search made with {flag} {old.get(key)!r}, not "
                f"{new.get(key)!r}; rerun with the same options to continue it, or pass "
                "--force to start over"
            )
    return True


def write_record(tune_dir: Path, record: dict[str, Any]) -> None:
    with atomic_path(tune_dir / RECORD) as temporary:
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")

"""The losses of SPEC §6.3 by name and their hyper-parameters, without importing torch.

The train command builds its options from `LOSSES` (``Param.option``) at ``--help`` time;
`tinyseg_cli.losses.build.build_loss` turns a name and values into a module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tinyseg_cli.errors import TinysegError


@dataclass(frozen=True)
class Param:
    """One hyper-parameter of a loss: a float, or (kind "classes") a list of class indices."""

    name: str
    default: float | None
    help: str
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False  # strictly above 0 (an exponent 1/γ)
    kind: str = "float"

    @property
    def option(self) -> str:
        """The command-line option, e.g. ``--focal-lambda``."""
        return "--" + self.name.replace("_", "-")

    def check(self, loss: str, value: Any) -> Any:
        """The validated value, or TinysegError naming the loss, option, rule and value."""
        if self.kind == "classes":
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        low = self.minimum if self.minimum is not None else -math.inf
        high = self.maximum if self.maximum is not None else math.inf
        bad = not math.isfinite(number) or number < low or number > high
        if bad or (self.positive and number <= 0):
            rule = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
            rule = "> 0" if self.positive else rule
            raise TinysegError(
                f"loss {loss}: {self.option}: expected a number {rule}, found {value}"
            )
        return number


@dataclass(frozen=True)
class LossSpec:
    """A loss by name: one-line summary, hyper-parameters and how class weights are used."""

    name: str
    summary: str
    module: str  # class name in tinyseg_cli.losses.modules
    params: tuple[Param, ...] = ()
    class_weights: str = "optional"  # "unused", "optional" or "required"
    binary_only: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)  # constructor arguments

    def defaults(self) -> dict[str, Any]:
        """The loss's hyper-parameters with their default values."""
        return {p.name: p.default for p in self.params}


_ALPHA = Param("alpha", 0.3, "Tversky weight of false positives (larger α: fewer FP)", 0.0)
_BETA = Param("beta", 0.7, "Tversky weight of false negatives (larger β: fewer FN)", 0.0)
_SMOOTH = Param("smooth", 1.0, "ε added to numerator and denominator of the region score", 0.0)
_THETA = Param("theta", 0.5, "θ, share of the first term of a compound loss", 0.0, 1.0)
_GAMMA = Param("gamma", 2.0, "focal exponent γ of (1 − p_t)^γ", 0.0)
_LAMBDA = Param(
    "focal_lambda", 0.75, "λ, weight of foreground pixels (background: 1 − λ)", 0.0, 1.0
)
_CLASSES = Param(
    "loss_classes",
    None,
    "class indices the region terms average over (default: all present in the batch)",
    kind="classes",
)
_DIS_ALPHA = replace(_ALPHA, help="α of the missed-foreground term (larger α: fewer FN)")
_DIS_BETA = replace(_BETA, help="β of the false-positive term (larger β: fewer FP)")
_DIBE_ALPHA = Param(
    "alpha", 0.3, "α, shared: Tversky FP weight and dibe-dis α (β = 1 − α)", 0.0, 1.0
)
_REGION = (_SMOOTH, _CLASSES)
_TVERSKY = (_ALPHA, _BETA, *_REGION)

LOSSES: dict[str, LossSpec] = {
    spec.name: spec
    for spec in (
        LossSpec("ce", "cross-entropy", "CrossEntropyLoss", class_weights="unused"),
        LossSpec(
            "wce",
            "cross-entropy weighted by class weights α_t",
            "CrossEntropyLoss",
            class_weights="required",
            fixed={"weighted": True},
        ),
        LossSpec("focal", "focal loss −α_t(1 − p_t)^γ log p_t", "FocalLoss", (_GAMMA,)),
        LossSpec(
            "bce",
            "binary cross-entropy (binary models)",
            "CrossEntropyLoss",
            class_weights="unused",
            binary_only=True,
        ),
        LossSpec(
            "wbce",
            "cross-entropy with per-image weights HW/n_c",
            "BalancedCrossEntropyLoss",
            class_weights="unused",
        ),
        LossSpec("dice", "1 − soft Dice", "DiceLoss", _REGION),
        LossSpec("tversky", "1 − Tversky index Tv", "TverskyLoss", _TVERSKY),
        LossSpec(
            "focal-tversky",
            "(1 − Tv)^(1/γ) per class",
            "FocalTverskyLoss",
            (*_TVERSKY, replace(_GAMMA, default=0.75, help="γ of (1 − Tv)^(1/γ)", positive=True)),
        ),
        LossSpec(
            "weighted-dice",
            "generalised Dice, w_c = class weights or 1/n_c²",
            "WeightedDiceLoss",
            (_CLASSES,),
        ),
        LossSpec(
            "dibe-dis",
            "distribution term of DiBE (focal with α/β penalties)",
            "DibeDistributionLoss",
            (_DIS_ALPHA, _DIS_BETA, _LAMBDA, _GAMMA, _CLASSES),
        ),
        LossSpec(
            "dibe-reg",
            "region term of DiBE (−log Tv)^(1/γ)",
            "DibeRegionLoss",
            (*_TVERSKY, replace(_GAMMA, default=1.5, help="γ of (−log Tv)^(1/γ)", positive=True)),
        ),
        LossSpec(
            "dibe",
            "θ·dibe-dis + (1 − θ)·dibe-reg, one α (β = 1 − α), λ, γ",
            "DibeLoss",
            (
                _THETA,
                _DIBE_ALPHA,
                _LAMBDA,
                replace(_GAMMA, help="γ of both terms", positive=True),
                *_REGION,
            ),
        ),
        LossSpec("combo", "θ·wbce + (1 − θ)·dice", "ComboLoss", (_THETA, *_REGION)),
        LossSpec(
            "el",
            "exponential logarithmic: θ·(−log p_t)^γce + (1 − θ)·(−log Dc)^γdc",
            "ExpLogLoss",
            (
                replace(_THETA, default=0.2),
                Param("gamma_ce", 0.3, "γce, exponent of the cross-entropy term", 0.0),
                Param("gamma_dice", 0.3, "γdc, exponent of the Dice term", 0.0),
                *_REGION,
            ),
        ),
        LossSpec(
            "hf",
            "hybrid focal: θ·focal + (1 − θ)·focal-tversky",
            "HybridFocalLoss",
            (
                _THETA,
                _GAMMA,
                _ALPHA,
                _BETA,
                Param("gamma_tversky", 0.75, "γ of the focal-Tversky term", positive=True),
                *_REGION,
            ),
        ),
    )
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)

# Other keys callers may use for a parameter (``--lambda`` is the short option).
ALIASES = {"lambda": "focal_lambda", "classes": "loss_classes"}


def param_defaults(param: str) -> dict[str, Any]:
    """{loss: default} for every loss that takes ``param`` (for an option's help text)."""
    return {
        spec.name: p.default for spec in LOSSES.values() for p in spec.params if p.name == param
    }


def resolve_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The loss's hyper-parameters: given values (None = default) checked, defaults filled."""
    if name not in LOSSES:
        raise TinysegError(f"loss: expected one of {', '.join(LOSSES)}, found {name!r}")
    known = {p.name: p for p in LOSSES[name].params}
    given = {ALIASES.get(k, k): v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(given) - set(known))
    if unknown:
        options = ", ".join(p.option for p in known.values()) or "none"
        found = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise TinysegError(f"loss {name}: expected options among {options}, found {found}")
    return {k: p.check(name, given[k]) if k in given else p.default for k, p in known.items()}

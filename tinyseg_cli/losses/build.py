"""`build_loss`: the one place that turns a loss name and its options into a module."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.losses import modules
from tinyseg_cli.losses.names import LOSSES, resolve_params


def _checked_weights(
    name: str, weights: Sequence[float] | None, expected: int
) -> list[float] | None:
    if weights is None:
        return None
    values = [float(w) for w in weights]
    if len(values) != expected:
        raise TinysegError(
            f"loss {name}: class weights: expected {expected} values, found {len(values)}"
        )
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise TinysegError(
            f"loss {name}: class weights: expected finite values >= 0 with a positive sum, "
            f"found {values}"
        )
    return values


def _class_index(name: str, item: Any, class_names: Sequence[str] | None) -> int:
    text = str(item).strip()
    if class_names is not None and text in class_names:
        return list(class_names).index(text)
    try:
        return int(text)
    except ValueError:
        known = f" or one of {', '.join(class_names)}" if class_names else ""
        raise TinysegError(
            f"loss {name}: --loss-classes: expected a class index{known}, found {text!r}"
        ) from None


def _checked_classes(
    name: str, classes: Any, binary: bool, n_classes: int, class_names: Sequence[str] | None
) -> list[int]:
    if binary:
        raise TinysegError(
            f"loss {name}: --loss-classes: expected a multi-class model, found a binary one"
        )
    items = classes.split(",") if isinstance(classes, str) else list(classes)
    values = sorted({_class_index(name, c, class_names) for c in items})
    if not values or values[0] < 0 or values[-1] >= n_classes:
        raise TinysegError(
            f"loss {name}: --loss-classes: expected class indices in [0, {n_classes - 1}], "
            f"found {classes}"
        )
    return values


def build_loss(
    name: str,
    *,
    n_classes: int,
    binary: bool,
    class_weights: Sequence[float] | None,
    params: Mapping[str, Any] | None,
    ignore_index: int,
    class_names: Sequence[str] | None = None,
) -> nn.Module:
    """The loss module ``loss(logits, target)`` for ``name`` (SPEC §6.3).

    n_classes: K, the model's output channels for a multi-class model (ignored when
    ``binary``: one output channel, target 1 = the positive class). class_weights: α_c for
    the K classes, or (α_neg, α_pos) for a binary model (``classweights --binary``); losses
    that do not use weights ignore them (``LossSpec.class_weights == "unused"``).
    params: hyper-parameters by `Param.name` (None = the default); ``loss_classes`` may be
    indices, or names of ``class_names``, as a list or a comma-separated string.
    The module's ``config`` attribute holds the name and resolved values, JSON-able.
    """
    values = resolve_params(name, params)
    spec = LOSSES[name]
    if spec.binary_only and not binary:
        raise TinysegError(
            f"loss {name}: expected a binary model (--binary C), found {n_classes} classes; "
            "use ce for a multi-class model"
        )
    if not binary and n_classes < 2:
        raise TinysegError(f"loss {name}: expected at least 2 classes, found {n_classes}")
    if values.get("loss_classes") is not None:
        values["loss_classes"] = _checked_classes(
            name, values["loss_classes"], binary, n_classes, class_names
        )
    weights = _checked_weights(name, class_weights, 2 if binary else n_classes)
    if spec.class_weights == "required" and weights is None:
        raise TinysegError(f"loss {name}: expected class weights (--class-weights), found none")
    if spec.class_weights == "unused":
        weights = None
    factory = getattr(modules, spec.module)
    loss = factory(
        binary=binary, ignore_index=ignore_index, class_weights=weights, **spec.fixed, **values
    )
    loss.config = {"name": name, "params": values}
    return loss

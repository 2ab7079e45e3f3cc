"""Segmentation losses of SPEC §6.3: pure functions, `nn.Module` wrappers, a registry.

``build_loss(name, ...)`` builds a loss by name; ``LOSSES`` lists each loss's
hyper-parameters with defaults and help (the train command's options). Importing the
package does not import torch; `build_loss` and the modules load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tinyseg_cli.losses.names import (
    ALIASES,
    LOSS_NAMES,
    LOSSES,
    LossSpec,
    Param,
    param_defaults,
    resolve_params,
)

if TYPE_CHECKING:
    from tinyseg_cli.losses.build import build_loss
    from tinyseg_cli.losses.modules import SegmentationLoss

__all__ = [
    "ALIASES",
    "LOSSES",
    "LOSS_NAMES",
    "LossSpec",
    "Param",
    "SegmentationLoss",
    "build_loss",
    "param_defaults",
    "resolve_params",
]


def __getattr__(name: str) -> Any:
    if name == "build_loss":
        from tinyseg_cli.losses.build import build_loss

        return build_loss
    if name == "SegmentationLoss":
        from tinyseg_cli.losses.modules import SegmentationLoss

        return SegmentationLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

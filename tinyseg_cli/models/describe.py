"""Size of a network (SPEC §7.2 "report parameters and FLOPs"): parameter counts and the
FLOPs of one forward pass, counted by ``torch.utils.flop_counter.FlopCounterMode``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tinyseg_cli.models.build import check_input_size, meta_model, normalise_spec


def describe(
    model: nn.Module, spec: Mapping[str, Any], input_hw: tuple[int, int]
) -> dict[str, int]:
    """``{"parameters", "trainable", "flops"}`` of ``model`` for one image of ``input_hw``.

    FLOPs count a multiply-add as 2 and cover convolutions and matrix products (what
    FlopCounterMode counts; norms and activations are left out). They are counted on a
    shape-only twin of the network on the meta device, so nothing is computed and ``model``
    is left untouched.
    """
    spec = normalise_spec(spec)
    height, width = (int(side) for side in input_hw)
    check_input_size(spec, height, width)
    image = torch.empty(1, spec["in_channels"], height, width, device="meta")
    parameters = list(model.parameters())
    return {
        "parameters": sum(p.numel() for p in parameters),
        "trainable": sum(p.numel() for p in parameters if p.requires_grad),
        "flops": forward_flops(meta_model(spec), image),
    }


def forward_flops(model: nn.Module, image: torch.Tensor) -> int:
    """FLOPs of ``model(image)`` as :func:`describe` counts them (2 per multiply-add of
    convolutions, transposed convolutions and matrix products; biases, norms, activations and
    pooling left out). Give a meta-device model and image to count without computing."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image)
    return int(counter.get_total_flops())

"""Segmentation networks (SPEC §7): any segmentation-models-pytorch architecture × encoder, and
the seed studies' own networks, built from a JSON-able spec stored in checkpoints.

``ARCHITECTURES`` (every accepted ``arch``) is computed on first use: it needs smp, whose
import takes seconds.
"""

from __future__ import annotations

from typing import Any

from tinyseg_cli.models.build import (
    SEED_NETWORKS,
    architecture_names,
    build_model,
    check_input_size,
    load_encoder_weights,
    meta_model,
    min_input_size,
    min_train_batch,
    normalise_spec,
    output_stride,
    to_inference,
)
from tinyseg_cli.models.describe import describe

# ImageNet statistics on images in [0, 1], used by smp's ImageNet encoders (SPEC §4.5).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = [
    "ARCHITECTURES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SEED_NETWORKS",
    "architecture_names",
    "build_model",
    "check_input_size",
    "describe",
    "encoder_names",
    "load_encoder_weights",
    "meta_model",
    "min_input_size",
    "min_train_batch",
    "normalise_spec",
    "output_stride",
    "to_inference",
]


def encoder_names() -> list[str]:
    """smp's encoder names (``tu-<timm model>`` is accepted besides)."""
    from tinyseg_cli.models import smp_models

    return smp_models.encoder_names()


def __getattr__(name: str) -> Any:
    if name == "ARCHITECTURES":
        return tuple(architecture_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

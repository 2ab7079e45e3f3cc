"""Augmentations of SPEC §4.5: ``--augment flip,rot90,rotate:45,shift:0.2``.

Images are (C, H, W) float tensors in [0, 1] before normalisation, masks (H, W) int64. Pixels
that a rotation or shift brings in from outside get the dataset mean (so they become 0 after
normalisation) and the ignore label in the mask, so they add nothing to the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tvf

from tinyseg_cli.errors import TinysegError

KINDS = {"flip": False, "rot90": False, "rotate": True, "shift": True}  # name -> takes a value


@dataclass(frozen=True)
class Augment:
    """One augmentation and its magnitude (degrees for rotate, a fraction for shift)."""

    kind: str
    amount: float = 0.0


def parse_augment(text: str | None) -> tuple[Augment, ...]:
    """``flip,rot90,rotate:45,shift:0.2`` → augmentations; ``none`` or empty → none."""
    if not text or text.strip().lower() == "none":
        return ()
    found: list[Augment] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        kind, _, value = item.partition(":")
        if kind not in KINDS:
            raise TinysegError(f"unknown augmentation {kind!r} (known: {', '.join(KINDS)})")
        if KINDS[kind] != bool(value):
            form = f"{kind}:VALUE" if KINDS[kind] else kind
            raise TinysegError(f"augmentation {item!r}: expected {form}")
        amount = 0.0
        if value:
            try:
                amount = float(value)
            except ValueError:
                raise TinysegError(f"augmentation {item!r}: {value!r} is not a number") from None
            high = 1 if kind == "shift" else math.inf
            if not (math.isfinite(amount) and 0 < amount < high):
                rule = "a number in (0, 1)" if kind == "shift" else "a finite number > 0"
                raise TinysegError(f"augmentation {item!r}: expected {rule}, found {value}")
        found.append(Augment(kind, amount))
    return tuple(found)


def augment(
    image: torch.Tensor,
    mask: torch.Tensor,
    augments: tuple[Augment, ...],
    rng: np.random.Generator,
    fill: list[float],
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply each augmentation with random parameters drawn from ``rng`` (deterministic)."""
    for step in augments:
        if step.kind == "flip":
            if rng.random() < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
            if rng.random() < 0.5:
                image, mask = image.flip(-2), mask.flip(-2)
        elif step.kind == "rot90":
            turns = int(rng.integers(0, 4))
            if turns and image.shape[-1] == image.shape[-2]:  # keep the patch shape
                image, mask = image.rot90(turns, (-2, -1)), mask.rot90(turns, (-2, -1))
        else:
            angle, shift = 0.0, [0, 0]
            if step.kind == "rotate":
                angle = float(rng.uniform(-step.amount, step.amount))
            else:
                h, w = image.shape[-2:]
                shift = [
                    round(float(rng.uniform(-step.amount, step.amount)) * w),
                    round(float(rng.uniform(-step.amount, step.amount)) * h),
                ]
            image, mask = _affine(image, mask, angle, shift, fill, ignore_index)
    return image.contiguous(), mask.contiguous()


def _affine(
    image: torch.Tensor,
    mask: torch.Tensor,
    angle: float,
    shift: list[int],
    fill: list[float],
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    common = {"angle": angle, "translate": shift, "scale": 1.0, "shear": [0.0, 0.0]}
    image = tvf.affine(image, **common, interpolation=InterpolationMode.BILINEAR, fill=fill)
    labels = tvf.affine(
        mask[None].to(torch.float32),
        **common,
        interpolation=InterpolationMode.NEAREST,
        fill=[float(ignore_index)],
    )
    return image, labels[0].round().to(mask.dtype)

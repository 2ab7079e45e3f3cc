"""One-vs-rest fusion: several binary checkpoints, one label map (SPEC §4.6).

Each binary model was trained for one class of a source label map (``config["binary"]``:
its index and name). At every pixel the fused label is the class whose model gives the
highest positive probability among those at or above their own threshold; where none is,
the pixel is background (0). The fused label map keeps the source indices, so a model
for class 2 writes label 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.heads import Head, label_dtype


def check_fusion(heads: Sequence[Head], paths: Sequence[Path]) -> None:
    """Fusion needs binary models of distinct, non-background source classes."""
    seen: dict[int, Path] = {}
    for head, path in zip(heads, paths, strict=True):
        if not head.binary or head.source_index is None:
            kind = (
                "a binary model without its class index"
                if head.binary
                else (f"a {len(head.classes)}-class model")
            )
            raise TinysegError(
                f"{path}: several --checkpoint are fused one-vs-rest and must all be binary "
                f"models of one class (config 'binary'); this is {kind}"
            )
        index = head.source_index
        if index == 0:
            raise TinysegError(
                f"{path}: binary model of class 0, which is the background of the fused map"
            )
        if index in seen:
            raise TinysegError(f"{path}: class {index} is already predicted by {seen[index]}")
        seen[index] = path
    maps = {head.source_classes for head in heads if head.source_classes is not None}
    if len(maps) > 1:
        raise TinysegError(
            "the binary models were trained on different class maps: "
            + " vs ".join(", ".join(names) for names in sorted(maps))
        )


def fused_classes(heads: Sequence[Head]) -> tuple[str, ...]:
    """The fused label map: the source map the models were trained on when recorded, else
    background and each model's class at its source index."""
    size = max(head.source_index or 0 for head in heads) + 1
    recorded = next((head.source_classes for head in heads if head.source_classes), None)
    if recorded is not None and len(recorded) >= size:
        return recorded
    names = ["background", *(str(i) for i in range(1, size))]
    for head in heads:
        names[head.source_index or 0] = head.source_name or str(head.source_index)
    if len(set(names)) != len(names):  # a model's class named like a placeholder
        names = [f"{i}:{name}" for i, name in enumerate(names)]
    return tuple(names)


def fuse_labels(positive: Sequence[torch.Tensor], heads: Sequence[Head]) -> np.ndarray:
    """Labels (h, w): the class of the highest positive probability at or above its
    model's threshold, else 0. ``positive``: each model's (h, w) probability."""
    stacked = torch.stack(list(positive))
    thresholds = torch.tensor([head.threshold for head in heads])[:, None, None]
    candidate = torch.where(stacked >= thresholds, stacked, torch.tensor(-1.0))
    best, which = candidate.max(dim=0)
    indices = torch.tensor([head.source_index for head in heads])
    labels = torch.where(best >= 0, indices[which], torch.tensor(0))
    return labels.numpy().astype(label_dtype(len(fused_classes(heads))))


def fuse_probabilities(positive: Sequence[torch.Tensor], heads: Sequence[Head]) -> np.ndarray:
    """The ``--probs`` planes (C, h, w) float16 of a fusion: each model's positive probability
    at its class, 1 − their maximum at background, 0 for classes no model predicts.

    They do not sum to 1 (the models are independent), but their argmax is the fused label
    whenever every threshold is 0.5.
    """
    classes = fused_classes(heads)
    height, width = positive[0].shape
    planes = torch.zeros(len(classes), height, width)
    for probability, head in zip(positive, heads, strict=True):
        planes[head.source_index] = probability
    planes[0] = 1 - torch.stack(list(positive)).amax(dim=0)
    return planes.numpy().astype(np.float16)

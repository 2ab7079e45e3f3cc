"""What a network's logits mean: class probabilities and labels of one model (SPEC §4.6).

A multi-class model's K logits go through a softmax and the label is their argmax; a binary
one-vs-rest model has one logit, its sigmoid is the probability of the class, and the label
is 1 where that probability reaches the threshold (``>=``, as ``score --threshold``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyseg_cli.errors import TinysegError

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Head:
    """How one model's output becomes labels, and the label map they belong to."""

    classes: tuple[str, ...]
    binary: bool = False
    threshold: float = DEFAULT_THRESHOLD
    source_index: int | None = None  # one-vs-rest: the class in the source label map
    source_name: str | None = None
    source_classes: tuple[str, ...] | None = None  # the source label map, when recorded


def label_dtype(n_classes: int) -> np.dtype:
    """uint8 labels up to 255 classes, uint16 beyond."""
    return np.dtype(np.uint8 if n_classes <= 255 else np.uint16)


def head_of(
    config: dict[str, Any], out_channels: int, threshold: float | None, path: Path | str
) -> Head:
    """The head a checkpoint's config describes; ``threshold`` overrides a binary model's own."""
    classes = config.get("classes")
    binary = config.get("binary")
    if binary is not None or out_channels == 1:
        if out_channels != 1:
            raise TinysegError(
                f"{path}: a binary (one-vs-rest) model needs 1 output, the network has "
                f"{out_channels}"
            )
        binary = binary or {}
        name = str(binary.get("name", "foreground"))
        names = tuple(classes) if classes and len(classes) == 2 else ("rest", name)
        own = binary.get("threshold")
        own = DEFAULT_THRESHOLD if own is None else float(own)
        index = binary.get("index")
        source = binary.get("source_classes")
        return Head(
            names,
            binary=True,
            threshold=own if threshold is None else threshold,
            source_index=None if index is None else int(index),
            source_name=name,
            source_classes=tuple(map(str, source)) if source else None,
        )
    if not classes:
        classes = [str(i) for i in range(out_channels)]
    if len(classes) != out_channels:
        raise TinysegError(
            f"{path}: config names {len(classes)} classes but the network has {out_channels} "
            "outputs"
        )
    if threshold is not None:
        raise TinysegError(
            f"{path}: --threshold is for binary models; this one has {out_channels} classes"
        )
    return Head(tuple(str(name) for name in classes))


def probabilities(logits: torch.Tensor, head: Head) -> torch.Tensor:
    """(K, h, w) logits → probabilities: the sigmoid (1, h, w) of a binary model, else softmax."""
    return torch.sigmoid(logits) if head.binary else torch.softmax(logits, dim=0)


def labels_of(probs: torch.Tensor, head: Head) -> np.ndarray:
    """Labels (h, w) from one model's probabilities."""
    if head.binary:
        return (probs[0] >= head.threshold).numpy().astype(np.uint8)
    return argmax_labels(probs, label_dtype(len(head.classes)))


def argmax_labels(scores: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """Index of the largest of (K, h, w) scores per pixel, the first one on ties.

    One pass per class: several times faster on CPU than ``argmax(dim=0)``, which reduces
    over the outermost axis.
    """
    best = scores[0].clone()
    labels = torch.zeros(best.shape, dtype=torch.int32)
    for index in range(1, scores.shape[0]):
        higher = scores[index] > best
        labels[higher] = index
        torch.maximum(best, scores[index], out=best)
    return labels.numpy().astype(dtype)


def class_probabilities(probs: torch.Tensor, head: Head) -> np.ndarray:
    """The ``--probs`` planes (C, h, w) float16 of one model: a binary model's (1 − p, p)."""
    if head.binary:
        probs = torch.cat([1 - probs, probs])
    return probs.numpy().astype(np.float16)

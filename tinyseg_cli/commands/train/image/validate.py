"""Validation during training: full-region inference on the val split, scored as ``score``
scores (SPEC §4.5, §5), so the numbers in the training log match a later ``tinyseg score``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tinyseg_cli.commands.train.common import Validation, validation_of
from tinyseg_cli.commands.train.image.plan import TrainPlan
from tinyseg_cli.data.datasets import targets
from tinyseg_cli.inference.predict import predict_labels
from tinyseg_cli.io.images import read_image
from tinyseg_cli.io.masks import open_mask
from tinyseg_cli.metrics.counts import confusion_matrix


def truth_labels(plan: TrainPlan, sample: Any) -> np.ndarray:
    """The val mask inside its ROI, mapped one-vs-rest for a binary model."""
    mask = open_mask(
        sample.mask, palette=plan.labelling.palette, roi=sample.roi, rule=sample.mask_rule
    )
    return targets(mask[0 : mask.shape[0]], plan.labelling)


def validate(
    model: torch.nn.Module,
    plan: TrainPlan,
    config: dict[str, Any],
    device: torch.device,
    select: str,
) -> Validation:
    """Predict every val sample whole, count, and score; the model is left in train mode."""
    n_classes = len(plan.class_map)
    matrix = np.zeros((n_classes, n_classes), np.int64)
    was_training = model.training
    model.eval()
    try:
        for sample in plan.val:
            image = read_image(sample.image, plan.options.in_channels, sample.roi)
            pred = predict_labels(
                model, config, image, max_pixels=plan.options.max_pixels, device=device
            )
            truth = truth_labels(plan, sample)
            matrix += confusion_matrix(truth, pred, n_classes, plan.options.ignore_index)
    finally:
        model.train(was_training)
    return validation_of(matrix, range(1, n_classes), len(plan.val), select)

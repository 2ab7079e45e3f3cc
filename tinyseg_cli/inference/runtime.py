"""How a network runs for inference: channels-last input on CPU, autocast on GPU, no autograd
(SPEC §8)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device holding the model's parameters (CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block, back in its former mode after (training calls)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def forward(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Logits (N, K, h, w) float32 on the CPU for a normalised batch (N, C, h, w)."""
    device = model_device(net)
    batch = batch.to(device, non_blocking=True)
    autocast: contextlib.AbstractContextManager = contextlib.nullcontext()
    if device.type == "cuda":
        autocast = torch.autocast("cuda", dtype=torch.float16)
    else:  # channels-last input picks the fast CPU convolutions (SPEC §8)
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast:
        logits = net(batch)
    return logits.float().cpu().contiguous()


@dataclass
class Runner:
    """One network ready to predict, with the normalisation it was trained with."""

    net: nn.Module
    mean: np.ndarray  # (C,) float32, on images in [0, 1]
    std: np.ndarray

    def normalise(self, image_hwc: np.ndarray) -> torch.Tensor:
        """(h, w, C) floats in [0, 1] → (C, h, w) float32, (x − mean) / std per channel."""
        chw = np.moveaxis(image_hwc, -1, 0) - self.mean[:, None, None]
        chw /= self.std[:, None, None]  # in place: a band of a large image is big
        return torch.from_numpy(chw)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return forward(self.net, batch)

"""In-memory inference of one image, for images that fit in memory: training validation calls
:func:`predict_labels` on each val image (SPEC §4.5), so its scores are those of ``infer``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyseg_cli.inference.heads import head_of, labels_of, probabilities
from tinyseg_cli.inference.padding import reflect_index
from tinyseg_cli.inference.resize import ResizedBack, resize_image
from tinyseg_cli.inference.runtime import Runner, evaluating, forward, model_device
from tinyseg_cli.inference.tiled import Run, iter_bands, plan_grid

DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 64
DEFAULT_BLEND = "linear"


@dataclass(frozen=True)
class TileOptions:
    """When and how an image is tiled (``infer --max-pixels --tile --overlap --blend --batch``)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    blend: str = DEFAULT_BLEND
    batch: int = 1


def tensor_logits(
    run: Run, image_chw: torch.Tensor, stride: int, options: TileOptions, minimum: int = 1
) -> torch.Tensor:
    """Blended logits (K, H, W) of a normalised (C, H, W) image held in memory: one padded
    pass when it fits ``options.max_pixels``, else tiles."""
    _, height, width = image_chw.shape
    grid = plan_grid(
        height,
        width,
        stride,
        max_pixels=options.max_pixels,
        tile=options.tile,
        overlap=options.overlap,
        blend=options.blend,
        minimum=minimum,
    )
    rows = torch.from_numpy(reflect_index(height, grid.rows.padded))
    cols = torch.from_numpy(reflect_index(width, grid.cols.padded))
    wide = image_chw.index_select(2, cols)
    bands = iter_bands(
        [run], lambda a, b: [wide.index_select(1, rows[a:b])], grid, batch=options.batch
    )
    return torch.cat([logits[0] for _, _, logits in bands], dim=1)


def predict_logits(
    model: nn.Module,
    image_chw: torch.Tensor | np.ndarray,
    *,
    stride: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    blend: str = DEFAULT_BLEND,
    device: torch.device | str | None = None,
    batch: int = 1,
    minimum: int = 1,
) -> torch.Tensor:
    """Blended logits (K, H, W) float32 on the CPU of a normalised (C, H, W) image.

    The model runs where its parameters are (``device``, when given, moves it there) and in
    eval mode for the call; its former mode is restored after.
    """
    if device is not None and model_device(model) != torch.device(device):
        model = model.to(device)
    options = TileOptions(max_pixels, tile, overlap, blend, batch)
    image = torch.as_tensor(np.asarray(image_chw, np.float32))
    with evaluating(model):
        return tensor_logits(lambda b: forward(model, b), image, stride, options, minimum)


def predict_labels(
    model: nn.Module,
    config: dict[str, Any],
    image: np.ndarray,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: torch.device | str | None = None,
    threshold: float | None = None,
    options: TileOptions | None = None,
) -> np.ndarray:
    """Labels (H, W) uint8 (uint16 beyond 255 classes) of an (H, W, C) image in [0, 1].

    Normalised with ``config["normalisation"]``; resized to ``config["input"]["resize"]``
    and back (nearest) when the model was trained that way; padded to the network stride;
    argmax of the softmax, or the sigmoid against the threshold for a binary model
    (``threshold``, else ``config["binary"]["threshold"]``, else 0.5).
    """
    from tinyseg_cli import models

    spec = models.normalise_spec(config["model"])
    options = options or TileOptions(max_pixels=max_pixels)
    if device is not None and model_device(model) != torch.device(device):
        model = model.to(device)
    norm = config["normalisation"]
    runner = Runner(
        model, np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
    )
    head = head_of(config, spec["out_channels"], threshold, "checkpoint config")
    height, width = image.shape[:2]
    chw = runner.normalise(np.asarray(image, np.float32))
    resize = (config.get("input") or {}).get("resize")
    if resize:
        chw = resize_image(chw, (int(resize[0]), int(resize[1])))
    with evaluating(model):
        logits = tensor_logits(
            runner, chw, models.output_stride(spec), options, models.min_input_size(spec)
        )
    probs = probabilities(logits, head)
    if resize:
        probs = ResizedBack(probs, height, width).nearest(0, height)
    return labels_of(probs, head)

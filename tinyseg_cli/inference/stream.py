"""One image through one model or a one-vs-rest fusion of several, as bands of finished rows:
labels and, with ``--probs``, float16 class probabilities (SPEC §4.6).

Models trained on whole images resized to a fixed size predict at that size and are
resized back band by band; the others share one grid of tiles (stride: the least common
multiple of theirs), so the bands of every model line up and fuse pixel by pixel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.fusion import (
    check_fusion,
    fuse_labels,
    fuse_probabilities,
    fused_classes,
)
from tinyseg_cli.inference.heads import (
    Head,
    class_probabilities,
    label_dtype,
    labels_of,
    probabilities,
)
from tinyseg_cli.inference.model import LoadedModel
from tinyseg_cli.inference.padding import reflect_index
from tinyseg_cli.inference.predict import TileOptions, tensor_logits
from tinyseg_cli.inference.resize import ResizedBack, resize_image
from tinyseg_cli.inference.tiled import Grid, iter_bands, plan_grid
from tinyseg_cli.io.image_rows import ImageRows

RESIZED_BAND_PIXELS = 1 << 22  # rows handed out per band when every model resizes


@dataclass(frozen=True)
class Ensemble:
    """The models of one run: one checkpoint, or binary checkpoints fused one-vs-rest."""

    models: tuple[LoadedModel, ...]

    @property
    def fused(self) -> bool:
        """Several binary models fused one-vs-rest."""
        return len(self.models) > 1

    @property
    def heads(self) -> list[Head]:
        """Each model's head, in ``--checkpoint`` order."""
        return [model.head for model in self.models]

    @property
    def classes(self) -> tuple[str, ...]:
        """The label map of the output."""
        return fused_classes(self.heads) if self.fused else self.models[0].head.classes

    @property
    def dtype(self) -> np.dtype:
        """The label maps' dtype."""
        return label_dtype(len(self.classes))

    @property
    def channels(self) -> int:
        """Channels of the images the models read."""
        return self.models[0].channels

    @property
    def stride(self) -> int:
        """The side every padded input and tile is a multiple of."""
        return math.lcm(*(model.stride for model in self.models))

    @property
    def min_size(self) -> int:
        """The smallest side every model accepts."""
        return max(model.min_size for model in self.models)


def make_ensemble(models: Sequence[LoadedModel]) -> Ensemble:
    """Check that ``models`` can run together: one model, or binary models of distinct
    classes that read images of the same channels."""
    if len(models) > 1:
        check_fusion([m.head for m in models], [m.path for m in models])
        for model in models[1:]:
            if model.channels != models[0].channels:
                raise TinysegError(
                    f"{model.path}: takes {model.channels}-channel images, {models[0].path} "
                    f"takes {models[0].channels}; fused models must read the same images"
                )
    return Ensemble(tuple(models))


@dataclass(frozen=True)
class ImagePlan:
    """How one image is predicted: ``full`` (one pass), ``tiled``, or ``resized``."""

    mode: str
    grid: Grid | None
    height: int
    width: int

    def band_ends(self) -> list[int]:
        """The row after each output band."""
        if self.grid is not None:
            return self.grid.rows.ends()
        step = max(1, RESIZED_BAND_PIXELS // self.width)
        return [min(end, self.height) for end in range(step, self.height + step, step)]

    @property
    def bands(self) -> int:
        """How many output bands the image has (1: predicted whole, in memory)."""
        return len(self.band_ends())

    def bands_from(self, start_row: int) -> int:
        """How many bands remain when the rows before ``start_row`` are done."""
        return sum(end > start_row for end in self.band_ends())


def plan_image(ensemble: Ensemble, height: int, width: int, options: TileOptions) -> ImagePlan:
    """Full pass, tiles, or resize (when every model was trained on resized images)."""
    if all(model.resize is not None for model in ensemble.models):
        return ImagePlan("resized", None, height, width)
    grid = plan_grid(
        height,
        width,
        ensemble.stride,
        max_pixels=options.max_pixels,
        tile=options.tile,
        overlap=options.overlap,
        blend=options.blend,
        minimum=ensemble.min_size,
    )
    return ImagePlan("tiled" if grid.tiled else "full", grid, height, width)


@dataclass(frozen=True)
class OutputBand:
    """Rows ``y0:y1`` of the prediction: labels (h, W) and optional probabilities (C, h, W)."""

    y0: int
    y1: int
    labels: np.ndarray
    probs: np.ndarray | None


def _resized_back(model: LoadedModel, image: ImageRows, options: TileOptions) -> ResizedBack:
    assert model.resize is not None
    chw = resize_image(model.runner.normalise(image.read_all()), model.resize)
    logits = tensor_logits(model.runner, chw, model.stride, options, model.min_size)
    return ResizedBack(probabilities(logits, model.head), image.height, image.width)


def _grid_bands(
    models: Sequence[LoadedModel], image: ImageRows, grid: Grid, batch: int, start_row: int
) -> Iterator[tuple[int, int, list[torch.Tensor]]]:
    rows = reflect_index(image.height, grid.rows.padded)
    cols = reflect_index(image.width, grid.cols.padded)

    def read_band(y0: int, y1: int) -> list[torch.Tensor]:
        pixels = image.read(rows[y0:y1], cols)
        image.release(min(y0, image.height))  # later tile rows start lower
        return [model.runner.normalise(pixels) for model in models]

    runs = [model.runner for model in models]
    for y0, y1, logits in iter_bands(runs, read_band, grid, batch=batch, start_row=start_row):
        yield y0, y1, [probabilities(lg, m.head) for lg, m in zip(logits, models, strict=True)]


def _combine(
    ensemble: Ensemble, decide: list[torch.Tensor], report: list[torch.Tensor] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if not ensemble.fused:
        head = ensemble.models[0].head
        planes = None if report is None else class_probabilities(report[0], head)
        return labels_of(decide[0], head), planes
    heads = ensemble.heads
    labels = fuse_labels([d[0] for d in decide], heads)
    planes = None if report is None else fuse_probabilities([r[0] for r in report], heads)
    return labels, planes


def image_bands(
    ensemble: Ensemble,
    image: ImageRows,
    plan: ImagePlan,
    options: TileOptions,
    *,
    probs: bool = False,
    start_row: int = 0,
) -> Iterator[OutputBand]:
    """The prediction of ``image``, top to bottom, from row ``start_row`` on."""
    if start_row >= image.height:  # every row was done before an interruption
        return
    models = ensemble.models
    resized = {i: _resized_back(m, image, options) for i, m in enumerate(models) if m.resize}
    if plan.grid is not None:
        gridded = [m for m in models if m.resize is None]
        bands = _grid_bands(gridded, image, plan.grid, options.batch, start_row)
    else:
        ends = [end for end in plan.band_ends() if end > start_row]
        starts = [start_row, *ends[:-1]]
        bands = ((y0, y1, []) for y0, y1 in zip(starts, ends, strict=True))
    for y0, y1, tiled_probs in bands:
        pending = iter(tiled_probs)
        decide, report = [], []
        for i in range(len(models)):
            if i in resized:  # nearest for the labels, bilinear for the probabilities
                decide.append(resized[i].nearest(y0, y1))
                report.append(resized[i].bilinear(y0, y1) if probs else decide[-1])
            else:
                decide.append(next(pending))
                report.append(decide[-1])
        labels, planes = _combine(ensemble, decide, report if probs else None)
        yield OutputBand(y0, y1, labels, planes)

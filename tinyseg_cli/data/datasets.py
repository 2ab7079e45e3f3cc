"""Patches for training: what each epoch shows the network, and how one patch is read.

An epoch is a deterministic list of :class:`Patch` (from a patch table draw, random windows,
or whole resized images); :class:`EpochSampler` shuffles it with the seed and the epoch
number, so a resumed run sees exactly the batches an uninterrupted one would have seen.
Workers read TIFF/PNG files lazily, each keeping a few decoded images in a small cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from tinyseg_cli.data.augment import Augment, augment
from tinyseg_cli.data.samples import Sample
from tinyseg_cli.io.images import normalise, read_image
from tinyseg_cli.io.masks import open_mask
from tinyseg_cli.io.palette import Palette


@dataclass(frozen=True)
class Patch:
    """A window (image coordinates) of one sample; ``resize`` scales it to (H, W)."""

    sample: Sample
    y: int
    x: int
    h: int
    w: int
    resize: tuple[int, int] | None = None


@dataclass(frozen=True)
class Labelling:
    """How mask values become training targets."""

    ignore_index: int = 255
    palette: Palette | None = None
    binary_index: int | None = None  # one-vs-rest: this class → 1, every other class → 0


def targets(labels: np.ndarray, labelling: Labelling) -> np.ndarray:
    """Mask labels as the network's targets: one-vs-rest (C → 1, others → 0) when binary,
    the ignore label kept."""
    index = labelling.binary_index
    if index is None:
        return labels
    out = (labels == index).astype(labels.dtype)
    out[labels == labelling.ignore_index] = labelling.ignore_index
    return out


def window(sample: Sample, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The sample's ROI (or whole image of ``shape``) as (y0, x0, y1, x1)."""
    return sample.roi if sample.roi is not None else (0, 0, shape[0], shape[1])


def random_patches(
    samples: list[Sample],
    shapes: dict[str, tuple[int, int]],
    size: int,
    per_image: int,
    rng: np.random.Generator,
) -> list[Patch]:
    """``per_image`` uniformly placed ``size``² windows inside each sample's ROI."""
    patches = []
    for sample in samples:
        y0, x0, y1, x1 = window(sample, shapes[sample.sample_id])
        ys = rng.integers(y0, y1 - size + 1, per_image)
        xs = rng.integers(x0, x1 - size + 1, per_image)
        patches += [Patch(sample, int(y), int(x), size, size) for y, x in zip(ys, xs, strict=True)]
    return patches


def whole_images(
    samples: list[Sample], shapes: dict[str, tuple[int, int]], resize: tuple[int, int]
) -> list[Patch]:
    """Each sample's whole ROI, to be resized to ``resize``."""
    patches = []
    for sample in samples:
        y0, x0, y1, x1 = window(sample, shapes[sample.sample_id])
        patches.append(Patch(sample, y0, x0, y1 - y0, x1 - x0, resize))
    return patches


class PatchDataset(Dataset):
    """Reads ``(epoch, position, patch)`` keys into normalised image and target tensors."""

    def __init__(
        self,
        *,
        channels: int,
        mean: list[float],
        std: list[float],
        labelling: Labelling,
        augments: tuple[Augment, ...] = (),
        seed: int = 0,
        cache_images: int = 16,
    ) -> None:
        self.channels, self.mean, self.std = channels, mean, std
        self.labelling, self.augments, self.seed = labelling, augments, seed
        self.cache_images = cache_images
        self._cache: OrderedDict[tuple[str, Path], np.ndarray] = OrderedDict()

    def _cached(self, key: tuple[str, Path], read: Callable[[], np.ndarray]) -> np.ndarray:
        """``read()``, kept for the next patches of the same image (key: what, and its file:
        a row without a mask names its image for both)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = read()
        self._cache[key] = value
        while len(self._cache) > self.cache_images:
            self._cache.popitem(last=False)
        return value

    def read_labels(self, sample: Sample) -> np.ndarray:
        """Training targets of a whole mask: class labels, one-vs-rest when binary."""
        label_map = open_mask(sample.mask, palette=self.labelling.palette, rule=sample.mask_rule)
        return targets(label_map[0 : label_map.shape[0]].astype(np.int64), self.labelling)

    def __getitem__(self, key: tuple[int, int, Patch]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, position, patch = key
        sample = patch.sample
        image = self._cached(
            ("image", sample.image), lambda: read_image(sample.image, self.channels)
        )
        labels = self._cached(("labels", sample.mask), lambda: self.read_labels(sample))
        rows, cols = slice(patch.y, patch.y + patch.h), slice(patch.x, patch.x + patch.w)
        pixels = torch.from_numpy(np.ascontiguousarray(image[rows, cols])).permute(2, 0, 1)
        target = torch.from_numpy(np.ascontiguousarray(labels[rows, cols]))
        if patch.resize is not None:
            pixels, target = _resized(pixels, target, patch.resize)
        if self.augments:
            rng = np.random.default_rng([self.seed, epoch, position])
            fill = [float(v) for v in self.mean]
            pixels, target = augment(
                pixels, target, self.augments, rng, fill, self.labelling.ignore_index
            )
        normalised = normalise(pixels.permute(1, 2, 0).numpy(), self.mean, self.std)
        return torch.from_numpy(np.ascontiguousarray(normalised)), target


def _resized(
    pixels: torch.Tensor, target: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear for the image, nearest for the labels (SPEC §4.5)."""
    image = F.interpolate(pixels[None], size=size, mode="bilinear", align_corners=False)[0]
    labels = F.interpolate(target[None, None].to(torch.float32), size=size, mode="nearest")
    return image, labels[0, 0].to(torch.int64)


class EpochSampler(Sampler):
    """Keys of one epoch, shuffled by (seed, epoch); DDP ranks take interleaved shares.

    ``start`` skips the keys a resumed run has already trained on in its first epoch.
    """

    def __init__(
        self,
        patches: list[Patch],
        *,
        epoch: int,
        seed: int,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        start: int = 0,
    ) -> None:
        order = np.random.default_rng([seed, epoch, 1]).permutation(len(patches))
        per_rank = len(patches) // world
        mine = order[rank::world][:per_rank]
        usable = (len(mine) // batch_size) * batch_size  # whole batches only
        self.keys = [(epoch, int(i), patches[int(i)]) for i in mine[:usable]][start:]

    def __iter__(self) -> Iterator[tuple[int, int, Patch]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

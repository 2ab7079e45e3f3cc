"""Training rows for ``resample``: the manifest's rows, and a survey of each mask (SPEC §4.2).

The survey validates a sample (files, image/mask shapes, labels, ROI at least one patch
large) and counts, per class, its pixels and its candidate patches, so that draws can be
made over all samples before any patch is placed. Memory stays bounded by one mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from tinyseg_cli.data.samples import Sample, training_rows
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata
from tinyseg_cli.io.image_rows import image_size
from tinyseg_cli.io.masks import open_mask
from tinyseg_cli.io.palette import Palette
from tinyseg_cli.io.paths import not_a_file
from tinyseg_cli.io.tables import read_table, table_metadata
from tinyseg_cli.metrics.counts import LabelOutOfRange, label_counts
from tinyseg_cli.prep.patches import candidate_tops, valid_patches
from tinyseg_cli.runtime.parallel import parallel_map


@dataclass(frozen=True)
class Manifest:
    name: str
    samples: list[Sample]
    class_map: ClassMap | None


def read_manifest(spec: str) -> Manifest:
    """The training rows of a manifest (``split == 'train'``, or every row without a
    ``split`` column); paths resolve relative to the table (to the CWD on stdin)."""
    name = "<stdin>" if spec == "-" else spec
    table = read_table(spec)
    samples = training_rows(table, spec)
    return Manifest(name, samples, class_map_from_metadata(table_metadata(table)))


@dataclass(frozen=True)
class Settings:
    """How masks become labels and patches; what every worker needs."""

    size: int
    n_classes: int | None
    ignore_index: int | None = 255
    palette: Palette | None = None


@dataclass(frozen=True)
class Survey:
    """One sample's ROI shape, pixels of each class and candidate patches of each class."""

    shape: tuple[int, int]
    pixels: np.ndarray
    candidates: np.ndarray


def read_labels(sample: Sample, settings: Settings) -> np.ndarray:
    """The class labels of a sample's mask inside its ROI."""
    mask = open_mask(sample.mask, palette=settings.palette, roi=sample.roi, rule=sample.mask_rule)
    return mask[:]


def survey_sample(sample: Sample, settings: Settings) -> Survey:
    """Validate one sample and count its pixels and candidate patches per class."""
    label_map = open_mask(
        sample.mask, palette=settings.palette, roi=sample.roi, rule=sample.mask_rule
    )
    shapes = [image_size(sample.image), label_map.full_shape]
    if shapes[0] != shapes[1]:
        image, mask = ("×".join(map(str, shape)) for shape in shapes)
        raise TinysegError(f"{sample.image}: image is {image} but its mask is {mask}")
    height, width = label_map.shape
    size = settings.size
    if height < size or width < size:
        where = "ROI" if sample.roi else "mask"
        raise TinysegError(
            f"{sample.mask}: sample {sample.sample_id!r}: {where} {height}×{width} is smaller "
            f"than the {size}×{size} patch"
        )
    labels = label_map[:]
    try:
        pixels = label_counts(labels, settings.n_classes, settings.ignore_index)
    except LabelOutOfRange as error:
        where = label_map.position(error.flat_index)
        raise TinysegError(f"{sample.mask}: pixel {where}: {error}") from None
    candidates = np.zeros(pixels.size, np.int64)
    for c in np.flatnonzero(pixels):
        candidates[c] = np.count_nonzero(candidate_tops(labels == c, size))
    return Survey((height, width), pixels, candidates)


@dataclass(frozen=True)
class Surveys:
    """Every sample's survey as arrays: (samples, classes) and (samples,)."""

    pixels: np.ndarray
    candidates: np.ndarray
    positions: np.ndarray


def survey_samples(
    samples: list[Sample],
    settings: Settings,
    jobs: int = 1,
    on_done: Callable[[Any], None] | None = None,
) -> Surveys:
    """Survey every sample over ``jobs`` worker processes."""
    for sample in samples:  # before any work starts (SPEC §9)
        for path in (sample.image, sample.mask):
            if not path.is_file():
                raise TinysegError(f"{not_a_file(path)} (sample {sample.sample_id!r})")
    found = parallel_map(partial(survey_sample, settings=settings), samples, jobs, on_done)
    width = max([settings.n_classes or 0, *(s.pixels.size for s in found)])
    pixels = np.zeros((len(found), width), np.int64)
    candidates = np.zeros((len(found), width), np.int64)
    for i, survey in enumerate(found):
        pixels[i, : survey.pixels.size] = survey.pixels
        candidates[i, : survey.candidates.size] = survey.candidates
    positions = np.array([valid_patches(s.shape, settings.size) for s in found], np.int64)
    return Surveys(pixels, candidates, positions)

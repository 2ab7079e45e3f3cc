"""Everything a 2D run decides before the first step: samples, classes, weights, patches,
normalisation and the checkpoint configuration (SPEC §4.5). Inputs are validated here, once,
so the training loop and its data workers can trust them (SPEC §9)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from tinyseg_cli.commands.train.common import read_class_weights, run_class_map
from tinyseg_cli.commands.train.config import TrainOptions, checkpoint_config
from tinyseg_cli.data.augment import Augment, parse_augment
from tinyseg_cli.data.datasets import Labelling, Patch
from tinyseg_cli.data.samples import Sample, split_rows
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap, binary_class_map
from tinyseg_cli.io.images import read_image
from tinyseg_cli.io.masks import open_mask
from tinyseg_cli.io.palette import Palette, load_palette
from tinyseg_cli.io.tables import integer_column, read_table, table_metadata
from tinyseg_cli.metrics.counts import LabelOutOfRange, label_counts
from tinyseg_cli.models import IMAGENET_MEAN, IMAGENET_STD
from tinyseg_cli.runtime.parallel import parallel_map


@dataclass
class SampleInfo:
    """What the pre-flight pass learns about one sample."""

    shape: tuple[int, int]  # of its ROI
    pixels: np.ndarray  # per class, inside the ROI, ignore label excluded
    moments: np.ndarray  # (3, C): sum, sum of squares and count of the image's channels


@dataclass
class TrainPlan:
    """A validated run: the samples, patches and the configuration written into checkpoints."""

    options: TrainOptions
    train: list[Sample]
    val: list[Sample]
    shapes: dict[str, tuple[int, int]]  # full image shape per sample id
    class_map: ClassMap  # of the network's output (rest, C with --binary)
    source_classes: ClassMap  # of the masks
    labelling: Labelling
    class_weights: list[float] | None
    pixels: np.ndarray  # training pixels per output class
    mean: list[float]
    std: list[float]
    augments: tuple[Augment, ...] = ()
    patch_table: list[list[Patch]] | None = None  # one list per draw

    def config(self, model_spec: dict[str, Any]) -> dict[str, Any]:
        """The JSON-able checkpoint ``config`` (SPEC §3)."""
        options = self.options
        binary = None
        if self.labelling.binary_index is not None:
            binary = {
                "index": self.labelling.binary_index,
                "name": self.class_map.names[1],
                "threshold": options.threshold,
                "source_classes": self.source_classes.to_metadata(),
            }
        inputs = {
            "channels": options.in_channels,
            "resize": list(options.resize) if options.resize else None,
            "patch": None if options.resize else options.patch_size,
        }
        return checkpoint_config(
            options, model_spec, self.class_map, (self.mean, self.std), inputs, binary
        )


def prepare_images(options: TrainOptions, jobs: int = 1) -> TrainPlan:
    """Read and validate the inputs of a 2D run: fails before any training starts."""
    augments = parse_augment(options.augment)
    table = read_table(options.manifest)
    metadata = table_metadata(table)
    train = split_rows(table, options.manifest, "train", options.fold)
    val = _val_rows(table, options)
    source_classes = run_class_map(
        options,
        metadata,
        f"{options.manifest}: the manifest carries no class map; pass --classes "
        "(e.g. --classes background,crack)",
    )
    palette = load_palette(options.palette) if options.palette else None
    infos = _inspect(train + val, options, palette, len(source_classes), jobs)
    shapes = {sid: info[0] for sid, info in infos.items()}
    train_pixels = sum((infos[s.sample_id][1].pixels for s in train), np.zeros(1, np.int64))
    if not train_pixels.any():  # a loss of 0 from step 1: nothing would be learnt
        raise TinysegError(
            f"{options.manifest}: no labelled pixel in the {len(train)} training rows: every "
            f"mask pixel (inside the ROIs) is the ignore label {options.ignore_index}"
        )
    class_map, binary_index, pixels = _output_classes(options, source_classes, train_pixels)
    _check_sizes(train, infos, options)
    mean, std = _normalisation(options, [infos[s.sample_id][1] for s in train])
    labelling = Labelling(options.ignore_index, palette, binary_index)
    return TrainPlan(
        options=options,
        train=train,
        val=val,
        shapes=shapes,
        class_map=class_map,
        source_classes=source_classes,
        labelling=labelling,
        class_weights=read_class_weights(options, class_map),
        pixels=pixels,
        mean=mean,
        std=std,
        augments=augments,
        patch_table=_patch_table(options, train, shapes) if options.patches else None,
    )


def _val_rows(table: Any, options: TrainOptions) -> list[Sample]:
    if options.val_every == 0:
        return []
    names = set(table["split"].to_pylist()) if "split" in table.column_names else set()
    if options.fold is None and "val" not in names:
        return []
    return split_rows(table, options.manifest, "val", options.fold)


def inspect_sample(
    sample: Sample, channels: int, palette: Palette | None, n_classes: int, ignore_index: int
) -> tuple[tuple[int, int], SampleInfo]:
    """Check one sample (image and mask agree, labels in the class map) and measure it."""
    image = read_image(sample.image, channels)
    full = image.shape[:2]
    mask = open_mask(sample.mask, palette=palette, rule=sample.mask_rule)
    if tuple(mask.shape) != tuple(full):
        raise TinysegError(
            f"{sample.mask}: mask of {mask.shape[0]}×{mask.shape[1]} but image "
            f"{sample.image.name} is {full[0]}×{full[1]} (sample {sample.sample_id!r})"
        )
    if sample.roi is not None:
        mask = open_mask(sample.mask, palette=palette, roi=sample.roi, rule=sample.mask_rule)
        y0, x0, y1, x1 = sample.roi
        image = image[y0:y1, x0:x1]
    try:
        pixels = label_counts(mask, n_classes, ignore_index)
    except LabelOutOfRange as error:
        position = mask.position(error.flat_index)
        raise TinysegError(f"{sample.mask}: pixel {position}: {error}") from None
    flat = image.reshape(-1, channels).astype(np.float64)
    moments = np.stack([flat.sum(0), (flat * flat).sum(0), np.full(channels, flat.shape[0])])
    return full, SampleInfo(tuple(mask.shape), pixels, moments)  # type: ignore[arg-type]


def _inspect(
    samples: list[Sample],
    options: TrainOptions,
    palette: Palette | None,
    n_classes: int,
    jobs: int,
) -> dict[str, tuple[tuple[int, int], SampleInfo]]:
    check = partial(
        inspect_sample,
        channels=options.in_channels,
        palette=palette,
        n_classes=n_classes,
        ignore_index=options.ignore_index,
    )
    results = parallel_map(check, samples, jobs)
    return {sample.sample_id: result for sample, result in zip(samples, results, strict=True)}


def _output_classes(
    options: TrainOptions, source: ClassMap, pixels: np.ndarray
) -> tuple[ClassMap, int | None, np.ndarray]:
    pixels = np.pad(pixels, (0, len(source) - pixels.size))
    if options.binary is None:
        return source, None, pixels
    index = source.index(options.binary)
    positive = int(pixels[index])
    return binary_class_map(source, index), index, np.array([pixels.sum() - positive, positive])


def _check_sizes(
    train: list[Sample], infos: dict[str, tuple[tuple[int, int], SampleInfo]], options: TrainOptions
) -> None:
    if options.resize is not None or options.patches is not None:
        return
    size = options.patch_size
    for sample in train:
        h, w = infos[sample.sample_id][1].shape
        if h < size or w < size:
            raise TinysegError(
                f"{sample.image}: {'ROI' if sample.roi else 'image'} of {h}×{w} is smaller than "
                f"the patch size {size} (sample {sample.sample_id!r}; lower --patch-size or "
                "use --resize)"
            )


def _normalisation(
    options: TrainOptions, infos: list[SampleInfo]
) -> tuple[list[float], list[float]]:
    """ImageNet statistics for pre-trained encoders, else the training images' own."""
    channels = options.in_channels
    if options.encoder_weights != "none":
        if channels == 3:
            return list(IMAGENET_MEAN), list(IMAGENET_STD)
        return [float(np.mean(IMAGENET_MEAN))] * channels, [float(np.mean(IMAGENET_STD))] * channels
    total = sum((info.moments for info in infos), np.zeros((3, channels)))
    mean = total[0] / total[2]
    std = np.sqrt(np.maximum(total[1] / total[2] - mean * mean, 0.0))
    return [float(m) for m in mean], [float(max(s, 1e-3)) for s in std]


def _patch_table(
    options: TrainOptions, train: list[Sample], shapes: dict[str, tuple[int, int]]
) -> list[list[Patch]]:
    """The draws of a ``resample`` patch table; every patch must come from a training row."""
    spec = options.patches
    assert spec is not None
    table = read_table(spec)
    needed = {"sample_id", "y", "x", "h", "w"}
    if not needed <= set(table.column_names):
        missing = ", ".join(sorted(needed - set(table.column_names)))
        raise TinysegError(f"{spec}: not a patch table (missing columns {missing})")
    by_id = {sample.sample_id: sample for sample in train}
    box = [integer_column(table, c, spec, minimum=int(c in "hw"))[0] for c in ("y", "x", "h", "w")]
    draw = np.zeros(table.num_rows, np.int64)  # no draw column (or an empty draw): draw 0
    if "draw" in table.column_names:
        draw = integer_column(table, "draw", spec, minimum=0, nullable=True)[0]
    draws: dict[int, list[Patch]] = {}
    for index, sample_id in enumerate(table["sample_id"].to_pylist()):
        sample = by_id.get(str(sample_id))
        if sample is None:
            raise TinysegError(
                f"{spec}: row {index}: sample {sample_id!r} is not a training row of "
                f"{options.manifest} (patches from val/test rows would leak)"
            )
        patch = Patch(sample, *(int(values[index]) for values in box))
        height, width = shapes[sample.sample_id]
        if min(patch.y, patch.x) < 0 or patch.y + patch.h > height or patch.x + patch.w > width:
            raise TinysegError(
                f"{spec}: row {index}: patch (y={patch.y}, x={patch.x}, {patch.h}×{patch.w}) "
                f"outside image {sample.image.name} of {height}×{width}"
            )
        draws.setdefault(int(draw[index]), []).append(patch)
    if not draws:
        raise TinysegError(f"{spec}: patch table has no rows")
    sizes = {(p.h, p.w) for patches in draws.values() for p in patches}
    if len(sizes) > 1:
        raise TinysegError(f"{spec}: patches of several sizes {sorted(sizes)}; batches need one")
    return [draws[d] for d in sorted(draws)]


def model_spec(options: TrainOptions, out_channels: int) -> dict[str, Any]:
    """The ``config["model"]`` of the run (see ``tinyseg_cli.models.build_model``)."""
    return {
        "arch": options.arch,
        "encoder": options.encoder,
        "in_channels": options.in_channels,
        "out_channels": out_channels,
    }

"""What one kind of input supplies to the single training loop (SPEC §4.5): the items of an
epoch, a dataset and batch collation that read them, the forward pass from a batch to logits
and targets in the losses' (N, K, H, W) / (N, H, W) layout, validation, and the ``--dry-run``
description. The loop itself (steps, schedule, checkpoints, resume, DDP) knows none of it.

:class:`ImageModality` is the 2D one (patches of images); the 3D one (tiles of a voxel
table) lives in :mod:`tinyseg_cli.commands.train.voxel.plan`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from tinyseg_cli.commands.train.image.plan import TrainOptions, TrainPlan, model_spec
from tinyseg_cli.commands.train.image.validate import Validation, validate
from tinyseg_cli.data.datasets import Patch, PatchDataset, random_patches, whole_images
from tinyseg_cli.errors import TinysegError


class Modality(Protocol):
    """The interface :class:`~tinyseg_cli.commands.train.loop.Trainer` trains through."""

    options: TrainOptions
    amp: bool  # whether bfloat16 autocast may run the forward pass on GPU
    collate: Callable[[list[Any]], Any] | None  # None: the DataLoader's default

    @property
    def validates(self) -> bool:
        """Whether there is anything to validate on."""
        ...

    def model_spec(self) -> dict[str, Any]:
        """``config["model"]`` of the network to train."""
        ...

    def config(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The JSON-able checkpoint ``config`` (SPEC §3)."""
        ...

    def dataset(self) -> Dataset:
        """Reads the keys ``(epoch, position, item)`` of :class:`EpochSampler`."""
        ...

    def epoch_items(self, epoch: int) -> Sequence[Any]:
        """The items (patches, tiles) of ``epoch``, deterministic in (seed, epoch)."""
        ...

    def epoch_size(self, epoch: int) -> int:
        """``len(epoch_items(epoch))``, without drawing them."""
        ...

    def forward(
        self, network: torch.nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Logits (N, K, H, W), targets (N, H, W) on ``device``, and the items in the batch."""
        ...

    def validate(
        self, model: torch.nn.Module, config: dict[str, Any], device: torch.device
    ) -> Validation:
        """Scores of the model on the val split (counts as ``score`` counts)."""
        ...

    def describe(self, model: torch.nn.Module, spec: dict[str, Any]) -> dict[str, Any]:
        """The ``--dry-run`` summary: the network's size and what an epoch holds."""
        ...


class ImageModality:
    """2D images: patches of the split manifest's images (SPEC §4.5)."""

    amp = True
    collate = None

    def __init__(self, plan: TrainPlan) -> None:
        self.plan = plan
        self.options = plan.options

    @property
    def validates(self) -> bool:
        return bool(self.plan.val)

    @property
    def class_map(self) -> Any:
        return self.plan.class_map

    def model_spec(self) -> dict[str, Any]:
        o = self.options
        spec = model_spec(o, 1 if o.binary is not None else len(self.plan.class_map))
        self._check_network(spec)
        return spec

    def input_size(self) -> tuple[int, int]:
        """The height and width of a training input: --resize, the patch table's or the patch."""
        o, table = self.options, self.plan.patch_table
        if table is not None:
            return (table[0][0].h, table[0][0].w)
        return (o.resize[0], o.resize[1]) if o.resize else (o.patch_size, o.patch_size)

    def _check_network(self, spec: dict[str, Any]) -> None:
        """Refuse, before any work, inputs or batches the network cannot train on (smp's own
        errors name neither the option nor the limit)."""
        from tinyseg_cli.models import min_train_batch, normalise_spec

        o, spec = self.options, normalise_spec(spec)
        height, width = self.input_size()
        option = "--resize" if o.resize else "--patches" if o.patches else "--patch-size"
        name = spec["arch"] + (f" with encoder {spec['encoder']}" if spec["encoder"] else "")
        try:  # it checks the input size first
            smallest = min_train_batch(spec, (height, width))
        except TinysegError as error:
            raise TinysegError(f"{option} {height}×{width}: {name}: {error}") from None
        if o.batch_size < smallest:
            raise TinysegError(
                f"--batch-size {o.batch_size}: {name} trains on batches of at least {smallest} "
                f"at {height}×{width} (batch norm would see one value per channel)"
            )

    def config(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.plan.config(spec)

    def dataset(self) -> Dataset:
        o, plan = self.options, self.plan
        return PatchDataset(
            channels=o.in_channels,
            mean=plan.mean,
            std=plan.std,
            labelling=plan.labelling,
            augments=plan.augments,
            seed=o.seed,
        )

    def epoch_items(self, epoch: int) -> list[Patch]:
        return epoch_patches(self.plan, epoch)

    def epoch_size(self, epoch: int) -> int:
        return epoch_size(self.plan, epoch)

    def forward(
        self, network: torch.nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        images, targets = batch
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        return network(images), targets, int(images.shape[0])

    def validate(
        self, model: torch.nn.Module, config: dict[str, Any], device: torch.device
    ) -> Validation:
        return validate(model, self.plan, config, device, self.options.select)

    def describe(self, model: torch.nn.Module, spec: dict[str, Any]) -> dict[str, Any]:
        from tinyseg_cli.models import describe

        plan, o = self.plan, self.options
        size = self.input_size()
        info = describe(model, spec, size)
        patches = len(epoch_patches(plan, 0))
        return {
            "arch": o.arch,
            "encoder": o.encoder,
            "parameters": int(info["parameters"]),
            "trainable": int(info["trainable"]),
            "flops": int(info["flops"]),
            "input_size": list(size),
            "train_samples": len(plan.train),
            "val_samples": len(plan.val),
            "patches_epoch_0": patches,
            "steps_epoch_0": patches // o.batch_size,
            **class_summary(o, plan.mean, plan.std),
            "classes": class_rows(plan.class_map.names, plan.pixels, plan.class_weights),
        }


def class_summary(
    options: TrainOptions, mean: Sequence[float], std: Sequence[float]
) -> dict[str, Any]:
    """The loss and normalisation part of a dry-run summary."""
    return {
        "loss": options.loss,
        "loss_params": options.loss_params or None,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
    }


def class_rows(
    names: Sequence[str],
    counts: np.ndarray,
    weights: Sequence[float] | None,
    unit: str = "pixels",
) -> list[dict[str, Any]]:
    """Per class: index, name, training ``unit`` (pixels, or voxels in 3D) and weight."""
    return [
        {
            "index": index,
            "name": name,
            unit: int(counts[index]),
            "weight": None if weights is None else float(weights[index]),
        }
        for index, name in enumerate(names)
    ]


def _draw(plan: TrainPlan, epoch: int) -> int:
    """The patch-table draw of ``epoch``: each draw serves --refresh-every epochs, cyclically."""
    assert plan.patch_table is not None
    return (epoch // max(1, plan.options.refresh_every)) % len(plan.patch_table)


def epoch_patches(plan: TrainPlan, epoch: int) -> list[Patch]:
    """The patches of ``epoch``: a patch-table draw, random windows, or resized images."""
    options = plan.options
    if plan.patch_table is not None:
        return plan.patch_table[_draw(plan, epoch)]
    if options.resize is not None:
        return whole_images(plan.train, plan.shapes, options.resize)
    rng = np.random.default_rng([options.seed, epoch, 2])
    return random_patches(
        plan.train, plan.shapes, options.patch_size, options.patches_per_image, rng
    )


def epoch_size(plan: TrainPlan, epoch: int) -> int:
    """The number of patches :func:`epoch_patches` gives ``epoch``, without drawing them."""
    options = plan.options
    if plan.patch_table is not None:
        return len(plan.patch_table[_draw(plan, epoch)])
    per_image = 1 if options.resize is not None else options.patches_per_image
    return len(plan.train) * per_image


def modality_of(plan: Any) -> Modality:
    """The modality of a prepared plan: images, or tiles of a voxel table."""
    if isinstance(plan, TrainPlan):
        return ImageModality(plan)
    from tinyseg_cli.commands.train.voxel.plan import VoxelModality

    return VoxelModality(plan)

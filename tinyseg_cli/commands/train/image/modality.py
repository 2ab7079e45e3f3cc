"""2D training's modality (see :class:`~tinyseg_cli.commands.train.modality.Modality`):
the patches of an epoch (a ``resample`` draw, random windows or resized whole images), their
dataset, and validation on whole val images."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tinyseg_cli.commands.train.common import Validation, class_rows, class_summary
from tinyseg_cli.commands.train.image.plan import TrainPlan, model_spec
from tinyseg_cli.commands.train.image.validate import validate
from tinyseg_cli.data.datasets import Patch, PatchDataset, random_patches, whole_images
from tinyseg_cli.errors import TinysegError


class ImageModality:
    """2D images: patches of the split manifest's images (SPEC §4.5)."""

    unit = "pixels"
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
        from tinyseg_cli.models import describe, normalise_spec

        plan, o = self.plan, self.options
        size = self.input_size()
        info = describe(model, spec, size)
        patches = len(epoch_patches(plan, 0))
        return {
            "arch": o.arch,
            "encoder": normalise_spec(spec)["encoder"],  # None for the seed networks
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

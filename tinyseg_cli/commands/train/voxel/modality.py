"""3D training's modality (see :class:`~tinyseg_cli.commands.train.modality.Modality`):
batches of tiles through the sparse U-Net, logits handed to the losses as (1, C, N, 1) so
that every loss of §6.3 works on voxels unchanged, and validation per voxel over every class
(the 3D convention: OA and mIoU over all classes, SPEC §5)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tinyseg_cli.commands.train.common import (
    Validation,
    class_rows,
    class_summary,
    validation_of,
)
from tinyseg_cli.commands.train.voxel.plan import VoxelPlan
from tinyseg_cli.data.voxels import TileDataset, collate_tiles
from tinyseg_cli.inference.voxels import tile_probs, voxel_logits
from tinyseg_cli.metrics.counts import confusion_matrix
from tinyseg_cli.models.build import SPARSE_UNET


class VoxelModality:
    """3D voxels: tiles of a voxel table."""

    unit = "voxels"
    amp = False  # the sparse backends scatter into float32 buffers: no bfloat16 forward
    collate = staticmethod(collate_tiles)

    def __init__(self, plan: VoxelPlan) -> None:
        self.plan = plan
        self.options = plan.options

    @property
    def validates(self) -> bool:
        return self.plan.val is not None

    def model_spec(self) -> dict[str, Any]:
        o = self.options
        return {
            "arch": SPARSE_UNET,
            "in_channels": len(self.plan.features),
            "out_channels": len(self.plan.class_map),
            "channels": list(o.channels),
            "aspp": o.aspp,
            "aspp_dilations": list(o.aspp_dilations),
            "backend": o.sparse_backend,
        }

    def config(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.plan.config(spec)

    def dataset(self) -> Dataset:
        return TileDataset(self.plan.train, self.plan.mean, self.plan.std)

    def epoch_items(self, epoch: int) -> list[int]:
        return list(range(len(self.plan.train)))

    def epoch_size(self, epoch: int) -> int:
        return len(self.plan.train)

    def forward(
        self, network: torch.nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        logits = voxel_logits(network, batch, self.options.sparse_backend, device)
        targets = batch[3].to(device)
        return logits.t()[None, :, :, None], targets[None, :, None], int(batch[4])

    def validate(
        self, model: torch.nn.Module, config: dict[str, Any], device: torch.device
    ) -> Validation:
        """Per-voxel confusion counts on the val tiles, scored over all classes (the 3D
        convention: OA and mIoU over every class, SPEC §5)."""
        val = self.plan.val
        assert val is not None and val.labels is not None
        n = len(self.plan.class_map)
        matrix = np.zeros((n, n), np.int64)
        dataset = TileDataset(val, self.plan.mean, self.plan.std)
        for rows, probs in tile_probs(
            model,
            dataset,
            tiles_per_batch=self.options.batch_size,
            backend=self.options.sparse_backend,
            device=device,
        ):
            pred = probs.argmax(1)
            matrix += confusion_matrix(val.labels[rows], pred, n, self.options.ignore_index)
        return validation_of(matrix, range(n), len(val), self.options.select)

    def describe(self, model: torch.nn.Module, spec: dict[str, Any]) -> dict[str, Any]:
        plan, o = self.plan, self.options
        parameters = list(model.parameters())
        sizes = plan.train.sizes()
        return {
            "arch": SPARSE_UNET,
            "channels": list(o.channels),
            "aspp": o.aspp,
            "aspp_dilations": list(o.aspp_dilations) if o.aspp else None,
            "sparse_backend": o.sparse_backend,
            "parameters": sum(p.numel() for p in parameters),
            "trainable": sum(p.numel() for p in parameters if p.requires_grad),
            "features": list(plan.features),
            "train_tiles": len(plan.train),
            "val_tiles": 0 if plan.val is None else len(plan.val),
            "train_voxels": int(sizes.sum()),
            "voxels_per_tile": {
                "min": int(sizes.min()),
                "mean": float(sizes.mean()),
                "max": int(sizes.max()),
            },
            "steps_epoch_0": len(plan.train) // o.batch_size,
            **class_summary(o, plan.mean, plan.std),
            "classes": class_rows(plan.class_map.names, plan.voxels, plan.class_weights, "voxels"),
        }

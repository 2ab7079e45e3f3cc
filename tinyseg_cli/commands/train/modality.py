"""What one kind of input supplies to the single training loop (SPEC §4.5): the items of an
epoch, a dataset and batch collation that read them, the forward pass from a batch to logits
and targets in the losses' (N, K, H, W) / (N, H, W) layout, validation, and the ``--dry-run``
description. The loop itself (steps, schedule, checkpoints, resume, DDP) knows none of it.

The 2D modality (patches of images) is :mod:`~tinyseg_cli.commands.train.image`, the 3D one
(tiles of a voxel table) :mod:`~tinyseg_cli.commands.train.voxel`; a new kind of input is a
package beside them with a plan (``prepare_*``) and a class of this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset

from tinyseg_cli.commands.train.common import Validation
from tinyseg_cli.commands.train.config import TrainOptions
from tinyseg_cli.commands.train.image.modality import ImageModality
from tinyseg_cli.commands.train.image.plan import TrainPlan, prepare_images
from tinyseg_cli.commands.train.voxel.modality import VoxelModality
from tinyseg_cli.commands.train.voxel.plan import VoxelPlan, prepare_voxels
from tinyseg_cli.io.voxels import voxel_table_path


class Modality(Protocol):
    """The interface :class:`~tinyseg_cli.commands.train.loop.Trainer` trains through."""

    options: TrainOptions
    unit: str  # what validation counts: pixels, voxels
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


def prepare(options: TrainOptions, jobs: int = 1) -> TrainPlan | VoxelPlan:
    """Read and validate the inputs of a run, before any training starts: an image manifest
    gives a :class:`TrainPlan`, a voxel table (3D) a :class:`VoxelPlan`."""
    voxels = voxel_table_path(options.manifest)
    if voxels is not None:
        return prepare_voxels(options, voxels)
    return prepare_images(options, jobs)


def modality_of(plan: TrainPlan | VoxelPlan) -> Modality:
    """The modality of a prepared plan: images, or tiles of a voxel table."""
    if isinstance(plan, TrainPlan):
        return ImageModality(plan)
    return VoxelModality(plan)

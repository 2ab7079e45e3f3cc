"""3D training (SPEC §4.5, §7.3): a voxel table's tiles as the items of the one training
loop. Batches are tiles (``-b`` tiles per step); the train split is ``split == train`` (every
tile without a split column), val is ``split == val``; features are normalised with the
training voxels' mean and std; logits go to the losses as (1, C, N, 1) so that every loss of
§6.3 works on voxels unchanged."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from tinyseg_cli import __version__
from tinyseg_cli.commands.train.image.plan import TrainOptions, read_class_weights
from tinyseg_cli.commands.train.image.validate import Validation, parse_select
from tinyseg_cli.commands.train.modality import class_rows, class_summary
from tinyseg_cli.data.voxels import TileDataset, collate_tiles
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.voxels import tile_probs, voxel_logits
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata, parse_class_map
from tinyseg_cli.io.voxels import Tiles, choose_features, read_tiles, schema_metadata
from tinyseg_cli.metrics.counts import confusion_matrix, one_vs_rest
from tinyseg_cli.metrics.summary import summarize
from tinyseg_cli.models.build import SPARSE_UNET
from tinyseg_cli.sparse.backends import check_dilation, resolve_backend

IGNORE = -100  # voxelize's ignore label (SPEC §2)


@dataclass
class VoxelPlan:
    """A validated 3D run: tiles, classes, features and their normalisation."""

    options: TrainOptions
    train: Tiles
    val: Tiles | None
    class_map: ClassMap
    features: tuple[str, ...]
    voxels: np.ndarray  # training voxels per class
    class_weights: list[float] | None
    mean: list[float]
    std: list[float]
    voxelize: dict[str, Any]  # the table's voxelize parameters (label map, voxel, tile …)
    notes: list[str] = field(default_factory=list)  # said on stderr by the CLI

    def config(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The JSON-able checkpoint ``config`` (SPEC §3)."""
        o = self.options
        return {
            "model": spec,
            "classes": self.class_map.to_metadata(),
            "binary": None,
            "normalisation": {"mean": self.mean, "std": self.std},
            "input": {"modality": "voxels", "features": list(self.features)},
            "voxelize": self.voxelize,
            "ignore_index": o.ignore_index,
            "loss": {"name": o.loss, **o.loss_params},
            "train": o.to_config(),
            "tinyseg": __version__,
        }


def _class_map(options: TrainOptions, path: Path, metadata: dict[str, Any]) -> ClassMap:
    if options.classes:
        return parse_class_map(options.classes)
    found = class_map_from_metadata(metadata)
    if found is None:
        raise TinysegError(f"{path}: the voxel table carries no class map; pass --classes")
    return found


def _check_labels(path: Path, tiles: Tiles, n_classes: int) -> np.ndarray:
    """Voxels per class; a label outside the class map is an error naming its row."""
    assert tiles.labels is not None
    labels = tiles.labels
    bad = np.flatnonzero((labels != IGNORE) & ((labels < 0) | (labels >= n_classes)))
    if bad.size:
        row = int(tiles.rows[bad[0]])
        raise TinysegError(
            f"{path}: row {row}: label {int(labels[bad[0]])} outside the class map "
            f"(0..{n_classes - 1}, or {IGNORE} ignored)"
        )
    return np.bincount(labels[labels != IGNORE], minlength=n_classes).astype(np.int64)


def _normalisation(tiles: Tiles) -> tuple[list[float], list[float]]:
    values = tiles.features.astype(np.float64)
    mean = values.mean(0)
    std = values.std(0)
    return [float(v) for v in mean], [float(max(s, 1e-3)) for s in std]


def _splits(path: Path, options: TrainOptions, names: list[str]) -> tuple[str | None, str | None]:
    """The split values of train and val rows (None: every row trains, nothing validates)."""
    if "split" not in names:
        return None, None
    return "train", ("val" if options.val_every else None)


def prepare_voxels(options: TrainOptions, path: Path) -> VoxelPlan:
    """Read and validate a voxel table for training: fails before any training starts."""
    if options.binary is not None:
        raise TinysegError("--binary: one-vs-rest models are 2D only; 3D trains every class")
    if options.arch.lower() != SPARSE_UNET:
        raise TinysegError(f"{path}: a voxel table trains --arch {SPARSE_UNET}, not {options.arch}")
    if options.sparse_backend != "auto":  # not installed, or unable to run the network
        resolve_backend(options.sparse_backend)
        for dilation in options.aspp_dilations if options.aspp else ():
            check_dilation(options.sparse_backend, dilation)
    schema = pq.read_schema(path)
    metadata = schema_metadata(schema)
    if "label" not in schema.names:
        raise TinysegError(
            f"{path}: the voxel table has no 'label' column (voxelized without labels?); "
            "training needs labelled voxels"
        )
    features = choose_features(path, schema, options.features)
    class_map = _class_map(options, path, metadata)
    voxelize = metadata.get("voxelize") or {}
    options = dataclasses.replace(
        options,
        arch=SPARSE_UNET,
        encoder=None,
        features=features,
        ignore_index=int(voxelize.get("ignore_index", IGNORE)),
    )
    train_split, val_split = _splits(path, options, schema.names)
    notes = []
    if train_split is None:
        notes.append(f"{path}: no 'split' column: every tile trains and nothing validates")
    train = read_tiles(path, features, train_split, labels=True)
    if len(train) == 0:
        raise TinysegError(f"{path}: no training rows (split == train)")
    val = read_tiles(path, features, val_split, labels=True) if val_split else None
    if val is not None and len(val) == 0:
        notes.append(f"{path}: no rows with split == val: nothing validates")
        val = None
    voxels = _check_labels(path, train, len(class_map))
    if not voxels.any():  # a loss of 0 from step 1: nothing would be learnt
        raise TinysegError(
            f"{path}: no labelled voxel in the {len(train)} training tiles: every label is "
            f"{IGNORE} (ignored)"
        )
    if val is not None:
        _check_labels(path, val, len(class_map))
    mean, std = _normalisation(train)
    return VoxelPlan(
        options=options,
        train=train,
        val=val,
        class_map=class_map,
        features=features,
        voxels=voxels,
        class_weights=read_class_weights(options, class_map),
        mean=mean,
        std=std,
        voxelize=voxelize,
        notes=notes,
    )


class VoxelModality:
    """3D voxels: tiles of a voxel table (see :class:`~tinyseg_cli.commands.train.modality.Modality`)."""

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
        tp, fp, fn, tn = one_vs_rest(matrix)
        summary = summarize(
            {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, averaged=list(range(n)), n_samples=len(val)
        )
        average, metric = parse_select(self.options.select)
        value = (summary.macro if average == "macro" else summary.micro)[metric]
        return Validation(summary, self.options.select, None if np.isnan(value) else float(value))

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

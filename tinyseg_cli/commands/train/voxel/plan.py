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

from tinyseg_cli.commands.train.common import read_class_weights, run_class_map
from tinyseg_cli.commands.train.config import TrainOptions, checkpoint_config
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.voxels import Tiles, choose_features, read_tiles, schema_metadata
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
        inputs = {"modality": "voxels", "features": list(self.features)}
        return checkpoint_config(
            self.options,
            spec,
            self.class_map,
            (self.mean, self.std),
            inputs,
            voxelize=self.voxelize,
        )


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
    voxelize = metadata.get("voxelize") or {}
    if voxelize.get("unclassified"):
        raise TinysegError(
            f"{path}: voxelized from an unclassified scan (classification codes 0 and 1 only, "
            "which are ignored): no labels to train on; voxelize a classified scan, or name "
            "classes with --label-map"
        )
    features = choose_features(path, schema, options.features)
    class_map = run_class_map(
        options, metadata, f"{path}: the voxel table carries no class map; pass --classes"
    )
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

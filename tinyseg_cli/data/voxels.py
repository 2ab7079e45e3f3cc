"""Tiles of a voxel table as training items (SPEC §4.5, 3D): one tile per item, batches of
tiles collated into one sparse batch (coordinates, features, a batch index per voxel)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from tinyseg_cli.io.voxels import Tiles

TileItem = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # coords, features, labels
TileBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]


class TileDataset(Dataset):
    """Reads ``(epoch, position, tile)`` keys into a tile's coordinates, normalised features
    and labels."""

    def __init__(self, tiles: Tiles, mean: list[float], std: list[float]) -> None:
        self.tiles = tiles
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, key: tuple[int, int, int]) -> TileItem:
        return self.tile(key[2])

    def tile(self, index: int) -> TileItem:
        """Tile ``index`` as tensors; labels are −100 everywhere for a table without them."""
        rows = self.tiles.span(index)
        coords = torch.from_numpy(self.tiles.coords[rows])
        features = torch.from_numpy((self.tiles.features[rows] - self.mean) / self.std)
        labels = self.tiles.labels
        target = (
            torch.full((coords.shape[0],), -100, dtype=torch.int64)
            if labels is None
            else torch.from_numpy(labels[rows])
        )
        return coords, features, target


def collate_tiles(items: list[TileItem]) -> TileBatch:
    """Concatenated voxels of several tiles with each voxel's tile position in the batch."""
    coords = torch.cat([item[0] for item in items])
    features = torch.cat([item[1] for item in items])
    labels = torch.cat([item[2] for item in items])
    sizes = torch.tensor([item[0].shape[0] for item in items])
    batch = torch.repeat_interleave(torch.arange(len(items), dtype=torch.int32), sizes)
    return coords, features, batch, labels, len(items)

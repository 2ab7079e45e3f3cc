"""The sparse network over tiles of voxels: logits in the rows' own order, and softmax
probabilities tile batch by tile batch (validation in ``train``, and 3D ``infer``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from tinyseg_cli.data.voxels import TileBatch, TileDataset, collate_tiles
from tinyseg_cli.sparse import SparseTensor


def voxel_logits(
    network: torch.nn.Module, batch: TileBatch, backend: str, device: torch.device
) -> torch.Tensor:
    """Logits (N, C) of a collated batch, row i for the batch's voxel i."""
    coords, features, index = batch[0], batch[1], batch[2]
    tensor = SparseTensor.from_points(
        coords.to(device), features.to(device), index.to(device), backend=backend
    )
    logits = network(tensor)
    assert tensor.order is not None
    back = torch.empty_like(tensor.order)
    back[tensor.order] = torch.arange(back.numel(), device=back.device)
    return logits.index_select(0, back)


def tile_probs(
    model: torch.nn.Module,
    dataset: TileDataset,
    *,
    tiles_per_batch: int,
    backend: str,
    device: torch.device,
    on_batch: Callable[[int], None] = lambda tiles: None,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Per batch of whole tiles: its rows of ``dataset.tiles`` and their softmax (n, C)
    float32. The model runs in eval mode without gradients."""
    tiles = dataset.tiles
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for first in range(0, len(tiles), tiles_per_batch):
                last = min(first + tiles_per_batch, len(tiles))
                batch = collate_tiles([dataset.tile(i) for i in range(first, last)])
                logits = voxel_logits(model, batch, backend, device)
                probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
                on_batch(last - first)
                yield slice(int(tiles.starts[first]), int(tiles.starts[last])), probs
    finally:
        model.train(was_training)

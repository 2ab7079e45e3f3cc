"""The sparse 3D U-Net (SPEC §7.3): shapes, parameter counts, training, determinism."""

from __future__ import annotations

import pytest
import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.models.sparse_unet import SparseUNet

CHANNELS = (8, 16, 24)
IN_CHANNELS, N_CLASSES = 4, 3


def cloud(seed: int = 0, grid: int = 20, occupancy: float = 0.08):
    """A random two-scene cloud: coordinates, features, batch index and labels that depend on
    position (a slab of class 1, a small cube of class 2, background elsewhere)."""
    generator = torch.Generator().manual_seed(seed)
    occupied = torch.rand(2, grid, grid, grid, generator=generator) < occupancy
    batch, x, y, z = occupied.nonzero(as_tuple=True)
    coords = torch.stack([x, y, z], 1)
    features = torch.randn(batch.numel(), IN_CHANNELS, generator=generator)
    labels = torch.zeros(batch.numel(), dtype=torch.long)
    labels[z < 4] = 1
    labels[(x > 12) & (y > 12) & (z > 12)] = 2
    return coords, features, batch, labels


def make(aspp: bool = True, seed: int = 0, **kwargs) -> SparseUNet:
    torch.manual_seed(seed)
    return SparseUNet(IN_CHANNELS, N_CLASSES, CHANNELS, aspp=aspp, backend="torch", **kwargs)


def test_logits_shape_and_order():
    coords, features, batch, _ = cloud()
    model = make()
    x = model.input(coords, features, batch)
    logits = model(x)
    assert logits.shape == (coords.shape[0], N_CLASSES)
    assert torch.equal(x.coords[torch.argsort(x.order)].long(), coords)  # order maps back


def conv_params(c_in: int, c_out: int, volume: int = 27) -> int:
    return volume * c_in * c_out


def test_aspp_parameter_count():
    """ASPP replaces the bridge's residual block by three dilated residual blocks and a
    point-wise fusion with batch norm; the difference is counted by hand."""
    top = CHANNELS[-1]
    block = 2 * conv_params(top, top) + 2 * 2 * top  # two convs, two batch norms
    aspp = 3 * block + 3 * top * top + 2 * top  # three branches, fusion layer + batch norm
    with_aspp = sum(p.numel() for p in make(aspp=True).parameters())
    without = sum(p.numel() for p in make(aspp=False).parameters())
    assert with_aspp - without == aspp - block
    assert len(make(aspp_dilations=(2, 4)).bridge.branches) == 2


def test_forward_backward_reaches_every_parameter():
    coords, features, batch, labels = cloud(1)
    model = make()
    x = model.input(coords, features, batch)
    loss = torch.nn.functional.cross_entropy(model(x), labels[x.order])
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def train(steps: int, seed: int = 0) -> list[float]:
    coords, features, batch, labels = cloud(2)
    model = make(seed=seed)
    x = model.input(coords, features, batch)
    target = labels[x.order]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_training_is_deterministic():
    assert train(3) == train(3)


def test_overfits_a_tiny_cloud():
    """40 Adam steps on ~1,300 labelled voxels cut the loss at least tenfold."""
    losses = train(40)
    assert losses[-1] < losses[0] / 10, losses


def test_refuses_bad_widths():
    with pytest.raises(TinysegError, match="channel widths"):
        SparseUNet(IN_CHANNELS, N_CLASSES, (8,))


def test_refuses_a_tensor_of_another_backend():
    pytest.importorskip("spconv")
    coords, features, batch, _ = cloud()
    other = SparseUNet(IN_CHANNELS, N_CLASSES, CHANNELS, backend="spconv")
    with pytest.raises(TinysegError, match="backend"):
        make()(other.input(coords, features, batch))

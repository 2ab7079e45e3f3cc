"""Conformance of every installed sparse backend with dense convolution (SPEC §7.3).

Each operation runs on a random cloud of a few hundred sites in a 14³ grid (batch of 2) and
is compared at the active sites with ``torch.nn.functional.conv3d`` / ``conv_transpose3d`` in
float64 on the dense grid: forward, and gradients with respect to features and weights.
Runs use the machine's default thread count and are repeated, so a race shows up as a
run-to-run difference (spconv 2.3.8's own CPU scatter-add races at 2 threads).
torchsparse ignores dilation, so its backend must refuse dilation > 1 instead of conforming.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.sparse import (
    BatchNorm,
    DownConv3d,
    ReLU,
    SparseTensor,
    SubMConv3d,
    UpConv3d,
    available_backends,
    backends,
    cat,
    resolve_backend,
    strided_conv,
    submanifold_conv,
    transposed_conv,
)

TOLERANCE = 1e-4
REPEATS = 4
GRID, BATCH, C_IN, C_OUT = 14, 2, 4, 5

BACKEND_PARAMS = [
    pytest.param("torch", id="torch"),
    pytest.param(
        "spconv",
        id="spconv",
        marks=pytest.mark.skipif(
            not backends.installed("spconv"), reason="spconv is not installed"
        ),
    ),
    pytest.param(
        "torchsparse",
        id="torchsparse",
        marks=pytest.mark.skipif(
            not backends.installed("torchsparse"), reason="torchsparse is not installed"
        ),
    ),
]
needs_torchsparse = pytest.mark.skipif(
    not backends.installed("torchsparse"), reason="torchsparse is not installed"
)


def random_cloud(seed: int, grid: int = GRID, occupancy: float = 0.1):
    """Active sites (batch, x, y, z) of a random occupancy grid and features on them."""
    generator = torch.Generator().manual_seed(seed)
    occupied = torch.rand(BATCH, grid, grid, grid, generator=generator) < occupancy
    batch, x, y, z = occupied.nonzero(as_tuple=True)
    features = torch.randn(batch.numel(), C_IN, generator=generator, dtype=torch.float64)
    return batch, torch.stack([x, y, z], 1), features


def scatter_dense(batch, coords, features, grid: int) -> torch.Tensor:
    """The dense (B, C, G, G, G) grid holding ``features`` at the sites, zeros elsewhere."""
    dense = torch.zeros(BATCH, features.shape[1], grid, grid, grid, dtype=features.dtype)
    dense[batch, :, coords[:, 0], coords[:, 1], coords[:, 2]] = features
    return dense


def at_sites(dense: torch.Tensor, tensor: SparseTensor) -> torch.Tensor:
    """Rows of a dense (B, C, …) grid at the sites of ``tensor``, in its order."""
    c, b = tensor.coords.long(), tensor.batch.long()
    return dense[b, :, c[:, 0], c[:, 1], c[:, 2]]


def to_sparse_weight(dense_weight: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """(K, C_in, C_out), written out position by position (not the adapter's formula)."""
    side = dense_weight.shape[-1]
    rows = []
    for a, b, c in itertools.product(range(side), repeat=3):
        block = dense_weight[:, :, a, b, c]
        rows.append(block if transposed else block.t())
    return torch.stack(rows).contiguous()


def run_sparse(op, backend, batch, coords, features, weight, seed):
    """Forward and the gradients of a fixed random projection of the output, in float32."""
    x = SparseTensor.from_points(coords, features.float(), batch, backend=backend)
    x.features.requires_grad_(True)
    w = weight.float().requires_grad_(True)
    out = op(x, w)
    probe = torch.randn(out.features.shape, generator=torch.Generator().manual_seed(seed))
    (out.features * probe).sum().backward()
    return x, out, w.grad, probe


def run_dense(dense_op, cloud, x: SparseTensor, out: SparseTensor, dense_weight, probe, grid):
    """The same forward and gradients through the dense operation in float64."""
    dense_in = scatter_dense(*cloud, grid)
    dense_in.requires_grad_(True)
    w = dense_weight.clone().requires_grad_(True)
    result = at_sites(dense_op(dense_in, w), out)
    (result * probe.double()).sum().backward()
    return result, at_sites(dense_in.grad, x), w.grad


def check_against_dense(backend, op, dense_op, dense_weight, transposed=False, grid=GRID, seed=0):
    """Max errors (forward, d features, d weight) over REPEATS runs, relative to the largest
    reference value where that exceeds 1; runs must agree bit for bit."""
    cloud = batch, coords, features = random_cloud(seed, grid)
    weight = to_sparse_weight(dense_weight, transposed)
    outputs = []
    for _ in range(REPEATS):
        x, out, grad_w, probe = run_sparse(op, backend, batch, coords, features, weight, seed)
        outputs.append((out.features.detach(), x.features.grad, grad_w))
    first = outputs[0]
    for repeat in outputs[1:]:
        for a, b in zip(first, repeat, strict=True):
            assert torch.equal(a, b), f"{backend}: run-to-run difference (a race?)"
    result, grad_in, grad_w_dense = run_dense(dense_op, cloud, x, out, dense_weight, probe, grid)
    references = (result, grad_in, to_sparse_weight(grad_w_dense, transposed))
    # The weight gradient sums over every site in float32: on the large grid it reaches ~200,
    # where float32 rounding alone exceeds an absolute 1e-4 (float64 maps agree to 1e-12).
    errors = tuple(
        (ours.double() - ref).abs().max().item() / max(1.0, ref.abs().max().item())
        for ours, ref in zip(first, references, strict=True)
    )
    assert max(errors) < TOLERANCE, f"{backend}: errors forward/dx/dw = {errors}"
    return errors


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (3, 2), (3, 6), (1, 1), (5, 1)])
def test_submanifold_matches_dense(backend, kernel, dilation):
    dense_weight = torch.randn(C_OUT, C_IN, kernel, kernel, kernel, dtype=torch.float64)
    if backend == "torchsparse" and dilation > 1:
        assert_torchsparse_refuses_dilation(kernel, dilation)
        return
    check_against_dense(
        backend,
        lambda x, w: submanifold_conv(x, w, dilation),
        lambda d, w: F.conv3d(d, w, padding=kernel // 2 * dilation, dilation=dilation),
        dense_weight,
    )


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_submanifold_large_grid_repeatable(backend):
    """More sites per thread than the small grid: where a scatter races, it shows here."""
    dense_weight = torch.randn(C_OUT, C_IN, 3, 3, 3, dtype=torch.float64)
    check_against_dense(
        backend,
        lambda x, w: submanifold_conv(x, w, 1),
        lambda d, w: F.conv3d(d, w, padding=1),
        dense_weight,
        grid=36,
        seed=3,
    )


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_strided_matches_dense(backend):
    dense_weight = torch.randn(C_OUT, C_IN, 2, 2, 2, dtype=torch.float64)
    check_against_dense(
        backend, strided_conv, lambda d, w: F.conv3d(d, w, stride=2), dense_weight, seed=1
    )


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_transposed_matches_dense(backend):
    """Down to stride 2 with a fixed weight, then the transposed convolution back onto the
    input's sites; the dense reference runs the same two steps."""
    down = torch.randn(C_IN, C_IN, 2, 2, 2, dtype=torch.float64)
    down_sparse = to_sparse_weight(down).float()

    def sparse_op(x, w):
        return transposed_conv(strided_conv(x, down_sparse), w, x)

    def dense_op(d, w):
        return F.conv_transpose3d(F.conv3d(d, down.to(d.dtype), stride=2), w, stride=2)

    dense_weight = torch.randn(C_IN, C_OUT, 2, 2, 2, dtype=torch.float64)
    check_against_dense(backend, sparse_op, dense_op, dense_weight, transposed=True, seed=2)


def assert_torchsparse_refuses_dilation(kernel: int, dilation: int) -> None:
    """A one-line error naming the backends that do dilate, not an undilated result."""
    batch, coords, features = random_cloud(6)
    x = SparseTensor.from_points(coords, features.float(), batch, backend="torchsparse")
    with pytest.raises(TinysegError) as refused:
        submanifold_conv(x, torch.zeros(kernel**3, C_IN, C_OUT), dilation)
    message = str(refused.value)
    assert "torchsparse ignores dilation" in message and "\n" not in message
    assert "--sparse-backend torch or spconv" in message


def test_missing_torchsparse_is_refused(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda library: library != "torchsparse")
    with pytest.raises(TinysegError, match=r"torchsparse: not installed \(it is not on PyPI"):
        resolve_backend("torchsparse", "cpu")
    assert "torchsparse" not in available_backends("cpu")


def test_other_torchsparse_versions_are_refused(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda library: True)
    monkeypatch.setattr(backends, "_version", lambda library: "2.1.0")
    with pytest.raises(TinysegError, match=r"version 2\.1\.0 is not supported"):
        resolve_backend("torchsparse", "cpu")


@needs_torchsparse
def test_installed_torchsparse_is_offered_without_dilation():
    assert resolve_backend("torchsparse", "cpu") == "torchsparse"
    assert "torchsparse" in available_backends("cpu")
    assert resolve_backend("auto", "cpu") == "torch"
    assert_torchsparse_refuses_dilation(3, 2)


def test_unknown_and_missing_backends_are_refused(monkeypatch):
    with pytest.raises(TinysegError, match="expected one of auto, spconv, torchsparse, torch"):
        resolve_backend("minkowski", "cpu")
    monkeypatch.setattr(backends, "installed", lambda library: False)
    with pytest.raises(TinysegError, match="spconv: not installed"):
        resolve_backend("spconv", "cpu")
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend("auto", "cuda") == "torch"


def test_auto_is_torch_on_cpu():
    assert resolve_backend("auto", "cpu") == "torch"


def test_mismatched_sites_are_refused():
    batch, coords, features = random_cloud(4)
    x = SparseTensor.from_points(coords, features.float(), batch)
    other = SparseTensor.from_points(coords[1:], features[1:].float(), batch[1:])
    with pytest.raises(TinysegError, match="identical sites"):
        cat(x, other)
    far = SparseTensor.from_points(coords + 100, features.float(), batch)
    coarse = strided_conv(x, torch.zeros(8, C_IN, C_IN))
    with pytest.raises(TinysegError, match="no parent site"):
        transposed_conv(coarse, torch.zeros(8, C_IN, C_IN), far)
    with pytest.raises(TinysegError, match="duplicate sites"):
        SparseTensor.from_points(torch.cat([coords, coords[:1]]), torch.zeros(len(coords) + 1, 2))


class TinyNet(torch.nn.Module):
    """Every layer once: submanifold (dilated), down, up, batch norm, ReLU, concatenation."""

    def __init__(self, dilation: int = 2):
        super().__init__()
        self.subm = SubMConv3d(C_IN, 6, dilation=dilation)
        self.norm = BatchNorm(6)
        self.relu = ReLU()
        self.down = DownConv3d(6, 8)
        self.up = UpConv3d(8, 6)
        self.head = SubMConv3d(12, 3, kernel_size=3, bias=True)

    def forward(self, x: SparseTensor) -> torch.Tensor:
        skip = self.relu(self.norm(self.subm(x)))
        return self.head(cat(self.up(self.down(skip), skip), skip)).features


@pytest.mark.parametrize("backend", [p for p in BACKEND_PARAMS if p.values[0] != "torch"])
def test_weights_move_between_backends(backend):
    batch, coords, features = random_cloud(5)
    dilation = 1 if backend == "torchsparse" else 2
    torch.manual_seed(0)
    trained = TinyNet(dilation).eval()
    moved = TinyNet(dilation).eval()
    moved.load_state_dict(trained.state_dict())
    reference = trained(SparseTensor.from_points(coords, features.float(), batch, "torch"))
    result = moved(SparseTensor.from_points(coords, features.float(), batch, backend))
    assert torch.allclose(reference, result, atol=1e-5)

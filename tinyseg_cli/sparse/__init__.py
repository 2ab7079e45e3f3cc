"""Sparse 3D convolution behind one small adapter (SPEC §7.3): a sparse tensor, the few
operations the sparse U-Net needs, and backends `torch` (plain PyTorch, the reference),
`spconv` (PyPI) and `torchsparse` (v2.0 built from source; it refuses dilation, which
torchsparse ignores)."""

from tinyseg_cli.sparse.backends import BACKENDS, available_backends, resolve_backend
from tinyseg_cli.sparse.layers import BatchNorm, DownConv3d, Linear, ReLU, SubMConv3d, UpConv3d
from tinyseg_cli.sparse.ops import (
    add,
    cat,
    map_features,
    strided_conv,
    submanifold_conv,
    transposed_conv,
)
from tinyseg_cli.sparse.tensor import Geometry, SparseTensor

__all__ = [
    "BACKENDS",
    "BatchNorm",
    "DownConv3d",
    "Geometry",
    "Linear",
    "ReLU",
    "SparseTensor",
    "SubMConv3d",
    "UpConv3d",
    "add",
    "available_backends",
    "cat",
    "map_features",
    "resolve_backend",
    "strided_conv",
    "submanifold_conv",
    "transposed_conv",
]

"""The `torch` backend: sparse convolution as gather – matmul – scatter over kernel maps, in
plain PyTorch (SPEC §7.3).

Why hand-written: no installable library does sparse convolution correctly on CPU.
spconv 2.3.8's CPU build (PyPI) asks for a CUDA stream in its backward pass, so training fails
without an NVIDIA driver, and its CPU scatter-add shares output rows between OpenMP threads,
so sums race at 2 threads or more; torchsparse is not on PyPI, needs a patch to run on CPU and
silently ignores ``dilation`` (see shared/notes/sparse-3d-measurements.md). This backend is
the reference every other backend is checked against, and the one used when no other is
installed; it runs on CPU and GPU and autograd differentiates it through
:class:`KernelMapConv`.

Determinism: within one kernel offset each output row receives at most one contribution, so
the scatter-add never adds twice to a row within a call (no atomics race on GPU, no thread
shares a row on CPU), and offsets are summed one after another in a fixed order. The
backward pass has the same structure (input rows are unique within an offset too).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from tinyseg_cli.sparse.kernel_maps import KernelMap, downsample, submanifold_map

__all__ = ["KernelMapConv", "convolve", "downsample", "submanifold_map"]


class KernelMapConv(torch.autograd.Function):
    """``out[o] = Σ_k Σ_{(i, o) in pairs[k]} features[i] @ weight[k]``.

    The backward pass gathers the inputs again instead of keeping every offset's gathered
    rows from the forward pass: that would hold kernel-volume copies of the features
    (27× for a 3×3×3 kernel) until the backward pass.
    """

    @staticmethod
    def forward(
        ctx: Any, features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap
    ) -> torch.Tensor:
        out = features.new_zeros(kmap.n_out, weight.shape[2])
        for k, pair in enumerate(kmap.pairs):
            if pair is None:
                out.addmm_(features, weight[k])
            elif pair[0].numel():
                _scatter_rows(out, pair[1], features.index_select(0, pair[0]) @ weight[k])
        ctx.save_for_backward(features, weight)
        ctx.kmap = kmap
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        features, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        grad_out = grad_out.contiguous()
        need_features, need_weight = ctx.needs_input_grad[:2]
        grad_features = torch.zeros_like(features) if need_features else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        for k, pair in enumerate(kmap.pairs):
            if pair is None:
                inputs, grads = features, grad_out
            elif pair[0].numel():
                inputs = features.index_select(0, pair[0])
                grads = grad_out.index_select(0, pair[1])
            else:
                continue
            if grad_weight is not None:
                torch.mm(inputs.t(), grads, out=grad_weight[k])
            if grad_features is not None:
                back = grads @ weight[k].t()
                if pair is None:
                    grad_features += back
                else:
                    _scatter_rows(grad_features, pair[0], back)
        return grad_features, grad_weight, None


def _scatter_rows(out: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``out[rows] += values``. On CPU ``index_add_`` adds row by row in one thread;
    ``scatter_add_`` over an expanded index was ~25 % faster on an idle core but 4× slower at
    2 threads on a loaded 2-core machine (OpenMP threads competing), so the robust one is used.
    """
    out.index_add_(0, rows, values)


def convolve(features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Features of the output sites of ``kmap`` from input ``features`` (N_in, C_in) and a
    weight (K, C_in, C_out)."""
    return KernelMapConv.apply(features.contiguous(), weight.contiguous(), kmap)

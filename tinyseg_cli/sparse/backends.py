"""Choosing a sparse-convolution backend (``--sparse-backend auto|spconv|torchsparse|torch``,
SPEC §7.3) and the functions each one supplies.

A backend supplies ``submanifold_map``, ``downsample`` and ``convolve``; the transposed map is
the strided one read backwards (:func:`kernel_maps.upsample_map`), whoever built it.
Libraries are imported lazily, so tinyseg imports without any of them.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import torch

from tinyseg_cli.errors import TinysegError

BACKENDS = ("auto", "spconv", "torchsparse", "torch")


def installed(library: str) -> bool:
    """Whether ``library`` can be imported (without importing it)."""
    return importlib.util.find_spec(library) is not None


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """The backends :func:`resolve_backend` accepts on ``device``, `torch` first."""
    names = ["torch"]
    for name in ("spconv", "torchsparse"):
        try:
            resolve_backend(name, device)
        except TinysegError:
            continue
        names.append(name)
    return names


def resolve_backend(name: str, device: torch.device | str = "cpu") -> str:
    """The concrete backend ``name`` means on ``device``; a one-line error when it is unknown,
    not installed or refused. ``auto`` is spconv on CUDA when installed, else torch."""
    device = torch.device(device)
    if name not in BACKENDS:
        raise TinysegError(f"sparse backend: expected one of {', '.join(BACKENDS)}, found {name!r}")
    if name == "auto":
        return "spconv" if device.type == "cuda" and installed("spconv") else "torch"
    if name == "spconv":
        if not installed("spconv"):
            raise TinysegError(
                "sparse backend spconv: not installed; `pip install 'tinyseg[sparse]'` gives "
                "the CPU build, GPU machines want the spconv-cu1xx wheel matching their CUDA "
                "(e.g. spconv-cu120), or use --sparse-backend torch"
            )
        if device.type not in ("cpu", "cuda"):
            raise TinysegError(f"sparse backend spconv: runs on cpu or cuda, not {device.type}")
    if name == "torchsparse":
        # Not on PyPI; its v1.4, v2.0 and v2.1 APIs differ (coordinate layout, kernel order,
        # map format), none of them could be tested against dense conv3d here, and v2.0 and
        # v1.4 silently ignore `dilation` (the ASPP bridge would be wrong without an error).
        # An untested backend is not offered: it is refused until one passes conformance.
        reason = (
            "not installed (it is not on PyPI)"
            if not installed("torchsparse")
            else (
                "installed, but the adapter has no torchsparse backend: no version of it has "
                "passed the conformance test against dense conv3d (v1.4 and v2.0 ignore dilation)"
            )
        )
        raise TinysegError(f"sparse backend torchsparse: {reason}; use spconv or torch")
    return name


def implementation(name: str) -> ModuleType:
    """The module of the resolved backend ``name``."""
    if name == "spconv":
        from tinyseg_cli.sparse import spconv_backend

        return spconv_backend
    if name == "torch":
        from tinyseg_cli.sparse import torch_backend

        return torch_backend
    raise TinysegError(f"sparse backend: {name!r} is not a resolved backend")

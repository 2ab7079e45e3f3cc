"""Choosing a sparse-convolution backend (``--sparse-backend auto|spconv|torchsparse|torch``,
SPEC §7.3) and the functions each one supplies.

Choosing imports no backend: the modules that implement them are loaded by
:func:`tinyseg_cli.sparse.ops.implementation`, and the libraries behind them lazily, so
tinyseg imports without any of them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

import torch

from tinyseg_cli.errors import TinysegError

BACKENDS = ("auto", "spconv", "torchsparse", "torch")


def installed(library: str) -> bool:
    """Whether ``library`` can be imported (without importing it)."""
    return importlib.util.find_spec(library) is not None


def _version(library: str) -> str:
    """The installed version of ``library`` from its metadata, ``unknown`` when it has none."""
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
        if not installed("torchsparse"):
            raise TinysegError(
                "sparse backend torchsparse: not installed (it is not on PyPI: v2.0.0 builds "
                "from source); use --sparse-backend spconv or torch"
            )
        # v1.4 has no CPU backward and v2.1 is GPU-only with another API: only v2.0 has
        # passed the conformance test (dilation excepted, refused by the backend).
        found = _version("torchsparse")
        if not found.startswith("2.0"):
            raise TinysegError(
                f"sparse backend torchsparse: version {found} is not supported (the adapter "
                "supports v2.0); use --sparse-backend spconv or torch"
            )
        if device.type not in ("cpu", "cuda"):
            raise TinysegError(
                f"sparse backend torchsparse: runs on cpu or cuda, not {device.type}"
            )
    return name


def check_dilation(name: str, dilation: int) -> None:
    """A one-line error when backend ``name`` cannot convolve with ``dilation``: torchsparse
    v2.0 ignores dilation (a dilation-2 convolution returns the dilation-1 result), so it
    fails the conformance test there."""
    if name == "torchsparse" and dilation != 1:
        raise TinysegError(
            f"sparse backend torchsparse: dilation {dilation} refused, torchsparse ignores "
            "dilation (its result would be the undilated convolution); use --sparse-backend "
            "torch or spconv, or --no-aspp"
        )

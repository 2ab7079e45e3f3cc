"""``--device auto|cpu|cuda|cuda:N`` → a torch device (SPEC §1: GPU when present)."""

from __future__ import annotations

import torch

from tinyseg_cli.errors import TinysegError


def resolve_device(name: str = "auto") -> torch.device:
    """The device named by ``--device``; ``auto`` picks the first GPU when there is one."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TinysegError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TinysegError(f"--device {name}: no CUDA GPU is available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TinysegError(
                f"--device {name}: only {torch.cuda.device_count()} GPU(s) (cuda:0…)"
            )
    elif device.type != "cpu":
        raise TinysegError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device

"""Checkpoints: one ``.pt`` file per snapshot, loadable with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and JSON-able values (SPEC §3, §9), so reading one never
unpickles arbitrary objects: the network is rebuilt from ``config["model"]`` and the
weights are loaded into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tinyseg_cli import __version__
from tinyseg_cli.errors import TinysegError, library_reason
from tinyseg_cli.io.atomic import atomic_path
from tinyseg_cli.io.paths import not_a_file

FORMAT = "tinyseg-checkpoint/1"


@dataclass
class Checkpoint:
    """What a checkpoint file holds; ``state`` is the training state needed to resume."""

    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    step: int = 0
    epoch: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # optimiser, scheduler, best score
    version: str = __version__


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically: an interrupted write never leaves a half file."""
    payload = {
        "format": FORMAT,
        "version": checkpoint.version,
        "config": checkpoint.config,
        "state_dict": {k: v.detach().cpu() for k, v in checkpoint.state_dict.items()},
        "step": checkpoint.step,
        "epoch": checkpoint.epoch,
        "state": checkpoint.state,
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a tinyseg checkpoint safely (``weights_only=True``); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path, "checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated, or holding arbitrary objects
        raise TinysegError(
            f"{path}: not a readable checkpoint ({library_reason(error)})"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TinysegError(f"{path}: not a tinyseg checkpoint (expected format {FORMAT!r})")
    return Checkpoint(
        config=payload["config"],
        state_dict=payload["state_dict"],
        step=int(payload.get("step", 0)),
        epoch=int(payload.get("epoch", 0)),
        state=payload.get("state", {}),
        version=str(payload.get("version", "")),
    )

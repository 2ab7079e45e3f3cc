"""A checkpoint made ready for inference: the network rebuilt from ``config["model"]`` with its
weights, and everything inference needs from the config, checked once (SPEC §3, §9)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.heads import Head, head_of
from tinyseg_cli.inference.runtime import Runner
from tinyseg_cli.io.checkpoint import load_checkpoint


@dataclass(frozen=True)
class LoadedModel:
    """One checkpoint's network on its device, with how to feed it and read its output."""

    path: Path
    config: dict[str, Any]
    runner: Runner
    head: Head
    stride: int
    min_size: int  # the smallest side the network accepts (padded up to it)
    channels: int
    resize: tuple[int, int] | None


def _normalisation(config: dict[str, Any], channels: int, path: Path) -> tuple[np.ndarray, ...]:
    values = config.get("normalisation")
    try:
        mean = np.asarray(values["mean"], np.float32).reshape(-1)  # type: ignore[index]
        std = np.asarray(values["std"], np.float32).reshape(-1)  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise TinysegError(
            f"{path}: checkpoint config needs normalisation {{mean: [...], std: [...]}}, found "
            f"{values!r}"
        ) from None
    if mean.size != channels or std.size != channels or not (std > 0).all():
        raise TinysegError(
            f"{path}: normalisation needs {channels} means and positive stds, found "
            f"{mean.size} and {std.size}"
        )
    return mean, std


def _resize(config: dict[str, Any], path: Path) -> tuple[int, int] | None:
    value = (config.get("input") or {}).get("resize")
    if value is None:
        return None
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(v > 0 for v in value)):
        raise TinysegError(f"{path}: input resize: expected [H, W], found {value!r}")
    return int(value[0]), int(value[1])


def load_model(
    path: str | Path, device: torch.device, threshold: float | None = None
) -> LoadedModel:
    """Read ``path`` (``weights_only``), rebuild its network on ``device`` in eval mode.

    ``threshold`` replaces a binary model's own (``config["binary"]["threshold"]``).
    """
    from tinyseg_cli import models

    path = Path(path)
    checkpoint = load_checkpoint(path)
    config = checkpoint.config
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise TinysegError(f"{path}: checkpoint config lacks the model spec ('model')")
    if (config.get("input") or {}).get("modality") == "voxels":
        raise TinysegError(f"{path}: a 3D checkpoint predicts a voxel table, not images")
    spec = models.normalise_spec(config["model"])
    net = models.build_model(spec)
    try:
        net.load_state_dict(checkpoint.state_dict)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise TinysegError(
            f"{path}: the weights do not fit a {spec['arch']} network ({first})"
        ) from None
    channels = int((config.get("input") or {}).get("channels") or spec["in_channels"])
    mean, std = _normalisation(config, channels, path)
    return LoadedModel(
        path=path,
        config=config,
        runner=Runner(models.to_inference(net, device), mean, std),
        head=head_of(config, spec["out_channels"], threshold, path),
        stride=models.output_stride(spec),
        min_size=models.min_input_size(spec),
        channels=channels,
        resize=_resize(config, path),
    )

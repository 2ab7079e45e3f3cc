"""The options of a run and the checkpoint ``config`` built from them (SPEC §3, §4.5), one
shape for both modalities: 2D adds its binary class and input size, 3D its features and the
voxel table's parameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tinyseg_cli import __version__
from tinyseg_cli.io.classmap import ClassMap


@dataclass
class TrainOptions:
    """The options of one training run; stored in the checkpoint as ``config["train"]``."""

    manifest: str
    run_dir: str
    arch: str = "unet"
    encoder: str | None = "mobilenet_v2"
    encoder_weights: str = "none"
    in_channels: int = 3
    classes: str | None = None
    palette: str | None = None
    ignore_index: int = 255
    binary: str | None = None
    class_weights: str | None = None
    fold: int | None = None
    patches: str | None = None
    refresh_every: int = 1
    patch_size: int = 256
    patches_per_image: int = 4
    resize: tuple[int, int] | None = None
    augment: str | None = None
    loss: str = "ce"
    loss_params: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"
    lr_decay: float = 0.96
    decay_every: int = 800
    epochs: int | None = None
    iterations: int | None = None
    batch_size: int = 8
    workers: int = 0
    checkpoint_every: int = 0
    val_every: int = 1
    select: str = "f2"
    max_pixels: int = 4096 * 4096
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    distributed: bool = False
    threshold: float = 0.5
    init_weights: str | None = None  # a checkpoint whose weights a fresh run starts from
    # 3D (voxel tables): feature columns (None: all), sparse U-Net widths, ASPP, backend
    features: tuple[str, ...] | None = None
    channels: tuple[int, ...] = (32, 64, 128, 256)
    aspp: bool = True
    aspp_dilations: tuple[int, ...] = (6, 12, 18)
    sparse_backend: str = "auto"

    def to_config(self) -> dict[str, Any]:
        values = asdict(self)
        values["resize"] = list(self.resize) if self.resize else None
        for name in TUPLES:
            values[name] = None if values[name] is None else list(values[name])
        return values

    @classmethod
    def from_config(cls, values: dict[str, Any]) -> TrainOptions:
        values = dict(values)
        if values.get("resize"):
            values["resize"] = tuple(values["resize"])
        for name in TUPLES:
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


TUPLES = ("features", "channels", "aspp_dilations")  # stored as JSON lists


def checkpoint_config(
    options: TrainOptions,
    model_spec: dict[str, Any],
    class_map: ClassMap,
    normalisation: tuple[Sequence[float], Sequence[float]],
    inputs: dict[str, Any],
    binary: dict[str, Any] | None = None,
    voxelize: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-able checkpoint ``config`` (SPEC §3): only plain values, no module paths, so
    a checkpoint loads with ``weights_only=True`` whatever the code's layout."""
    mean, std = normalisation
    return {
        "model": model_spec,
        "classes": class_map.to_metadata(),
        "binary": binary,
        "normalisation": {"mean": list(mean), "std": list(std)},
        "input": inputs,
        **({} if voxelize is None else {"voxelize": voxelize}),
        "ignore_index": options.ignore_index,
        "loss": {"name": options.loss, **options.loss_params},
        "train": options.to_config(),
        "tinyseg": __version__,
    }

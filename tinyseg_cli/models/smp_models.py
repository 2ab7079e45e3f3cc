"""segmentation-models-pytorch networks by name (SPEC §7.1): smp's own registries of
architectures and encoders, construction without weights, and its ImageNet download.

Importing this module imports smp (and timm): seconds, so the package imports it lazily.
"""

from __future__ import annotations

import difflib
from typing import Any

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.base import SegmentationModel

from tinyseg_cli.errors import TinysegError

TIMM_PREFIX = "tu-"  # smp's prefix for any timm model used as an encoder
# Errors smp and timm raise for a combination they do not support (e.g. UnetPlusPlus with a
# transformer encoder, DeepLabV3Plus with an encoder that cannot dilate).
BUILD_ERRORS = (KeyError, ValueError, TypeError, RuntimeError, AttributeError, AssertionError)


def architectures() -> dict[str, type[SegmentationModel]]:
    """smp's architectures by lower-case class name (its own registry where it has one)."""
    mapping = getattr(smp, "MODEL_ARCHITECTURES_MAPPING", None)
    if mapping is None:  # smp < 0.4 keeps the list inside create_model
        mapping = {
            name.lower(): value
            for name, value in vars(smp).items()
            if isinstance(value, type) and issubclass(value, SegmentationModel)
        }
    return dict(mapping)


def encoder_names() -> list[str]:
    """smp's own encoder names (any ``tu-<timm model>`` is accepted besides)."""
    return list(smp.encoders.get_encoder_names())


def did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def canonical_arch(arch: str) -> str | None:
    """The registry key of ``arch`` (case-insensitive), or None if smp has no such network."""
    key = arch.strip().lower()
    return key if key in architectures() else None


def canonical_encoder(encoder: Any) -> str:
    """``encoder`` checked against smp's registry and timm's model list."""
    if not isinstance(encoder, str) or not encoder.strip():
        raise TinysegError(
            f"encoder: expected an smp encoder name such as resnet34, found {encoder!r}"
        )
    name = encoder.strip()
    names = encoder_names()
    if name in names:
        return name
    if name.lower() in names:
        return name.lower()
    if name.startswith(TIMM_PREFIX):
        import timm

        if timm.is_model(name[len(TIMM_PREFIX) :].split(".")[0]):
            return name
        raise TinysegError(f"encoder: expected tu-<a timm model name>, found {name!r}")
    raise TinysegError(
        f"encoder: expected one of smp's encoders or tu-<timm model>, found {name!r}"
        f"{did_you_mean(name, names)}; smp's encoders: {', '.join(names)}"
    )


def create(arch: str, encoder: str, in_channels: int, out_channels: int) -> SegmentationModel:
    """``smp.create_model`` with random weights (nothing is downloaded)."""
    try:
        return smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=None,
            in_channels=in_channels,
            classes=out_channels,
        )
    except BUILD_ERRORS as error:
        raise TinysegError(
            f"model: cannot build {arch} with encoder {encoder}: {_first_line(error)}"
        ) from None


def imagenet_encoder_state(
    arch: str, encoder: str, in_channels: int, out_channels: int
) -> dict[str, torch.Tensor]:
    """The encoder state of ``arch``/``encoder`` with smp's ImageNet weights: the one place
    tinyseg downloads (smp's own mechanism, cached by huggingface_hub / timm)."""
    weights: Any = "imagenet"
    if encoder.startswith(TIMM_PREFIX):
        weights = True  # timm encoders take a flag; the tag in the name picks the weights
    else:
        available = list(smp.encoders.encoders[encoder]["pretrained_settings"])
        if "imagenet" not in available:
            raise TinysegError(
                f"encoder weights: expected an encoder with imagenet weights, found {encoder} "
                f"(smp has {', '.join(available) or 'no'} weights for it)"
            )
    try:
        twin = smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=weights,
            in_channels=in_channels,
            classes=out_channels,
        )
    # The download goes through huggingface_hub or timm, whose network and cache errors have
    # no common base class; the same network was already built without weights, so any
    # failure here is the download's.
    except Exception as error:
        raise TinysegError(
            f"encoder weights: downloading the imagenet weights of {encoder} failed: "
            f"{_first_line(error)}"
        ) from None
    return twin.encoder.state_dict()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

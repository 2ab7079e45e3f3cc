"""Networks from a JSON-able spec (SPEC §7): checking the spec, building the network, its
stride and smallest input, encoder weights, and preparing it for inference.

A spec is ``{"arch", "encoder", "in_channels", "out_channels"}`` plus, for the seed networks,
an optional ``"width"`` (feature maps, or MultiRes units, of the first stage; each network's
default is its published size, SPEC §7.2). smp is imported only when a spec names one of its
architectures: building a seed network stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyseg_cli.errors import TinysegError, library_reason
from tinyseg_cli.models.seed_networks import (
    NETWORKS,
    build_seed_network,
    default_width,
    seed_stride,
)

SEED_NETWORKS = tuple(NETWORKS)
SPARSE_UNET = "sparse-unet"  # the 3D network of SPEC §7.3, on voxel tables
MAX_STRIDE_MULTIPLE = 64  # min_input_size gives up beyond this many strides


def architecture_names() -> list[str]:
    """Every accepted ``arch``: smp's architectures (lower case), then the seed networks."""
    from tinyseg_cli.models import smp_models

    return [*smp_models.architectures(), *SEED_NETWORKS, SPARSE_UNET]


def _positive_int(spec: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TinysegError(f"model spec: {key}: expected a positive integer, found {value!r}")
    return value


def normalise_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of ``spec`` (lower-case arch, checked names and sizes): store this one
    in checkpoints. Keys other than the spec's own are dropped."""
    if not isinstance(spec, Mapping):
        raise TinysegError(f"model spec: expected a mapping, found {type(spec).__name__}")
    arch = spec.get("arch")
    if not isinstance(arch, str) or not arch.strip():
        raise TinysegError(f"model spec: arch: expected a network name, found {arch!r}")
    sizes = {key: _positive_int(spec, key) for key in ("in_channels", "out_channels")}
    key = arch.strip().lower()
    if key == SPARSE_UNET:
        return _sparse_spec(spec, sizes)
    if key in NETWORKS:
        width = _positive_int(spec, "width", default_width(key))
        return {"arch": key, "encoder": None, **sizes, "width": width}
    from tinyseg_cli.models import smp_models

    smp_key = smp_models.canonical_arch(arch)
    if smp_key is None:
        names = architecture_names()
        raise TinysegError(
            f"architecture: expected one of {', '.join(names)}, found {arch!r}"
            f"{smp_models.did_you_mean(key, names)}"
        )
    encoder = smp_models.canonical_encoder(spec.get("encoder"))
    return {"arch": smp_key, "encoder": encoder, **sizes}


def _int_list(spec: Mapping[str, Any], key: str, default: tuple[int, ...]) -> list[int]:
    values = spec.get(key, default)
    if not isinstance(values, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise TinysegError(f"model spec: {key}: expected positive integers, found {values!r}")
    return list(values)


def _sparse_spec(spec: Mapping[str, Any], sizes: dict[str, int]) -> dict[str, Any]:
    """``sparse-unet``: widths per stage, ASPP and its dilations, and the sparse backend."""
    from tinyseg_cli.models.sparse_unet import DEFAULT_CHANNELS, DEFAULT_DILATIONS
    from tinyseg_cli.sparse import BACKENDS

    backend = spec.get("backend", "auto")
    if backend not in BACKENDS:
        raise TinysegError(
            f"model spec: backend: expected one of {', '.join(BACKENDS)}, found {backend!r}"
        )
    return {
        "arch": SPARSE_UNET,
        "encoder": None,
        **sizes,
        "channels": _int_list(spec, "channels", DEFAULT_CHANNELS),
        "aspp": bool(spec.get("aspp", True)),
        "aspp_dilations": _int_list(spec, "aspp_dilations", DEFAULT_DILATIONS),
        "backend": backend,
    }


def build_model(spec: Mapping[str, Any]) -> nn.Module:
    """The network ``spec`` names, with random weights; its output is logits (N, K, H, W),
    or (N, K) per voxel for ``sparse-unet`` (input: a sparse tensor)."""
    spec = normalise_spec(spec)
    if spec["arch"] == SPARSE_UNET:
        from tinyseg_cli.models.sparse_unet import SparseUNet

        return SparseUNet(
            spec["in_channels"],
            spec["out_channels"],
            channels=spec["channels"],
            aspp=spec["aspp"],
            aspp_dilations=spec["aspp_dilations"],
            backend=spec["backend"],
        )
    if spec["encoder"] is None:
        return build_seed_network(
            spec["arch"], spec["in_channels"], spec["out_channels"], spec["width"]
        )
    from tinyseg_cli.models import smp_models

    return smp_models.create(
        spec["arch"], spec["encoder"], spec["in_channels"], spec["out_channels"]
    )


def _spec_key(spec: Mapping[str, Any]) -> tuple:
    return tuple(sorted(normalise_spec(spec).items()))


@lru_cache(maxsize=32)
def _meta_model(key: tuple) -> nn.Module:
    # On the meta device construction and forward passes only track shapes: instant even for
    # 50 M parameters, which is what stride probing and FLOP counting need.
    with torch.device("meta"):
        return build_model(dict(key)).eval()


def meta_model(spec: Mapping[str, Any]) -> nn.Module:
    """A shape-only twin of ``build_model(spec)`` on the meta device, in eval mode (cached)."""
    return _meta_model(_spec_key(spec))


def output_stride(spec: Mapping[str, Any]) -> int:
    """The side an input must be a multiple of.

    Seed networks: 2 ** poolings (16 with 4 encoder stages, 4 with 2, 2 with 1). smp networks:
    their encoder's output stride (32 for most, 16 for DeepLabV3Plus and PAN, 8 for DeepLabV3
    and PSPNet); smp refuses other sizes with a RuntimeError except for Unet, which
    interpolates its features but is still given multiples of 32 so that they align. See also
    :func:`min_input_size`.
    """
    spec = normalise_spec(spec)
    if spec["encoder"] is None:
        return seed_stride(spec["arch"])
    return int(getattr(meta_model(spec).encoder, "output_stride", 32))


@lru_cache(maxsize=32)
def _min_input_size(key: tuple) -> int:
    spec = dict(key)
    stride = output_stride(spec)
    model = meta_model(spec)
    for multiple in range(1, MAX_STRIDE_MULTIPLE + 1):
        side = stride * multiple
        try:
            with torch.no_grad():
                model(torch.empty(1, spec["in_channels"], side, side, device="meta"))
        except (RuntimeError, ValueError, TinysegError):
            continue
        return side
    raise TinysegError(
        f"model: {spec['arch']} with encoder {spec['encoder']} accepts no input up to "
        f"{stride * MAX_STRIDE_MULTIPLE} pixels a side"
    )


def min_input_size(spec: Mapping[str, Any]) -> int:
    """The smallest side (a multiple of :func:`output_stride`) the network accepts: the stride
    itself for most; PAN needs 128 (its pyramid attention pools its stride-16 features three
    more times); PSPNet with efficientnet-b0 needs 16. Inference pads smaller inputs up to it."""
    return _min_input_size(_spec_key(spec))


def min_train_batch(spec: Mapping[str, Any], input_hw: tuple[int, int]) -> int:
    """1, or 2 where batch norm in training mode would see one value per channel with a batch of
    one image of ``input_hw``: DeepLabV3Plus and PAN (batch norm after global pooling) at any
    size, the seed U-Nets when the bottleneck is 1×1. Training needs batches of at least this
    (``drop_last`` or a batch size ≥ 2)."""
    spec = normalise_spec(spec)
    height, width = (int(side) for side in input_hw)
    check_input_size(spec, height, width)
    model = meta_model(spec)
    try:
        model.train()
        model(torch.empty(1, spec["in_channels"], height, width, device="meta"))
    except ValueError as error:
        if "more than 1 value per channel" not in str(error):
            raise
        return 2
    finally:
        model.eval()
    return 1


def check_input_size(spec: Mapping[str, Any], height: int, width: int) -> None:
    """Raise a one-line error unless the network accepts a ``height`` × ``width`` input."""
    stride, smallest = output_stride(spec), min_input_size(spec)
    if height % stride or width % stride or min(height, width) < smallest:
        raise TinysegError(
            f"network input: expected sides that are multiples of {stride} and at least "
            f"{smallest}, found {height}×{width}"
        )


def load_encoder_weights(model: nn.Module, spec: Mapping[str, Any], weights: str | Path) -> None:
    """Load encoder weights into ``model`` in place (SPEC §7.1).

    ``weights``: ``none`` (keep the random weights), ``imagenet`` (smp's download: the only
    option that touches the network) or the path of a state dict for ``model.encoder`` saved
    with ``torch.save`` and loadable with ``torch.load(weights_only=True)``. A whole-model state
    dict (keys ``encoder.…``) or a tinyseg checkpoint is accepted too: its encoder part is used.
    """
    spec = normalise_spec(spec)
    choice = str(weights)
    if choice.lower() == "none":
        return
    if spec["encoder"] is None:
        raise TinysegError(
            f"encoder weights: {spec['arch']} has no pretrained encoder; expected none, "
            f"found {choice}"
        )
    if choice.lower() == "imagenet":
        from tinyseg_cli.models import smp_models

        state = smp_models.imagenet_encoder_state(
            spec["arch"], spec["encoder"], spec["in_channels"], spec["out_channels"]
        )
        model.encoder.load_state_dict(state)
        return
    path = Path(choice)
    state = _encoder_part(_read_state_dict(path))
    _check_state(path, model.encoder.state_dict(), state)
    model.encoder.load_state_dict(state)


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise TinysegError(
            f"{path}: encoder weights: expected none, imagenet or an existing state dict file, "
            "found no such file"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises pickle, zip and type errors alike
        raise TinysegError(
            f"{path}: expected a state dict loadable with torch.load(weights_only=True), "
            f"found a file that is not ({library_reason(error)})"
        ) from error
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a tinyseg checkpoint
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise TinysegError(
            f"{path}: expected a state dict (names to tensors), found {type(state).__name__}"
        )
    return state


def _encoder_part(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = "encoder."
    if any(key.startswith(prefix) for key in state):
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def _check_state(
    path: Path, expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> None:
    def first(keys: list[str]) -> str:
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return ", ".join(keys[:3]) + more

    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        raise TinysegError(
            f"{path}: expected the encoder's {len(expected)} tensors, found "
            f"{len(missing)} missing ({first(missing) or '-'}) and "
            f"{len(unexpected)} unexpected ({first(unexpected) or '-'})"
        )
    wrong = [
        f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if found[k].shape != v.shape
    ]
    if wrong:
        raise TinysegError(f"{path}: expected the encoder's tensor shapes, found {first(wrong)}")


def to_inference(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """``model`` in eval mode on ``device`` in channels-last memory format, which halves CPU
    inference time (SPEC §8). Feed it ``x.contiguous(memory_format=torch.channels_last)``."""
    model.eval()
    return model.to(device=torch.device(device), memory_format=torch.channels_last)

"""The model layer (SPEC §7.1, §7.2): smp architectures × encoders by name, the seed networks,
strides, parameter and FLOP counts, encoder weights from a file, and errors naming the
alternatives. Nothing here downloads."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tinyseg_cli import models
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.models import (
    SEED_NETWORKS,
    build_model,
    describe,
    load_encoder_weights,
    meta_model,
    min_input_size,
    min_train_batch,
    normalise_spec,
    output_stride,
    to_inference,
)
from tinyseg_cli.models.seed_networks import MultiResBlock, ResPath

K = 3  # classes in every test network


def spec_of(arch: str, encoder: str | None = None, **extra) -> dict:
    return {"arch": arch, "encoder": encoder, "in_channels": 3, "out_channels": K, **extra}


def assert_state_dict_round_trips(model: nn.Module) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    model.load_state_dict(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


# --- segmentation-models-pytorch (SPEC §4.5: these 16 at least) ----------------------------

SMP_ARCHS = ["Unet", "UnetPlusPlus", "DeepLabV3Plus", "PAN"]
ENCODERS = ["resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0"]
SMP_STRIDES = {"unet": 32, "unetplusplus": 32, "deeplabv3plus": 16, "pan": 16}


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("arch", SMP_ARCHS)
def test_smp_network_builds_offline_and_gives_logits(arch: str, encoder: str):
    spec = spec_of(arch, encoder)
    stride = output_stride(spec)
    assert stride == SMP_STRIDES[arch.lower()]
    # PAN's pyramid attention pools its stride-16 features 3 more times: 128 is its minimum.
    smallest = 128 if arch == "PAN" else stride
    assert min_input_size(spec) == smallest
    model = build_model(spec).eval()
    side = max(64, smallest)
    with torch.no_grad():
        assert model(torch.rand(1, 3, side, side)).shape == (1, K, side, side)
    assert_state_dict_round_trips(model)
    # Shapes only (meta device): an odd number of strides, 3·32, 3·16 or 9·16, goes through.
    odd = smallest + stride
    image = torch.empty(1, 3, odd, odd + 2 * stride, device="meta")
    assert meta_model(spec)(image).shape == (1, K, odd, odd + 2 * stride)


@pytest.mark.parametrize("arch", SMP_ARCHS)
def test_smp_input_off_the_stride(arch: str):
    spec = spec_of(arch, "mobilenet_v2")
    side = min_input_size(spec) + output_stride(spec) // 2
    image = torch.empty(1, 3, side, side, device="meta")
    if arch == "Unet":  # smp's Unet interpolates its features: any size goes through
        assert meta_model(spec)(image).shape == (1, K, side, side)
    else:
        with pytest.raises(RuntimeError, match="divisible"):
            meta_model(spec)(image)


@pytest.mark.parametrize(
    ("arch", "encoder", "side", "batch"),
    [
        ("DeepLabV3Plus", "mobilenet_v2", 256, 2),  # batch norm after global pooling
        ("PAN", "mobilenet_v2", 256, 2),
        ("Unet", "mobilenet_v2", 32, 2),  # the stride-32 features are 1×1
        ("Unet", "mobilenet_v2", 64, 1),
        ("unet-baseline", None, 16, 2),
        ("unet-baseline", None, 32, 1),
    ],
)
def test_min_train_batch(arch: str, encoder: str | None, side: int, batch: int):
    spec = spec_of(arch, encoder)
    assert min_train_batch(spec, (side, side)) == batch
    model = build_model(spec).train()
    one_image = torch.rand(1, 3, side, side)
    if batch == 2:
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            model(one_image)
    else:
        assert model(one_image).shape == (1, K, side, side)


def test_arch_names_are_case_insensitive_and_normalised():
    assert normalise_spec(spec_of("DeepLabV3Plus", "resnet34")) == {
        "arch": "deeplabv3plus",
        "encoder": "resnet34",
        "in_channels": 3,
        "out_channels": K,
    }
    assert normalise_spec(spec_of("Half-UNet", "resnet34"))["encoder"] is None
    assert normalise_spec(spec_of("unet", "tu-resnet18"))["encoder"] == "tu-resnet18"
    names = models.ARCHITECTURES
    assert {"unet", "unetplusplus", "deeplabv3plus", "pan", *SEED_NETWORKS} <= set(names)


def test_unknown_arch_names_the_alternatives():
    with pytest.raises(TinysegError) as error:
        build_model(spec_of("unet+++", "resnet34"))
    message = str(error.value)
    assert "'unet+++'" in message
    for name in ("unetplusplus", "deeplabv3plus", "pan", "unet-baseline", "multiresunet"):
        assert name in message


@pytest.mark.parametrize("encoder", ["resnet33", "tu-not-a-timm-model", None])
def test_unknown_encoder_names_the_alternatives(encoder):
    with pytest.raises(TinysegError, match="encoder") as error:
        build_model(spec_of("unet", encoder))
    if encoder == "resnet33":
        assert "did you mean resnet34" in str(error.value)
        assert "mobilenet_v2" in str(error.value) and "efficientnet-b0" in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"), [("in_channels", 0), ("out_channels", "3"), ("width", -1)]
)
def test_bad_sizes_in_the_spec(key, value):
    with pytest.raises(TinysegError, match=key):
        normalise_spec({**spec_of("unet-baseline"), key: value})


# --- seed networks (SPEC §7.2) ------------------------------------------------------------

SEED_STRIDES = {
    "unet-baseline": 16,
    "unet-64": 16,
    "half-unet": 4,
    "multiresunet": 16,
    "half-multiresunet": 4,
    "quarter-multiresunet": 2,
}


@pytest.mark.parametrize("arch", SEED_NETWORKS)
def test_seed_network_forward_at_an_odd_multiple_of_its_stride(arch: str):
    spec = spec_of(arch)
    stride = output_stride(spec)
    assert stride == SEED_STRIDES[arch]
    assert min_input_size(spec) == stride
    model = build_model(spec).eval()
    side = 3 * stride
    with torch.no_grad():
        assert model(torch.rand(2, 3, side, side)).shape == (2, K, side, side)
        with pytest.raises(TinysegError, match=f"divisible by {stride}, found {side + 1}"):
            model(torch.rand(1, 3, side + 1, side))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(n.momentum == 0.1 and n.eps == 1e-3 for n in norms)
    assert_state_dict_round_trips(model)


def test_seed_networks_train_one_step():
    model = build_model(spec_of("quarter-multiresunet", width=4))
    logits = model(torch.rand(2, 3, 8, 8))
    nn.functional.cross_entropy(logits, torch.randint(0, K, (2, 8, 8))).backward()
    assert all(p.grad is not None for p in model.parameters())


def conv_bn(a: int, b: int, k: int = 3) -> int:
    """Parameters of a bias-free k×k convolution a→b plus its batch norm (weight, bias)."""
    return k * k * a * b + 2 * b


def unet_parameters(width: int, c_in: int, c_out: int, depth: int = 4, growth: int = 2) -> int:
    """SPEC §7.2 by hand: stages w·2^i, bottleneck growth × the last; 2×2 up-convolutions with
    batch norm; a biased 3×3 convolution as the last layer."""
    w = [width * 2**i for i in range(depth)] + [width * 2 ** (depth - 1) * growth]
    encoder = conv_bn(c_in, w[0]) + conv_bn(w[0], w[0])
    encoder += sum(conv_bn(w[i - 1], w[i]) + conv_bn(w[i], w[i]) for i in range(1, depth + 1))
    decoder = sum(
        conv_bn(w[i + 1], w[i], 2) + conv_bn(2 * w[i], w[i]) + conv_bn(w[i], w[i])
        for i in range(depth)
    )
    return encoder + decoder + 9 * width * c_out + c_out


def test_unet_baseline_parameter_count():
    # width 2, 1 → 1 channel, written out stage by stage:
    # encoder 62 + 232 + 896 + 3520, bottleneck 13952,
    # decoder (2080 + 6976) + (528 + 1760) + (136 + 448) + (36 + 116), last layer 19.
    tiny = build_model({"arch": "unet-baseline", "in_channels": 1, "out_channels": 1, "width": 2})
    assert sum(p.numel() for p in tiny.parameters()) == 30761 == unet_parameters(2, 1, 1)
    full = build_model(spec_of("unet-baseline"))
    assert sum(p.numel() for p in full.parameters()) == unet_parameters(32, 3, K)


@pytest.mark.parametrize(
    ("arch", "width", "depth", "growth"),
    [("unet-baseline", 32, 4, 2), ("unet-64", 64, 4, 1), ("half-unet", 64, 2, 2)],
)
def test_unet_widths_by_hand(arch: str, width: int, depth: int, growth: int):
    with torch.device("meta"):
        model = build_model(spec_of(arch))
    assert normalise_spec(spec_of(arch))["width"] == width
    assert sum(p.numel() for p in model.parameters()) == unet_parameters(width, 3, K, depth, growth)


def test_multires_block_and_res_path_parameter_counts():
    # U = 32: W = 53.44 → int(0.167 W), int(0.333 W), int(0.5 W) = 8, 17, 26 → 51 channels.
    block = MultiResBlock(3, 32)
    assert block.out_channels == 51
    expected = conv_bn(3, 8) + conv_bn(8, 17) + conv_bn(17, 26) + conv_bn(3, 51, 1) + 2 * 102
    assert sum(p.numel() for p in block.parameters()) == expected == 5979
    path = ResPath(51, 32, 4)  # first unit 51 → 32, three more 32 → 32, a norm after each
    unit = conv_bn(32, 32) + conv_bn(32, 32, 1) + 64
    first = conv_bn(51, 32) + conv_bn(51, 32, 1) + 64
    assert sum(p.numel() for p in path.parameters()) == first + 3 * unit == 47808


@pytest.mark.parametrize(
    ("arch", "lengths"),
    [("multiresunet", [4, 3, 2, 1]), ("half-multiresunet", [4, 3]), ("quarter-multiresunet", [4])],
)
def test_multiresunet_depths_and_res_path_lengths(arch: str, lengths: list[int]):
    model = build_model(spec_of(arch, width=4))
    assert [len(path.convs) for path in model.paths] == lengths
    assert len(model.encoder) == len(model.decoder) == len(lengths)


def multires_channels(units: int) -> int:
    """Output channels of a MultiRes block of ``units``: int(0.167 W) + int(0.333 W) +
    int(0.5 W) with W = 1.67 U."""
    w = 1.67 * units
    return int(0.167 * w) + int(0.333 * w) + int(0.5 * w)


@pytest.mark.parametrize(
    ("arch", "units"),
    [
        ("multiresunet", [42, 84, 168, 336, 672]),  # the bottleneck doubles, as in the paper
        ("half-multiresunet", [24, 48, 48]),  # reduced: it keeps the last stage's units
        ("quarter-multiresunet", [24, 24]),
    ],
)
def test_multiresunet_default_widths(arch: str, units: list[int]):
    with torch.device("meta"):
        model = build_model(spec_of(arch))
    found = [block.out_channels for block in [*model.encoder, model.bottleneck]]
    assert found == [multires_channels(u) for u in units]
    assert [path.convs[0][0].out_channels for path in model.paths] == units[:-1]


# --- describe -----------------------------------------------------------------------------


def unet_baseline_flops(width: int, c_in: int, c_out: int, side: int) -> int:
    """Convolution FLOPs (2 per multiply-add, no bias) of unet-baseline on a side×side image."""
    w = [width * 2**i for i in range(5)]

    def conv(a: int, b: int, k: int, s: int) -> int:
        return 2 * a * b * k * k * s * s

    flops = conv(c_in, w[0], 3, side) + conv(w[0], w[0], 3, side)
    for i in range(1, 5):
        s = side // 2**i
        flops += conv(w[i - 1], w[i], 3, s) + conv(w[i], w[i], 3, s)
    for i in range(4):
        s = side // 2**i
        flops += conv(w[i + 1], w[i], 2, s // 2)  # transposed: one 2×2 kernel per input pixel
        flops += conv(2 * w[i], w[i], 3, s) + conv(w[i], w[i], 3, s)
    return flops + conv(w[0], c_out, 3, side)


def test_describe_counts_parameters_and_flops():
    spec = {"arch": "unet-baseline", "in_channels": 1, "out_channels": 1, "width": 2}
    model = build_model(spec)
    model.head.requires_grad_(False)
    info = describe(model, spec, (32, 48))
    assert info["parameters"] == sum(p.numel() for p in model.parameters()) == 30761
    assert info["trainable"] == 30761 - 19
    assert info["flops"] == unet_baseline_flops(2, 1, 1, 32) * 48 // 32 > 0
    with pytest.raises(TinysegError, match="multiples of 16"):
        describe(model, spec, (40, 48))


# The microplastic study's Table 4 (Lee & Jhang 2021), the hand-given reference: parameters
# and FLOPs at 512×512 (FLOPs = 2 × multiply-adds), and ours, counted by this code with 3 input
# channels and 1 output (benchmarks/seed_network_widths.py chose the widths).
TABLE_4 = {
    "unet-64": (21_977_600, 329.7e9),
    "half-unet": (1_772_400, 204.0e9),
    "multiresunet": (13_546_900, 204.8e9),
    "half-multiresunet": (214_900, 42.9e9),
    "quarter-multiresunet": (44_500, 21.9e9),
}
PUBLISHED_SIZES = {
    "unet-64": (20_551_297, 364_132_696_064),
    "half-unet": (1_864_833, 203_071_422_464),
    "multiresunet": (12_489_381, 218_002_210_816),
    "half-multiresunet": (227_441, 39_798_112_256),
    "quarter-multiresunet": (49_456, 21_028_798_464),
}


@pytest.mark.parametrize("arch", TABLE_4)
def test_seed_networks_have_the_published_sizes(arch: str):
    spec = {"arch": arch, "in_channels": 3, "out_channels": 1}
    with torch.device("meta"):  # counts only: no weights are initialised
        model = build_model(spec)
    info = describe(model, spec, (512, 512))
    assert (info["parameters"], info["flops"]) == PUBLISHED_SIZES[arch]
    parameters, flops = TABLE_4[arch]
    assert info["parameters"] == pytest.approx(parameters, rel=0.15)
    assert info["flops"] == pytest.approx(flops, rel=0.15)
    # Every layer is a convolution (or pooling) whose output has a fixed share of the input's
    # pixels, so at sides that are multiples of the stride FLOPs grow exactly with the area.
    assert describe(model, spec, (128, 256))["flops"] * 8 == info["flops"]


@pytest.mark.parametrize(("arch", "encoder"), [("unet", "mobilenet_v2"), ("pan", "resnet34")])
def test_describe_smp_network(arch: str, encoder: str):
    spec = spec_of(arch, encoder)
    model = build_model(spec)
    info = describe(model, spec, (128, 128))
    assert info["parameters"] == info["trainable"] == sum(p.numel() for p in model.parameters())
    assert info["flops"] > 0
    assert describe(model, spec, (256, 256))["flops"] > 3 * info["flops"]
    assert model.training  # untouched: FLOPs are counted on a meta-device twin


# --- encoder weights ----------------------------------------------------------------------

SMALL = spec_of("unet", "mobilenet_v2")


def test_encoder_weights_from_a_path_round_trip(tmp_path: Path):
    source, target = build_model(SMALL), build_model(SMALL)
    path = tmp_path / "encoder.pt"
    torch.save(source.encoder.state_dict(), path)
    load_encoder_weights(target, SMALL, path)
    expected = source.encoder.state_dict()
    for key, value in target.encoder.state_dict().items():
        assert torch.equal(value, expected[key]), key
    whole = tmp_path / "whole.pt"  # a whole-model state dict: its encoder.* part is used
    torch.save(build_model(SMALL).state_dict(), whole)
    load_encoder_weights(target, SMALL, str(whole))
    weight = "features.0.0.weight"
    assert not torch.equal(target.encoder.state_dict()[weight], expected[weight])
    load_encoder_weights(target, SMALL, "none")  # keeps the weights it has


def test_encoder_weights_with_wrong_keys_or_shapes(tmp_path: Path):
    model = build_model(SMALL)
    state = model.encoder.state_dict()
    renamed = dict(state)
    first = next(iter(renamed))
    renamed["not.a.layer"] = renamed.pop(first)
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(TinysegError, match=r"1 missing \(" + first.replace(".", r"\.")) as error:
        load_encoder_weights(model, SMALL, tmp_path / "renamed.pt")
    assert "1 unexpected (not.a.layer)" in str(error.value)
    grey = build_model({**SMALL, "in_channels": 1})
    torch.save(grey.encoder.state_dict(), tmp_path / "grey.pt")
    with pytest.raises(TinysegError, match=r"shapes, found features\.0\.0\.weight \(32, 1, 3, 3\)"):
        load_encoder_weights(model, SMALL, tmp_path / "grey.pt")


def test_encoder_weights_file_errors(tmp_path: Path):
    model = build_model(SMALL)
    with pytest.raises(TinysegError, match="no such file"):
        load_encoder_weights(model, SMALL, tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_text("not a state dict")
    with pytest.raises(TinysegError, match="weights_only=True"):
        load_encoder_weights(model, SMALL, tmp_path / "text.pt")
    torch.save({"layer": io.StringIO("a pickled object")}, tmp_path / "object.pt")
    with pytest.raises(TinysegError, match="weights_only=True"):
        load_encoder_weights(model, SMALL, tmp_path / "object.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(TinysegError, match="found list"):
        load_encoder_weights(model, SMALL, tmp_path / "list.pt")


def test_encoder_weights_refused_without_download(tmp_path: Path):
    seed = spec_of("half-unet")
    for weights in ("imagenet", tmp_path / "x.pt"):
        with pytest.raises(TinysegError, match="half-unet has no pretrained encoder"):
            load_encoder_weights(build_model(seed), seed, weights)
    no_imagenet = spec_of("unet", "resnext101_32x4d")  # smp has only ssl/swsl weights for it
    with torch.device("meta"):
        model = build_model(no_imagenet)
    with pytest.raises(TinysegError, match="ssl, swsl"):
        load_encoder_weights(model, no_imagenet, "imagenet")


# --- inference preparation and import cost ------------------------------------------------


def test_to_inference_is_eval_channels_last_and_same_result():
    model = build_model(spec_of("half-unet", width=4))
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = model.eval()(image)
        model.train()
        fast = to_inference(model, "cpu")
        result = fast(image.contiguous(memory_format=torch.channels_last))
    assert not fast.training
    assert fast.head.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(result, expected)


def test_seed_networks_do_not_import_smp():
    code = (
        "import sys; from tinyseg_cli.models import build_model; "
        "build_model({'arch': 'half-unet', 'in_channels': 3, 'out_channels': 2}); "
        "print('segmentation_models_pytorch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr

"""``tinyseg infer``: full-region vs tiled inference, padding, ROI, resize-back, probabilities,
binary thresholds, one-vs-rest fusion, resume, the predictions table and the error paths."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tifffile
import torch
import torch.nn.functional as F
from conftest import write_map
from PIL import Image

from tinyseg_cli.commands.infer import run as engine
from tinyseg_cli.inference.heads import label_dtype
from tinyseg_cli.inference.padding import reflect_index
from tinyseg_cli.inference.predict import TileOptions, predict_labels, predict_logits
from tinyseg_cli.inference.resize import ResizedBack
from tinyseg_cli.inference.tiled import plan_grid
from tinyseg_cli.io.checkpoint import Checkpoint, save_checkpoint
from tinyseg_cli.io.images import read_image
from tinyseg_cli.io.predictions import read_record, write_prediction
from tinyseg_cli.io.tables import table_metadata
from tinyseg_cli.models import build_model

CLASSES = ["background", "crack", "pore"]
SPEC = {"arch": "half-unet", "in_channels": 3, "out_channels": 3, "width": 4}  # stride 4
TILED = ("--max-pixels", str(128 * 128), "--tile", "128", "--overlap", "64")


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An RGB uint8 image of blurred noise: structure at several scales."""
    noise = torch.from_numpy(rng.standard_normal((1, 3, height, width)).astype(np.float32))
    blurred = F.avg_pool2d(noise, 5, 1, 2)[0].permute(1, 2, 0).numpy()
    return np.clip(128 + 120 * blurred, 0, 255).astype(np.uint8)


def calibrated_net(spec: dict, seed: int = 0) -> torch.nn.Module:
    """A random network whose batch norms carry the statistics of a random image, so its
    labels vary over the image (default running statistics give one class everywhere)."""
    torch.manual_seed(seed)
    net = build_model(spec)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.randn(2, spec["in_channels"], 96, 96))
    return net.eval()


def config_of(spec: dict, classes: list[str], **extra: object) -> dict:
    config = {
        "model": spec,
        "classes": classes,
        "binary": None,
        "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3},
        "input": {"channels": 3, "resize": None, "patch": 64},
    }
    config.update(extra)
    return config


def constant_binary(path: Path, index: int, name: str, probability: float, threshold: float):
    """A binary checkpoint whose output is the same probability at every pixel: the last
    convolution's weights are 0 and its bias is logit(probability)."""
    spec = {**SPEC, "out_channels": 1}
    net = build_model(spec)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(math.log(probability / (1 - probability)))
    binary = {"index": index, "name": name, "threshold": threshold, "source_classes": CLASSES}
    config = config_of(spec, ["rest", name], binary=binary)
    save_checkpoint(path, Checkpoint(config, net.state_dict()))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class checkpoint, three images (one larger than --max-pixels of TILED) and a
    manifest with a val split (one row with a ROI) and masks."""
    root = tmp_path_factory.mktemp("infer")
    save_checkpoint(
        root / "model.pt", Checkpoint(config_of(SPEC, CLASSES), calibrated_net(SPEC).state_dict())
    )
    rng = np.random.default_rng(0)
    sizes = {"a": (300, 260), "b": (37, 45), "c": (64, 80)}
    rows = []
    for sample_id, (height, width) in sizes.items():
        write_map(root / "images" / f"{sample_id}.png", smooth_image(rng, height, width))
        mask = rng.choice(3, size=(height, width), p=[0.9, 0.07, 0.03]).astype(np.uint8)
        write_map(root / "masks" / f"{sample_id}.png", mask)
        roi = (10, 5, 40, 69) if sample_id == "c" else (None,) * 4
        rows.append(
            {
                "sample_id": sample_id,
                "image": f"images/{sample_id}.png",
                "mask": f"masks/{sample_id}.png",
                "split": "train" if sample_id == "b" else "val",
                **dict(zip(("y0", "x0", "y1", "x1"), roi, strict=True)),
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), root / "split.parquet")
    return root


def labels_in(folder: Path) -> dict[str, np.ndarray]:
    return {path.stem: tifffile.imread(path) for path in sorted(folder.glob("*.tif"))}


# --------------------------------------------------------------------------- library


def far_from_inner_edges(height: int, width: int, overlap: int, margin: int) -> np.ndarray:
    """Pixels at least ``margin`` away from every tile edge inside the image."""
    grid = plan_grid(height, width, 4, max_pixels=128 * 128, tile=128, overlap=overlap)
    far = []
    for axis in (grid.rows, grid.cols):
        edges = {e for s in axis.starts for e in (s, s + axis.tile)} - {0, axis.padded}
        keep = np.ones(axis.size, bool)
        for edge in edges:
            keep[max(0, edge - margin) : edge + margin] = False
        far.append(keep)
    return far[0][:, None] & far[1][None, :]


@pytest.mark.parametrize("blend", ["linear", "gaussian"])
def test_tiled_agrees_with_the_full_pass(blend):
    net = calibrated_net(SPEC)
    image = torch.from_numpy(np.moveaxis(smooth_image(np.random.default_rng(1), 300, 260), -1, 0))
    image = (image.float() / 255 - 0.5) / 0.25
    full = predict_logits(net, image, stride=4, max_pixels=10**9)
    assert len(np.unique(full.argmax(0))) == 3  # a real test: every class occurs
    for overlap in (32, 64):
        tiled = predict_logits(
            net, image, stride=4, max_pixels=128 * 128, tile=128, overlap=overlap, blend=blend
        )
        assert full.shape == tiled.shape == (3, 300, 260)
        same = full.argmax(0) == tiled.argmax(0)
        if overlap == 64:
            assert same.float().mean() >= 0.999
        # Beyond the receptive field (~27 px) of every tile's inner edges, each covering tile
        # sees what the full pass sees: the same labels, the same logits.
        far = far_from_inner_edges(300, 260, overlap, 32)
        assert far.sum() > 1000
        assert same[torch.from_numpy(far)].all()
        assert torch.allclose(full[:, far], tiled[:, far], atol=1e-4)


def test_grid_spreads_stride_aligned_tiles():
    grid = plan_grid(8192, 8192, 32, max_pixels=4096**2, tile=1024, overlap=64)
    starts, tile = grid.rows.starts, grid.rows.tile
    assert (len(starts), tile) == (9, 992)  # ceil((8192 - 64) / 960) = 9 tiles
    assert all(s % 32 == 0 for s in starts) and starts[0] == 0 and starts[-1] + tile == 8192
    assert all(b - a <= tile - 64 for a, b in itertools.pairwise(starts))
    single = plan_grid(300, 200, 32, max_pixels=300 * 200, tile=64, overlap=16)
    assert not single.tiled and (single.rows.tile, single.cols.tile) == (320, 224)
    with pytest.raises(Exception, match="smaller than the network's smallest input 32"):
        plan_grid(300, 200, 32, max_pixels=1, tile=16, overlap=0)
    with pytest.raises(Exception, match="must be smaller than --tile"):
        plan_grid(300, 200, 32, max_pixels=1, tile=64, overlap=40)


def test_padding_mirrors_and_crops_back():
    assert reflect_index(5, 8).tolist() == [0, 1, 2, 3, 4, 3, 2, 1]
    assert reflect_index(1, 4).tolist() == [0, 0, 0, 0]
    assert reflect_index(2, 5).tolist() == [0, 1, 0, 0, 0]  # the mirror runs out: clamp
    net = calibrated_net(SPEC)
    for height, width in ((37, 45), (5, 3), (129, 66)):
        assert predict_logits(net, torch.randn(3, height, width), stride=4).shape == (
            3,
            height,
            width,
        )


class FirstChannelSign(torch.nn.Module):
    """Logits (−x₀, x₀): label 1 where the normalised first channel is positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([-x[:, :1], x[:, :1]], dim=1)


def test_predict_labels_resizes_back_with_nearest():
    image = np.zeros((40, 60, 3), np.float32)
    image[:, :30] = 1.0  # bright left half: label 1 (above the mean 0.5), dark right: 0
    config = config_of({**SPEC, "out_channels": 2}, ["dark", "bright"])
    config["input"]["resize"] = [20, 30]
    labels = predict_labels(FirstChannelSign(), config, image)
    expected = np.zeros((40, 60), np.uint8)
    expected[:, :30] = 1
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)


def test_resized_probabilities_are_bilinear():
    probs = torch.rand(2, 7, 9)
    back = ResizedBack(probs, 20, 31)
    reference = F.interpolate(probs[None], size=(20, 31), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(back.bilinear(0, 20), reference, atol=1e-6)
    assert torch.allclose(back.bilinear(5, 12), reference[:, 5:12], atol=1e-6)


def test_predict_labels_restores_training_mode_and_label_types():
    net = calibrated_net(SPEC).train()
    image = np.random.default_rng(0).random((33, 47, 3), dtype=np.float32)
    labels = predict_labels(net, config_of(SPEC, CLASSES), image)
    assert net.training and labels.shape == (33, 47) and labels.dtype == np.uint8
    assert label_dtype(255) == np.uint8 and label_dtype(256) == np.uint16


def test_large_predictions_are_tiled_and_deflated(tmp_path):
    labels = np.random.default_rng(0).integers(0, 3, (2100, 2050), dtype=np.uint8)
    path = tmp_path / "big.tif"
    write_prediction(path, [lambda a, b: labels[a:b]], 2100, 2050, labels.dtype, {"k": 1})
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        assert page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert np.array_equal(tifffile.imread(path), labels) and read_record(path) == {"k": 1}


# --------------------------------------------------------------------------- command


def test_infer_tiled_and_full_outputs(cli, data, tmp_path):
    out = tmp_path / "out"
    result = cli("infer", "-c", data / "model.pt", data / "images", "-o", out, "--probs", *TILED)
    assert result.exit_code == 0, result.output
    labels = labels_in(out)
    assert {k: v.shape for k, v in labels.items()} == {
        "a": (300, 260),
        "b": (37, 45),
        "c": (64, 80),
    }
    assert all(v.dtype == np.uint8 and v.max() <= 2 for v in labels.values())
    probs = tifffile.imread(out / "probs" / "a.tif")
    assert probs.dtype == np.float16 and probs.shape == (3, 300, 260)
    assert np.allclose(probs.astype(np.float32).sum(axis=0), 1, atol=2e-3)
    assert (probs.argmax(axis=0) == labels["a"]).mean() >= 0.999
    full = tmp_path / "full"
    assert (
        cli("infer", "-c", data / "model.pt", data / "images" / "a.png", "-o", full).exit_code == 0
    )
    assert (tifffile.imread(full / "a.tif") == labels["a"]).mean() >= 0.999
    assert not (out / ".partial").exists()


def test_json_summary_on_stdout(cli, data, tmp_path):
    out = tmp_path / "out"
    args = ("infer", "-c", data / "model.pt", data / "images", "-o", out, *TILED, "--json")
    first = cli(*args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["images"] == 3 and summary["predicted"] == 3 and summary["kept"] == 0
    assert summary["tiled"] == 1  # only a.png (300×260) exceeds --max-pixels
    assert summary["classes"] == CLASSES
    assert summary["table"] == str(out / "predictions.parquet")
    again = json.loads(cli(*args, "-q").stdout)  # a finished run is kept, not redone
    assert (again["predicted"], again["kept"]) == (0, 3)


def test_resize_model_through_the_command(cli, data, tmp_path):
    net = calibrated_net(SPEC)
    config = config_of(SPEC, CLASSES)
    config["input"]["resize"] = [24, 32]
    save_checkpoint(tmp_path / "resized.pt", Checkpoint(config, net.state_dict()))
    out = tmp_path / "out"
    image = data / "images" / "a.png"
    result = cli("infer", "-c", tmp_path / "resized.pt", image, "-o", out, "--probs", *TILED)
    assert result.exit_code == 0, result.output
    labels = tifffile.imread(out / "a.tif")
    expected = predict_labels(net, config, read_image(image))  # the in-memory path
    assert labels.shape == (300, 260) and np.array_equal(labels, expected)
    probs = tifffile.imread(out / "probs" / "a.tif").astype(np.float32)
    assert probs.shape == (3, 300, 260) and np.allclose(probs.sum(axis=0), 1, atol=2e-3)
    row = pq.read_table(out / "predictions.parquet").to_pylist()[0]
    assert row["mode"] == "resized"


def test_manifest_split_roi_and_table(cli, data, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "infer", "-c", data / "model.pt", data / "split.parquet", "--split", "val", "-o", out
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out / "predictions.parquet")
    rows = {row["sample_id"]: row for row in table.to_pylist()}
    assert sorted(rows) == ["a", "c"]  # the val rows
    assert (rows["c"]["height"], rows["c"]["width"]) == (30, 64)  # ROI (10, 5, 40, 69)
    assert (rows["c"]["roi_y0"], rows["c"]["roi_x1"]) == (10, 69)
    assert rows["a"]["roi_y0"] is None and rows["a"]["mode"] == "full"
    for row in rows.values():
        assert (out / row["prediction"]).is_file() and (out / row["image"]).resolve().is_file()
        assert tifffile.imread(out / row["prediction"]).shape == (row["height"], row["width"])
    metadata = table_metadata(table)
    assert metadata["classes"] == CLASSES and "command" in metadata["provenance"]
    # The ROI prediction is that of the cropped image.
    crop = np.asarray(Image.open(data / "images" / "c.png"))[10:40, 5:69]
    write_map(tmp_path / "crop" / "c.png", crop)
    assert (
        cli("infer", "-c", data / "model.pt", tmp_path / "crop", "-o", tmp_path / "cc").exit_code
        == 0
    )
    assert np.array_equal(
        tifffile.imread(tmp_path / "cc" / "c.tif"), tifffile.imread(out / "c.tif")
    )


def test_outputs_score_through_a_pipe(cli, data, tmp_path):
    out = tmp_path / "out"
    paths = "\n".join(str(data / "images" / f"{s}.png") for s in "ab") + "\n"
    result = cli("infer", "-c", data / "model.pt", "-", "-o", out, input=paths)
    assert result.exit_code == 0, result.output
    scored = cli(
        "score",
        "--truth",
        data / "masks",
        "--pred",
        out / "predictions.parquet",
        "--missing",
        "skip",
        "--json",
    )
    assert scored.exit_code == 0, scored.output
    scored = cli(
        "score", "--truth", data / "split.parquet", "--pred", out, "--missing", "skip", "--json"
    )
    assert scored.exit_code == 0, scored.output


def test_binary_threshold(cli, data, tmp_path):
    model = constant_binary(tmp_path / "pore.pt", 2, "pore", 0.5, threshold=0.7)
    image = data / "images" / "b.png"
    for option, expected in (((), 0), (("--threshold", "0.5"), 1), (("--threshold", "0.6"), 0)):
        out = tmp_path / f"out{len(option)}{expected}"
        result = cli("infer", "-c", model, image, "-o", out, "--probs", *option)
        assert result.exit_code == 0, result.output
        labels = tifffile.imread(out / "b.tif")
        assert (labels == expected).all()  # p = 0.5 everywhere: >= threshold is the class
    probs = tifffile.imread(out / "probs" / "b.tif")
    assert probs.shape == (2, 37, 45) and np.allclose(probs, 0.5)


def test_fusion_of_two_binary_models(cli, data, tmp_path):
    image = data / "images" / "b.png"
    crack = constant_binary(tmp_path / "crack.pt", 1, "crack", 0.7, threshold=0.5)
    cases = ((0.9, 1), (0.75, 2))  # pore's threshold: 0.8 below it (crack wins), or above
    for pore_threshold, expected in cases:
        pore = constant_binary(
            tmp_path / f"pore{pore_threshold}.pt", 2, "pore", 0.8, pore_threshold
        )
        out = tmp_path / f"fused{expected}"
        result = cli("infer", "-c", crack, "-c", pore, image, "-o", out, "--probs")
        assert result.exit_code == 0, result.output
        assert (tifffile.imread(out / "b.tif") == expected).all()
    probs = tifffile.imread(out / "probs" / "b.tif").astype(np.float32)
    assert np.allclose(probs[:, 0, 0], [0.2, 0.7, 0.8], atol=1e-3)  # 1 - max, p_crack, p_pore
    assert table_metadata(pq.read_table(out / "predictions.parquet"))["classes"] == CLASSES
    # Neither above its threshold: background.
    low = constant_binary(tmp_path / "low.pt", 2, "pore", 0.3, 0.5)
    dim = constant_binary(tmp_path / "dim.pt", 1, "crack", 0.4, 0.5)
    assert cli("infer", "-c", dim, "-c", low, image, "-o", tmp_path / "bg").exit_code == 0
    assert (tifffile.imread(tmp_path / "bg" / "b.tif") == 0).all()
    # Errors: a multi-class model among them, or two models of one class.
    mixed = cli("infer", "-c", crack, "-c", data / "model.pt", image, "-o", tmp_path / "x")
    assert mixed.exit_code == 1 and "must all be binary" in mixed.output
    twice = cli("infer", "-c", crack, "-c", dim, image, "-o", tmp_path / "y")
    assert twice.exit_code == 1 and "class 1 is already predicted" in twice.output


def test_resume_skips_finished_images_and_refuses_foreign_files(cli, data, tmp_path):
    out = tmp_path / "out"
    args = ("infer", "-c", data / "model.pt", data / "images", "-o", out, *TILED)
    assert cli(*args).exit_code == 0
    before = {name: (out / name).stat().st_mtime_ns for name in ("a.tif", "c.tif")}
    expected = labels_in(out)
    # A cut-short file is not one of tinyseg's (its writes are atomic): not replaced silently.
    (out / "b.tif").write_bytes((out / "b.tif").read_bytes()[:200])
    refused = cli(*args)
    assert refused.exit_code == 1 and "b.tif: already exists" in refused.output
    assert "--force" in refused.output
    (out / "b.tif").unlink()
    (out / ".a.tif.x1y2.tmp").write_bytes(b"half")  # what a killed writer leaves
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert {name: (out / name).stat().st_mtime_ns for name in ("a.tif", "c.tif")} == before
    assert np.array_equal(tifffile.imread(out / "b.tif"), expected["b"])
    assert not list(out.glob(".*.tmp"))
    # Another model's outputs are not overwritten without --force.
    other = constant_binary(tmp_path / "other.pt", 1, "crack", 0.6, 0.5)
    clash = cli("infer", "-c", other, data / "images", "-o", out)
    assert clash.exit_code == 1 and "--force" in clash.output
    assert cli("infer", "-c", other, data / "images", "-o", out, "--force").exit_code == 0
    assert (tifffile.imread(out / "a.tif") == 1).all()


def test_interrupted_tiled_image_resumes_at_its_first_unfinished_band(data, tmp_path):
    ensemble = engine.load_ensemble([data / "model.pt"], torch.device("cpu"), None)
    refs = engine.gather_inputs([str(data / "images" / "a.png")], None, None)  # type: ignore[arg-type]
    options = engine.InferOptions(TileOptions(128 * 128, 128, 64), probs=True)
    calls = []

    def interrupt(sample_id: str) -> None:
        calls.append(sample_id)
        if len(calls) == 2:
            raise KeyboardInterrupt

    job = engine.prepare(ensemble, refs, tmp_path / "out", options)
    assert job.bands(job.targets[0]) == 4
    with pytest.raises(KeyboardInterrupt):
        engine.run(job, on_band=interrupt)
    staged = tmp_path / "out" / ".partial" / "a" / "labels.bin"
    assert staged.stat().st_size > 0 and not (tmp_path / "out" / "a.tif").exists()
    engine.run(engine.prepare(ensemble, refs, tmp_path / "out", options))
    fresh = engine.prepare(ensemble, refs, tmp_path / "fresh", options)
    engine.run(fresh)
    for name in ("a.tif", "probs/a.tif"):
        resumed = tifffile.imread(tmp_path / "out" / name)
        assert np.array_equal(resumed, tifffile.imread(tmp_path / "fresh" / name))
    assert not (tmp_path / "out" / ".partial").exists()


def test_shards_write_their_own_tables(cli, data, tmp_path):
    out = tmp_path / "out"
    for part in ("0/2", "1/2"):
        assert (
            cli(
                "infer", "-c", data / "model.pt", data / "images", "-o", out, "--shard", part
            ).exit_code
            == 0
        )
    ids = [
        pq.read_table(out / f"predictions-{k}-of-2.parquet")["sample_id"].to_pylist()
        for k in (0, 1)
    ]
    assert ids == [["a", "c"], ["b"]]


def test_errors(cli, data, tmp_path):
    def error_of(*args: str | Path) -> str:
        result = cli("infer", *args)
        assert result.exit_code == 1, result.output
        return " ".join(result.output.split())

    model, image = data / "model.pt", data / "images" / "b.png"
    out = tmp_path / "out"
    assert "no such checkpoint file" in error_of("-c", tmp_path / "none.pt", image, "-o", out)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    assert "not a readable checkpoint" in error_of("-c", tmp_path / "text.pt", image, "-o", out)
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    assert "not a tinyseg checkpoint" in error_of("-c", tmp_path / "plain.pt", image, "-o", out)
    write_map(tmp_path / "two.npy", np.zeros((8, 8, 2), np.uint8))
    two = error_of("-c", model, image, tmp_path / "two.npy", "-o", out)
    assert "two.npy: image has 2 channels, the network takes 3" in two
    assert "no such file or directory" in error_of("-c", model, tmp_path / "gone.png", "-o", out)
    missing = error_of("-c", model, data / "split.parquet", "--split", "test", "-o", out)
    assert "no rows with split == 'test'" in missing
    assert "--split val: no manifest" in error_of("-c", model, image, "--split", "val", "-o", out)
    assert not out.exists() or not list(out.rglob("*.tif"))  # nothing half done
    usage = cli("infer", "-c", model, image, "-o", out, "--tile", "64", "--overlap", "64")
    assert usage.exit_code == 2
    multi = error_of("-c", model, image, "-o", out, "--threshold", "0.3")
    assert "--threshold is for binary models" in multi

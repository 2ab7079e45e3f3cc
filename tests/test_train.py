"""``tinyseg train``: learning, checkpoints, resume, the log, and the error paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from badinput import assert_refused, snapshot
from conftest import run_torchrun, write_map

from tinyseg_cli.io.checkpoint import load_checkpoint

CLASSES = ["background", "scratch", "pit"]
# A small network that trains in seconds on CPU.
TINY = ("--arch", "half-unet", "--patch-size", "32", "--batch-size", "4")


def defect_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a dark scratch (class 1) and a darker pit (class 2), and its mask."""
    mask = np.zeros((size, size), np.uint8)
    row = int(rng.integers(2, size - 2))
    start = int(rng.integers(0, size // 2))
    mask[row, start : start + size // 3] = 1
    y, x = (int(v) for v in rng.integers(2, size - 3, 2))
    mask[y : y + 2, x : x + 2] = 2
    image = 170 + rng.normal(0, 4, (size, size))
    image[mask == 1] = 90
    image[mask == 2] = 20
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_split(
    root: Path, n_train: int = 6, n_val: int = 2, size: int = 48, seed: int = 0
) -> Path:
    """Images, masks and a split manifest (with its class map) under ``root``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_train + n_val):
        image, mask = defect_pair(rng, size)
        sid = f"s{i}"
        write_map(root / "images" / f"{sid}.png", image)
        write_map(root / "masks" / f"{sid}.png", mask)
        split = "train" if i < n_train else "val"
        rows.append(
            {
                "sample_id": sid,
                "image": f"images/{sid}.png",
                "mask": f"masks/{sid}.png",
                "split": split,
            }
        )
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {"tinyseg.classes": json.dumps(CLASSES)}
    )
    path = root / "split.parquet"
    pq.write_table(table, path)
    return path


@pytest.fixture
def split(tmp_path: Path) -> Path:
    return write_split(tmp_path)


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_train_writes_run_and_checkpoint_loads_weights_only(cli, split, tmp_path):
    run = tmp_path / "run"
    result = cli(
        "train",
        split,
        *TINY,
        "--iterations",
        "4",
        "--checkpoint-every",
        "2",
        "--workers",
        "0",
        "-o",
        run,
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in run.iterdir())
    assert names == ["best.pt", "last.pt", "log.parquet", "step-2.pt", "step-4.pt"]
    payload = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert payload["format"] == "tinyseg-checkpoint/1"
    assert payload["step"] == 4
    config = payload["config"]
    json.dumps(config)  # JSON-able
    assert config["classes"] == CLASSES
    assert config["model"]["out_channels"] == 3
    assert len(config["normalisation"]["mean"]) == 3
    log = pq.read_table(run / "log.parquet").to_pylist()
    steps = [row for row in log if row["kind"] == "step"]
    assert [row["step"] for row in steps] == [1, 2, 3, 4]
    val = [row for row in log if row["kind"] == "val"]
    assert {row["class_name"] for row in val if row["level"] == "class"} == set(CLASSES)
    pixels = [row["tp"] + row["fn"] for row in val if row["level"] == "class"]
    assert sum(pixels) == 2 * 48 * 48  # every val pixel is counted once as truth


def test_training_learns_the_rare_classes(cli, tmp_path):
    """Loss falls and val F2 rises well above what predicting background gives (0)."""
    split = write_split(tmp_path, n_train=8, n_val=2, size=48)
    run = tmp_path / "run"
    result = cli(
        "train",
        split,
        *TINY,
        "--batch-size",
        "8",
        "--epochs",
        "10",
        "--loss",
        "dice",
        "--lr",
        "0.01",
        "--workers",
        "0",
        "-o",
        run,
    )
    assert result.exit_code == 0, result.output
    log = pq.read_table(run / "log.parquet").to_pylist()
    losses = [row["loss"] for row in log if row["kind"] == "step"]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])
    val = [row for row in log if row["kind"] == "val"]
    scratch = [row["f2"] for row in val if row["class_name"] == "scratch"]
    assert scratch[0] < 0.5 < max(scratch)
    best = load_checkpoint(run / "best.pt")
    assert best.state["best"] == max(r["f2"] or 0 for r in val if r["level"] == "macro")


def test_resume_matches_an_uninterrupted_run(cli, split, tmp_path):
    common = (*TINY, "--augment", "flip,rot90,shift:0.1", "--workers", "0", "--seed", "3")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli("train", split, *common, "--iterations", "6", "-o", straight).exit_code == 0
    assert cli("train", split, *common, "--iterations", "3", "-o", resumed).exit_code == 0
    first = load_checkpoint(resumed / "last.pt")
    assert first.step == 3
    result = cli("train", split, "--resume", "--iterations", "6", "-o", resumed)
    assert result.exit_code == 0, result.output
    a, b = state_of(straight / "last.pt"), state_of(resumed / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [
        r["step"] for r in pq.read_table(resumed / "log.parquet").to_pylist() if r["kind"] == "step"
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_loader_workers_do_not_change_training(cli, split, tmp_path):
    """Several epochs with worker processes (kept alive across epochs) give the weights of a
    run that loads in the main process: patches and augmentations do not depend on them."""
    common = (*TINY, "--augment", "flip,rot90", "--epochs", "3", "--seed", "5")
    inline, workers = tmp_path / "inline", tmp_path / "workers"
    assert cli("train", split, *common, "--workers", "0", "-o", inline).exit_code == 0
    result = cli("train", split, *common, "--workers", "2", "-o", workers)
    assert result.exit_code == 0, result.output
    a, b = state_of(inline / "last.pt"), state_of(workers / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = pq.read_table(workers / "log.parquet").to_pylist()
    assert len([row for row in log if row["kind"] == "val" and row["level"] == "macro"]) == 3


def test_ctrl_c_leaves_a_resumable_checkpoint(split, tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "tinyseg_cli",
        "train",
        str(split),
        *TINY,
        "--iterations",
        "100000",
        "--checkpoint-every",
        "1",
        "--workers",
        "0",
        "-o",
        str(run),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.monotonic() + 120
    while not (run / "step-2.pt").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    checkpoint = load_checkpoint(run / "last.pt")
    assert 2 <= checkpoint.step < 100000
    assert not list(run.glob(".*.tmp"))  # nothing half-written


def test_binary_model_with_weights_table(cli, split, tmp_path):
    weights = tmp_path / "w.parquet"
    made = cli("classweights", split, "--scheme", "iscf", "--binary", "pit", "-o", weights)
    assert made.exit_code == 0, made.output
    run = tmp_path / "run"
    result = cli(
        "train",
        split,
        *TINY,
        "--binary",
        "pit",
        "--loss",
        "bce",
        "--iterations",
        "2",
        "--workers",
        "0",
        "-o",
        run,
    )
    assert result.exit_code == 0, result.output
    config = load_checkpoint(run / "last.pt").config
    assert config["classes"] == ["rest", "pit"]
    assert config["binary"]["index"] == 2
    assert config["model"]["out_channels"] == 1
    result = cli(
        "train",
        split,
        *TINY,
        "--binary",
        "pit",
        "--loss",
        "wce",
        "--class-weights",
        weights,
        "--iterations",
        "1",
        "--workers",
        "0",
        "-o",
        tmp_path / "run2",
    )
    assert result.exit_code == 0, result.output


def test_dry_run_prints_model_and_data(cli, split, tmp_path):
    result = cli("train", split, *TINY, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output and "FLOPs" in result.output
    assert "train samples" in result.output
    assert not (tmp_path / "run").exists()
    summary = json.loads(cli("train", split, *TINY, "--dry-run", "--json", "-q").stdout)
    assert summary["arch"] == "half-unet" and summary["input_size"] == [32, 32]
    assert summary["parameters"] > 0 and summary["flops"] > 0
    assert [c["name"] for c in summary["classes"]] == CLASSES
    assert sum(c["pixels"] for c in summary["classes"]) > 0


def test_dry_run_prints_the_published_sizes(cli, split):
    # The microplastic study's Half U-Net at its 512×512, one output (SPEC §7.2): the counts
    # tests/test_models.py pins against the study's Table 4 (1.7724 M, 204.0 B).
    args = ("train", split, "--arch", "half-unet", "--resize", "512", "512", "--binary", "pit")
    printed = cli(*args, "--dry-run")
    assert printed.exit_code == 0, printed.output
    assert "1,864,833" in printed.output and "203,071,422,464" in printed.output
    summary = json.loads(cli(*args, "--dry-run", "--json", "-q").stdout)
    assert summary["input_size"] == [512, 512]
    assert (summary["parameters"], summary["flops"]) == (1_864_833, 203_071_422_464)
    # what a results file shows of it: millions to 4 decimals, billions to 1 (Table 4's units)
    saved = split.parent / "half-unet.json"
    saved.write_text(printed_json := cli(*args, "--dry-run", "--json", "-q").stdout)
    assert json.loads(printed_json) == summary
    shown = cli("report", saved, "--label", "Half U-Net")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[2] == "| Half U-Net | 512×512 | 1.8648 | 203.1 |"


def test_json_summary_of_a_run(cli, split, tmp_path):
    run = tmp_path / "run"
    args = ("train", split, *TINY, "--epochs", "1", "--workers", "0", "-o", run, "--json")
    result = cli(*args, "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 1 and summary["steps"] > 0 and summary["run_dir"] == str(run)
    assert summary["checkpoints"]["last"] == str(run / "last.pt")
    assert summary["select"] == "f2"
    assert isinstance(summary["best"], float) and summary["best_step"] == summary["steps"]
    resumed = cli("train", split, "--resume", "--epochs", "2", "-o", run, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert "ignoring" not in resumed.output  # --json is not a training option
    again = json.loads(resumed.stdout)
    assert again["epochs"] == 2 and again["steps"] == 2 * summary["steps"]


def test_errors(cli, split, tmp_path):
    def error_of(*args: str | Path) -> str:
        result = cli("train", *args)
        assert result.exit_code == 1, result.output
        return result.output

    assert "no such file" in error_of(tmp_path / "absent.parquet", "-o", tmp_path / "r")
    table = pq.read_table(split)
    no_train = table.set_column(
        table.column_names.index("split"), "split", pa.array(["val"] * table.num_rows)
    )
    pq.write_table(no_train, tmp_path / "no_train.parquet")
    assert "split == 'train'" in error_of(tmp_path / "no_train.parquet", "-o", tmp_path / "r")
    (tmp_path / "masks" / "s1.png").rename(tmp_path / "masks" / "gone.png")
    assert "s1.png" in error_of(split, *TINY, "-o", tmp_path / "r")
    (tmp_path / "masks" / "gone.png").rename(tmp_path / "masks" / "s1.png")
    assert "smaller than the patch size" in error_of(
        split, "--patch-size", "64", "-o", tmp_path / "r"
    )
    weights = tmp_path / "w.parquet"
    assert (
        cli(
            "classweights", split, "--classes", "bg,a,b", "--scheme", "icf", "-o", weights
        ).exit_code
        == 0
    )
    message = error_of(split, *TINY, "--class-weights", weights, "-o", tmp_path / "r")
    assert "weights are for classes (bg, a, b)" in message
    run = tmp_path / "done"
    assert (
        cli("train", split, *TINY, "--iterations", "1", "--workers", "0", "-o", run).exit_code == 0
    )
    assert "--resume" in error_of(split, *TINY, "--iterations", "1", "-o", run)


def test_network_limits_refused_before_training(cli, split, tmp_path):
    # smp's PAN pools its stride-16 map three more times: 128 pixels a side at least; batch
    # norm after DeepLabV3+'s global pooling needs two images a batch. Both named up front.
    smp = ("--encoder", "resnet34", "--encoder-weights", "none", "-o", tmp_path / "r")
    before = snapshot(tmp_path)
    small = cli("train", split, "--arch", "pan", "--resize", "64", "64", *smp)
    assert_refused(small, 1, "--resize 64×64", "pan", "at least 128", root=tmp_path, before=before)
    one = cli("train", split, "--arch", "deeplabv3plus", "--resize", "32", "32", "-b", "1", *smp)
    assert_refused(one, 1, "--batch-size 1", "at least 2", root=tmp_path, before=before)
    dry = cli("train", split, "--arch", "pan", "--resize", "64", "64", "--dry-run", *smp[:4])
    assert_refused(dry, 1, "at least 128", root=tmp_path, before=before)


@pytest.mark.parametrize(
    ("loss", "binary"),
    [
        ("ce", False),
        ("wce", False),
        ("focal", False),
        ("bce", True),
        ("dice", False),
        ("tversky", False),
        ("focal-tversky", False),
    ],
)
def test_each_loss_overfits_a_tiny_network(loss, binary):
    """A small network trained with the loss on two fixed images: loss falls, F2 rises."""
    from tinyseg_cli.losses import build_loss
    from tinyseg_cli.metrics.counts import confusion_matrix, one_vs_rest
    from tinyseg_cli.metrics.functional import f2
    from tinyseg_cli.models import build_model

    rng = np.random.default_rng(0)
    pairs = [defect_pair(rng, 32) for _ in range(2)]
    images = torch.tensor(np.stack([p[0] for p in pairs]), dtype=torch.float32)[:, None]
    images = ((images - 160) / 40).repeat(1, 3, 1, 1)
    targets = torch.tensor(np.stack([p[1] for p in pairs]), dtype=torch.int64)
    if binary:
        targets = (targets > 0).to(torch.int64)
    n_out = 1 if binary else 3
    torch.manual_seed(0)
    model = build_model({"arch": "half-unet", "in_channels": 3, "out_channels": n_out, "width": 8})
    weights = [0.5, 1.0, 1.5] if not binary else [0.3, 0.7]
    criterion = build_loss(
        loss, n_classes=3, binary=binary, class_weights=weights, params={}, ignore_index=255
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.005)

    def defect_f2() -> float:
        """F2 of the foreground classes' summed counts (eval mode: running BN statistics)."""
        with torch.no_grad():
            logits = model.eval()(images)
        model.train()
        pred = (logits[:, 0] > 0).long() if binary else logits.argmax(1)
        matrix = confusion_matrix(targets.numpy(), pred.numpy(), 2 if binary else 3)
        tp, fp, fn, tn = (int(counts[1:].sum()) for counts in one_vs_rest(matrix))
        return float(f2(tp, fp, fn, tn))

    before = defect_f2()
    losses = []
    for _ in range(300):  # plain ce needs about 250 steps to stop ignoring the defects
        value = criterion(model(images), targets)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        losses.append(value.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert defect_f2() > max(before, 0.5)


def test_distributed_training_under_torchrun(split, tmp_path):
    run = tmp_path / "ddp"
    done = run_torchrun(
        "train", split, *TINY, "--iterations", "3", "--workers", "0", "--distributed",
        "--device", "cpu", "-o", run,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint.step == 3
    assert checkpoint.config["train"]["distributed"] is True


@pytest.mark.parametrize("option", [("--channels", "8,16"), ("--no-aspp",), ("--features", "x")])
def test_voxel_options_on_an_image_manifest_are_usage_errors(cli, split, tmp_path, option):
    result = cli("train", split, *option, "-o", tmp_path / "run")
    assert result.exit_code == 2
    flag = option[0].replace("--no-", "--")
    assert "for voxel tables only" in result.output and flag in result.output

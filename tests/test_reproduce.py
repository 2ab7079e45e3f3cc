"""The study Makefiles of examples/reproduce/ (issue 13): each smoke target runs end to end on a
small generated dataset (one iteration per training) and writes its results.md, so the
Makefiles cannot rot. The full QUICK runs are not tests; their results are in
docs/reproductions/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUDIES = REPO / "examples" / "reproduce"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generator of `make demo`, at a smaller size: 8 images of 128×128 in 4 groups (PAN
    and the smoke runs of loss-encoder-decoder.mk take 128-pixel patches)."""
    out = tmp_path_factory.mktemp("example")
    command = [sys.executable, str(REPO / "examples" / "generate.py"), "--out", str(out)]
    subprocess.run([*command, "--objects", "4", "--views", "2", "--size", "128"], check=True)
    return out / "manifest.parquet"


def run_make(makefile: str, tmp_path: Path, data: Path, *variables: str) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path / "out"
    tinyseg = Path(sys.executable).parent / "tinyseg"
    command = [
        "make", "-f", str(STUDIES / makefile), "smoke", f"OUT={out}", f"DATA={data}",
        f"TINYSEG={tinyseg}", "DEVICE=cpu", *variables,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "results.md"


def test_oii_guidance_smoke(tmp_path: Path, example: Path):
    results = run_make("oii-guidance.mk", tmp_path, example, "LOSSES=tversky").read_text()
    assert results.startswith("# Output-imbalance guidance")
    assert "## tversky: tune-oii bisection" in results and "## tversky: grid of 1" in results
    # the bisection's first step is the midpoint; the grid of 1 interval trains both ends
    assert "| 1 | 0.5 |" in results
    assert "| 1 | 0.1 |" in results and "| 2 | 0.9 |" in results
    assert results.count("training(s).") == 2


def test_reduced_unets_smoke(tmp_path: Path, example: Path):
    results = run_make(
        "reduced-unets.mk", tmp_path, example, "NETWORKS=quarter-multiresunet"
    ).read_text()
    assert results.startswith("# Reduced U-Nets under 2-fold grouped cross-validation")
    assert "| quarter-multiresunet | 2 |" in results  # mean ± std over the 2 folds
    assert "| fold0 | 1 |" in results and "| fold1 | 1 |" in results
    assert "rw_f1 crack" in results
    # the network's size from its dry run, at 64×64 in SMOKE (512×512 otherwise)
    assert "| quarter-multiresunet | 64×64 | 0.0495 | " in results


def test_loss_encoder_decoder_smoke(tmp_path: Path, example: Path):
    choices = ("LOSSES=wce dice", "ENCODERS=mobilenet_v2", "DECODERS=unet", "SEEDS=0 1")
    results = run_make("loss-encoder-decoder.mk", tmp_path, example, *choices).read_text()
    assert "## 1. Losses (unet, resnet34): chosen " in results
    chosen = results.split("## 1. Losses (unet, resnet34): chosen ", 1)[1].split("\n", 1)[0]
    assert chosen in ("wce", "dice")
    assert "## 2. Encoders: chosen mobilenet_v2" in results
    assert "## 3. Decoders: chosen unet" in results
    assert f"| {chosen}, mobilenet_v2, unet | 2 |" in results  # mean ± std over 2 seeds
    assert "| seed0 | 1 |" in results and "| seed1 | 1 |" in results


def test_resampling_ovr_smoke(tmp_path: Path, example: Path):
    choices = (
        "STRATEGIES=equal-samples oversample", "LOSSES=wce", "SCHEMES=iscf", "SEEDS=0 1",
        "RARE=pore", "FOREGROUND=crack pore",
    )  # fmt: skip
    results = run_make("resampling-ovr.mk", tmp_path, example, *choices).read_text()
    for title in (
        "## 1. Resampling",
        "## 2. Loss and weights",
        "## 3. One binary model",
        "## 4a. Stability over late checkpoints",
        "## 4b. Stability over trainings",
    ):
        assert title in results
    assert "| oversample | 1 |" in results and "| wce-iscf | 1 |" in results
    assert "| one-vs-rest (crack pore) | 1 |" in results
    assert "| step-1 | 1 |" in results and "| step-2 | 1 |" in results  # SMOKE: 2 late ones
    assert "| PSoMT: seeds 0 1 | 2 |" in results
    # make keeps what its pattern rules made on the way (.PRECIOUS), for a later run
    out = tmp_path / "out"
    assert (out / "patches-oversample.parquet").is_file()
    assert (out / "weights-iscf.parquet").is_file()


def test_sparse_aspp_smoke(tmp_path: Path):
    from test_voxelize import random_las

    scan = random_las(tmp_path / "scan.las", n=4000, seed=0, size=40.0)
    results = run_make("sparse-aspp.mk", tmp_path, scan, "SEEDS=0 1").read_text()
    assert "| table | runs | oa | miou | iou ground | iou vegetation | iou building |" in results
    for label in ("U-Net, wCE", "+ ASPP, wCE", "+ ASPP, weighted Dice"):
        assert f"| {label} | 2 |" in results  # mean ± std over the 2 seeds
        assert f"| {label}: seed0 | 1 |" in results and f"| {label}: seed1 | 1 |" in results


def test_resampling_ovr_smoke_on_a_class_per_folder_set(tmp_path: Path):
    """magnetic_tile's layout (MT_<class>/Imgs/<stem>.jpg beside a soft <stem>.png, MT_Free
    without defects): split by folder classes, one-vs-rest models of every defect class
    fused, and the multi-class model trained alike."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    data = tmp_path / "mt"
    for folder, count in (("MT_Dent", 4), ("MT_Hole", 4), ("MT_Free", 4)):
        for k in range(count):
            stem = tmp_path / "mt" / folder / "Imgs" / f"{folder[3:].lower()}{k}"
            stem.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(60, 200, (64, 64), np.uint8)).save(f"{stem}.jpg")
            mask = np.zeros((64, 64), np.uint8)
            if folder != "MT_Free":
                y, x = rng.integers(4, 56, 2)
                mask[y : y + 6, x : x + 6] = 255
                mask[y - 1, x : x + 6] = 90  # a soft edge, binarised at 128
            Image.fromarray(mask).save(f"{stem}.png")
    choices = (
        "STRATEGIES=equal-samples", "LOSSES=wce", "SCHEMES=iscf", "SEEDS=0", "RARE=Hole",
        "FOREGROUND=Dent Hole",
    )  # fmt: skip
    results = run_make("resampling-ovr.mk", tmp_path, data, *choices).read_text()
    assert "by image 70/15/15, stratified by class presence" in results
    assert "| one-vs-rest (Dent Hole) | 1 |" in results
    assert "| one multi-class model | 1 |" in results
    assert "recall Dent" in results and "recall Hole" in results


def test_crack_conventions_smoke(tmp_path: Path, example: Path):
    """One binary model scored exactly at its threshold and swept over thresholds exactly,
    within 2 px and within 0.0075 × diagonal, matched and relaxed, truth thinned or not."""
    results = run_make("crack-conventions.mk", tmp_path, example).read_text()
    assert "## Exact pixels at the model's threshold" in results
    assert "| threshold 0.5, exact pixels | 1 |" in results
    for label in (
        "exact", "2px-matched-pred", "0.0075diag-matched-pred", "2px-relaxed-pred",
        "0.0075diag-relaxed-pred", "0.0075diag-matched-both",
    ):  # fmt: skip
        assert f"| {label} | 1 |" in results
    assert "| mean of per-image F, exact pixels | 1 |" in results
    assert (tmp_path / "out" / "pr.png").is_file()

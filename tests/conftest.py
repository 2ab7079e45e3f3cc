"""Shared fixtures: small generated masks on disk, a CLI runner, and the shared datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from tinyseg_cli.cli.main import app

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_map(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as PNG, TIFF or NPY according to the suffix of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(array).save(path)
    elif path.suffix in (".tif", ".tiff"):
        rgb = array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype == np.uint8
        tifffile.imwrite(path, array, photometric="rgb" if rgb else "minisblack")
    else:
        np.save(path, array)
    return path


def shared_dataset(name: str) -> Path:
    """A dataset of ``../shared/data``, or skip the test when the folder is not there."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent: shared datasets come beside the clone in CI only")
    return path


class Cli:
    """Runs ``tinyseg`` in-process and returns the click result."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | Path, input: bytes | str | None = None):
        from tinyseg_cli.cli import console

        console.STATE.verbose = console.STATE.quiet = False
        return self.runner.invoke(app, [str(a) for a in args], input=input, env={"COLUMNS": "200"})


@pytest.fixture
def cli() -> Cli:
    return Cli()


def run_tinyseg(*args: str | Path, input: bytes | None = None, cwd: Path | None = None):
    """Run ``python -m tinyseg_cli`` in a subprocess (for pipes and exit codes)."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "tinyseg_cli", *map(str, args)],
        input=input,
        capture_output=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def run_torchrun(*args: str | Path, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node N -m tinyseg_cli ARGS`` on CPU with gloo (DDP tests)."""
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--nproc_per_node", str(processes), "-m", "tinyseg_cli"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, check=False, timeout=300
    )


@pytest.fixture
def pair_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders of matching 3-class masks: truth/ and pred/ (PNG, TIFF and NPY mixed)."""
    rng = np.random.default_rng(7)
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    for i, suffix in enumerate([".png", ".tif", ".npy", ".png"]):
        truth = rng.choice(3, size=(40, 50), p=[0.9, 0.07, 0.03]).astype(np.uint8)
        pred = truth.copy()
        flip = rng.random(truth.shape) < 0.05
        pred[flip] = rng.integers(0, 3, int(flip.sum()))
        write_map(truth_dir / f"s{i}{suffix}", truth)
        write_map(pred_dir / f"s{i}{suffix}", pred)
    return truth_dir, pred_dir


def load_maps(folder: Path) -> dict[str, np.ndarray]:
    """Read back every map of a folder written by :func:`write_map`, by stem."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".png":
            out[path.stem] = np.asarray(Image.open(path))
        elif path.suffix == ".tif":
            out[path.stem] = tifffile.imread(path)
        elif path.suffix == ".npy":
            out[path.stem] = np.load(path)
    return out


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value))
    return path

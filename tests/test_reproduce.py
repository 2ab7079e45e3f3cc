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
    """The generator of `make demo`, at a smaller size: 8 images of 64×64 in 4 groups."""
    out = tmp_path_factory.mktemp("example")
    command = [sys.executable, str(REPO / "examples" / "generate.py"), "--out", str(out)]
    subprocess.run([*command, "--objects", "4", "--views", "2", "--size", "64"], check=True)
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

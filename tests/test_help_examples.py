"""The examples at the end of each ``--help`` really run (on small generated data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_map
from typer.testing import CliRunner

from tinyseg_cli.cli.main import app

# Folder names the examples use; each gets the same small binary masks.
EXAMPLE_FOLDERS = ("masks", "pred", "t", "p", "run_a/pred", "run_b/pred", "images")


def write_checkpoint(path: Path) -> None:
    """``model.pt`` for the ``infer`` examples: a tiny random 2-class network."""
    from tinyseg_cli.io.checkpoint import Checkpoint, save_checkpoint
    from tinyseg_cli.models import build_model

    spec = {"arch": "half-unet", "in_channels": 3, "out_channels": 2, "width": 4}
    config = {
        "model": spec,
        "classes": ["background", "defect"],
        "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3},
        "input": {"channels": 3, "resize": None, "patch": 64},
    }
    save_checkpoint(path, Checkpoint(config, build_model(spec).state_dict()))


def write_split(root: Path) -> None:
    """``split.parquet`` for the ``train`` examples: images/a.png trains, images/b.png validates."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "sample_id": stem,
            "image": f"images/{stem}.png",
            "mask": f"masks/{stem}.png",
            "split": split,
        }
        for stem, split in (("a", "train"), ("b", "val"))
    ]
    metadata = {"tinyseg.classes": json.dumps(["background", "defect"])}
    pq.write_table(
        pa.Table.from_pylist(rows).replace_schema_metadata(metadata), root / "split.parquet"
    )


def example_lines(*command: str) -> list[str]:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    lines = result.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    return [line.strip() for line in lines[start + 1 :] if line.strip().startswith("tinyseg ")]


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("score",),
        ("classweights",),
        ("resample",),
        ("split",),
        ("infer",),
        ("train",),
        ("tune-oii",),
        ("overlay",),
        ("plot",),
        ("report",),
    ],
)
def test_help_examples_run(tmp_path: Path, command: tuple[str, ...]):
    rng = np.random.default_rng(1)
    for folder in EXAMPLE_FOLDERS:
        for stem in ("a", "b"):
            write_map(
                tmp_path / folder / f"{stem}.png", (rng.random((8, 8)) < 0.2).astype(np.uint8)
            )
    if command == ("infer",):
        write_checkpoint(tmp_path / "model.pt")
    if command == ("split",):  # an MVTec-like tree: test/<defect>/, truth/<defect>/*_mask
        for folder in ("crack", "hole", "good"):
            write_map(
                tmp_path / "test" / folder / "a.png", rng.integers(0, 255, (8, 8, 3), np.uint8)
            )
            if folder != "good":
                write_map(tmp_path / "truth" / folder / "a_mask.png", np.eye(8, dtype=np.uint8))
    if command in (("train",), ("tune-oii",), ("plot",), ("report",)):
        write_split(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    lines = example_lines(*command)
    assert 1 <= len(lines) <= 3
    for line in lines:
        if "| jq" in line and shutil.which("jq") is None:
            continue  # the example pipes into jq, which this machine lacks
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"

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
EXAMPLE_FOLDERS = ("masks", "pred", "t", "p", "run_a/pred", "run_b/pred")


def example_lines(*command: str) -> list[str]:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    lines = result.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    return [line.strip() for line in lines[start + 1 :] if line.strip().startswith("tinyseg ")]


@pytest.mark.parametrize("command", [(), ("score",), ("classweights",)])
def test_help_examples_run(tmp_path: Path, command: tuple[str, ...]):
    rng = np.random.default_rng(1)
    for folder in EXAMPLE_FOLDERS:
        for stem in ("a", "b"):
            write_map(
                tmp_path / folder / f"{stem}.png", (rng.random((8, 8)) < 0.2).astype(np.uint8)
            )
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

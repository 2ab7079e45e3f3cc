"""Bad-input corpus, outputs (issue 11, SPEC §2, §9): two outputs on one file or an output on
an input (exit 2), output locations that cannot be written, found before any work (exit 1),
and output folders never left behind by a command that fails before writing results.

Every case checks, with ``assert_refused``, the exit status, one line naming the option or
file, no traceback, and nothing added or changed under the test's folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from badinput import assert_refused, snapshot
from conftest import write_map
from test_infer import CLASSES, SPEC, config_of
from test_train import write_split
from test_voxelize import random_las
from test_voxels_train_infer import hand_checkpoint, write_voxels

from tinyseg_cli.io.checkpoint import Checkpoint, save_checkpoint
from tinyseg_cli.models import build_model

TINY = ("--arch", "half-unet", "--patch-size", "16", "--batch-size", "2", "--iterations", "1")
TUNE = ("--loss", "tversky", "--param", "alpha", "--range", "0.1,0.9", "--target", "-0.1,0.1")
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A split manifest with its images and masks, a counts table, a plain file ``f`` (no
    folder can be made under it) and a 2D checkpoint."""
    write_split(tmp_path, n_train=2, n_val=1, size=16)
    (tmp_path / "f").write_text("a file, not a folder\n")
    net = build_model(SPEC)
    save_checkpoint(tmp_path / "model.pt", Checkpoint(config_of(SPEC, CLASSES), net.state_dict()))
    return tmp_path


@pytest.fixture
def refused(cli, tmp_path: Path) -> Callable[..., str]:
    """Run ``tinyseg ARGS`` and check it is refused with ``code`` and ``needles``, leaving
    ``tmp_path`` as it was."""

    def check(code: int, needles: tuple[str, ...], *args: str | Path) -> str:
        before = snapshot(tmp_path)
        result = cli(*args)
        return assert_refused(result, code, *needles, root=tmp_path, before=before)

    return check


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder without write permission. Root may write there anyway, and os.access says
    so: for root the check is made to see the folder as any other user does."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if ROOT:
        access = os.access

        def as_a_user(path: object, mode: int, **kwargs: object) -> bool:
            if mode & os.W_OK and Path(str(path)) == folder:
                return False
            return access(path, mode, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", as_a_user)
    yield folder
    folder.chmod(0o755)


def _masks(data: Path) -> tuple[str, ...]:
    return ("--truth", str(data / "masks"), "--pred", str(data / "masks"))


# -- cause 1: two outputs on one file, or an output on an input: usage errors (exit 2) --------


def test_score_two_outputs_on_one_file(refused, data, monkeypatch):
    monkeypatch.chdir(data)
    refused(
        2,
        ("-o s.parquet", "--counts-out ./s.parquet", "same file"),
        "score",
        *_masks(data),
        "-o",
        "s.parquet",
        "--counts-out",
        "./s.parquet",
    )


def test_score_two_outputs_on_one_file_through_a_link(refused, data):
    (data / "link").symlink_to(data)
    refused(
        2,
        ("--counts-out", "same file"),
        "score",
        *_masks(data),
        "-o",
        data / "s.parquet",
        "--counts-out",
        data / "link" / "s.parquet",
    )


def test_score_two_outputs_on_stdout(refused, data):
    refused(
        2, ("stdout", "-o", "--counts-out"), "score", *_masks(data), "-o", "-", "--counts-out", "-"
    )


def test_score_output_on_its_counts_table(cli, refused, data):
    counts = data / "c.parquet"
    assert cli("score", *_masks(data), "--counts-out", counts, "-q").exit_code == 0
    refused(
        2,
        ("-o", "TABLE", "never overwritten"),
        "score",
        "--counts",
        counts,
        "-o",
        counts,
        "--force",
    )


def test_classweights_output_on_its_input(refused, data):
    manifest = data / "split.parquet"
    refused(
        2,
        ("-o", "INPUT", "never overwritten"),
        "classweights",
        manifest,
        "--scheme",
        "icf",
        "-o",
        manifest,
        "--force",
    )


def test_resample_output_on_its_manifest(refused, data):
    manifest = data / "split.parquet"
    refused(
        2,
        ("MANIFEST", "never overwritten"),
        "resample",
        manifest,
        "--strategy",
        "random",
        "-n",
        "2",
        "--size",
        "4",
        "-o",
        manifest,
        "--force",
    )


def test_split_table_and_nnunet_export_on_one_file(refused, data):
    out = data / "x.parquet"  # a table's name: -o refuses a file not named .parquet
    refused(
        2,
        ("--export-nnunet", "same file"),
        "split",
        data / "split.parquet",
        "--ratios",
        "0.5,0.5",
        "--export-nnunet",
        out,
        "-o",
        out,
    )


def test_split_output_on_its_manifest(refused, data):
    manifest = data / "split.parquet"
    refused(
        2,
        ("MANIFEST", "never overwritten"),
        "split",
        manifest,
        "--ratios",
        "0.5,0.5",
        "-o",
        manifest,
        "--force",
    )


@pytest.mark.parametrize("force", [False, True])
def test_infer_prediction_on_its_input_image(refused, data, force):
    out = data / "out"
    image = write_map(out / "s0.tif", np.full((16, 16, 3), 100, np.uint8))
    refused(
        2,
        ("INPUT", str(image), "never overwritten"),
        "infer",
        "-c",
        data / "model.pt",
        image,
        "-o",
        out,
        *(("--force",) if force else ()),
    )


def test_infer_table_on_its_input_manifest(cli, refused, data):
    out = data / "out"
    made = cli("infer", "-c", data / "model.pt", data / "images" / "s0.png", "-o", out, "-q")
    assert made.exit_code == 0, made.output
    table = out / "predictions.parquet"  # its 'image' column makes it a manifest
    refused(
        2,
        ("INPUT", "never overwritten"),
        "infer",
        "-c",
        data / "model.pt",
        table,
        "-o",
        out,
        "--force",
    )


def test_infer_las_copy_on_its_source(cli, refused, data):
    scans = data / "scans"
    scans.mkdir()
    las = random_las(scans / "a.las", n=200)
    made = cli("voxelize", las, "--voxel", "2", "--tile", "40", "-o", data / "vox")
    assert made.exit_code == 0, made.output
    hand_checkpoint(data / "m3.pt", ["x", "y", "z"])
    refused(
        2,
        ("LAS", "never overwritten"),
        "infer",
        "-c",
        data / "m3.pt",
        data / "vox",
        "--las",
        "-o",
        scans,
        "--force",
    )


def test_train_run_file_that_is_an_input(refused, data):
    run = data / "run"
    run.mkdir()
    shutil.copy(data / "split.parquet", run / "log.parquet")  # --force would delete it
    refused(
        2,
        ("MANIFEST", "never overwritten"),
        "train",
        run / "log.parquet",
        *TINY,
        "-o",
        run,
        "--force",
    )


def test_tune_oii_record_that_is_an_input(refused, data):
    tune = data / "tune"
    tune.mkdir()
    shutil.copy(data / "split.parquet", tune / "steps.parquet")
    refused(
        2,
        ("MANIFEST", "never overwritten"),
        "tune-oii",
        tune / "steps.parquet",
        *TINY,
        *TUNE,
        "-o",
        tune,
    )


# -- cause 3: output locations that cannot be written, found before any work (exit 1) --------


def test_score_output_under_a_file(refused, data):
    refused(1, ("-o", "is not a folder"), "score", *_masks(data), "-o", data / "f" / "s.parquet")


def test_score_counts_output_under_a_file_deep(refused, data):
    target = data / "f" / "a" / "b" / "c.parquet"
    refused(1, ("--counts-out", "is not a folder"), "score", *_masks(data), "--counts-out", target)


def test_score_output_that_is_a_folder(refused, data):
    refused(1, ("--counts-out", "is a directory"), "score", *_masks(data), "--counts-out", data)


def test_score_output_name_too_long(refused, data):
    refused(1, ("-o", "too long"), "score", *_masks(data), "-o", data / ("x" * 250 + ".parquet"))


def test_score_counts_output_in_a_read_only_folder(refused, data, read_only):
    refused(
        1,
        ("--counts-out", "not writable"),
        "score",
        *_masks(data),
        "--counts-out",
        read_only / "new" / "c.parquet",
    )


def test_classweights_output_under_a_file(refused, data):
    refused(
        1,
        ("-o", "is not a folder"),
        "classweights",
        data / "split.parquet",
        "--scheme",
        "icf",
        "-o",
        data / "f" / "w.parquet",
    )


def test_resample_output_under_a_file(refused, data):
    refused(
        1,
        ("-o", "is not a folder"),
        "resample",
        data / "split.parquet",
        "--strategy",
        "random",
        "-n",
        "2",
        "--size",
        "4",
        "-o",
        data / "f" / "sub" / "p.parquet",
    )


def test_split_export_under_a_file(refused, data):
    refused(
        1,
        ("--export-nnunet", "is not a folder"),
        "split",
        data / "split.parquet",
        "--ratios",
        "0.5,0.5",
        "--export-nnunet",
        data / "f" / "splits.json",
    )


@pytest.mark.parametrize(("where", "message"), [("f", "is a file"), ("f/out", "is not a folder")])
def test_infer_output_folder_cannot_be_made(refused, data, where, message):
    refused(
        1,
        ("-o", message),
        "infer",
        "-c",
        data / "model.pt",
        data / "images" / "s0.png",
        "-o",
        data / where,
    )


def test_infer_sample_id_too_long_for_a_file_name(refused, data):
    image = write_map(data / "long" / ("x" * 250 + ".png"), np.zeros((16, 16, 3), np.uint8))
    refused(1, ("too long",), "infer", "-c", data / "model.pt", image, "-o", data / "a" / "out")


@pytest.mark.parametrize(("where", "message"), [("f", "is a file"), ("f/run", "is not a folder")])
def test_train_run_folder_cannot_be_made(refused, data, where, message):
    refused(1, ("-o", message), "train", data / "split.parquet", *TINY, "-o", data / where)


def test_train_run_folder_in_a_read_only_folder(refused, data, read_only):
    refused(
        1, ("-o", "not writable"), "train", data / "split.parquet", *TINY, "-o", read_only / "r"
    )


def test_tune_oii_folder_cannot_be_made(refused, data):
    refused(
        1,
        ("-o", "is not a folder"),
        "tune-oii",
        data / "split.parquet",
        *TINY,
        *TUNE,
        "-o",
        data / "f" / "t",
    )


@pytest.mark.parametrize(("where", "message"), [("f", "is a file"), ("f/v", "is not a folder")])
def test_voxelize_folder_cannot_be_made(refused, data, where, message):
    las = random_las(data / "scan.las", n=200)
    refused(1, ("-o", message), "voxelize", las, "--voxel", "1", "-o", data / where)


# -- cause 4: no output folder left by a command that fails before writing results -----------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--patch-size", "64"), "smaller than the patch size"),
        (("--fold", "0"), "fold"),
        (("--loss", "wce"), "weights"),
    ],
)
def test_train_early_failure_leaves_no_run_folder(refused, data, extra, message):
    refused(1, (message,), "train", data / "split.parquet", *TINY, *extra, "-o", data / "a" / "run")


def test_train_early_failure_keeps_the_earlier_run(refused, data):
    run = data / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"an earlier run")  # --force removes it only once set up
    refused(
        1,
        ("smaller than the patch size",),
        "train",
        data / "split.parquet",
        *TINY,
        "--patch-size",
        "64",
        "-o",
        run,
        "--force",
    )


def test_train_missing_sparse_backend_leaves_no_run_folder(refused, data):
    from tinyseg_cli.sparse.backends import installed

    if installed("torchsparse"):
        pytest.skip("torchsparse is installed: the missing library cannot be shown")
    table = write_voxels(data / "vox", n_train=2, n_val=1)
    refused(
        1,
        ("torchsparse",),
        "train",
        table,
        "--sparse-backend",
        "torchsparse",
        "--channels",
        "4,8",
        "--iterations",
        "1",
        "-o",
        data / "a" / "run",
    )


def test_infer_failure_on_the_first_image_leaves_no_folder(refused, data, monkeypatch):
    from tinyseg_cli.commands.infer import run as engine
    from tinyseg_cli.errors import TinysegError

    def fail(*_args: object) -> None:
        raise TinysegError("s0: the network failed")

    monkeypatch.setattr(engine, "_predict", fail)
    refused(
        1,
        ("network failed",),
        "infer",
        "-c",
        data / "model.pt",
        data / "images" / "s0.png",
        "-o",
        data / "a" / "out",
    )


def test_tune_oii_early_failure_leaves_no_folder(refused, data):
    refused(
        2,
        ("--oii-of",),
        "tune-oii",
        data / "split.parquet",
        *TINY,
        *TUNE,
        "--oii-of",
        "nosuch",
        "-o",
        data / "a" / "tune",
    )


def test_voxelize_failure_leaves_no_folder(refused, data):
    las = random_las(data / "scan.las", n=200)
    refused(
        1,
        ("--min-points",),
        "voxelize",
        las,
        "--voxel",
        "1",
        "--min-points",
        "100000",
        "-o",
        data / "a" / "b" / "vox",
    )

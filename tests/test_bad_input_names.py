"""Bad-input corpus of issue 11: outputs tinyseg did not write (cause 2), checks before work
(8), names that cannot be file names or table text (9), terminal escapes in input (10),
library text (11) and misleading messages (12). Every input is generated here and small;
each refusal is checked with :func:`badinput.assert_refused`: the exit status, one line
naming the file and the row or pixel, no traceback, nothing left that was not there, the
inputs unchanged."""

from __future__ import annotations

import io
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tifffile
import torch
from badinput import assert_refused, snapshot, stderr_of
from conftest import run_tinyseg, write_map

from tinyseg_cli.io.checkpoint import Checkpoint, save_checkpoint
from tinyseg_cli.models import build_model

CLASSES = ["background", "crack", "pore"]
SPEC = {"arch": "half-unet", "in_channels": 3, "out_channels": 3, "width": 4}
ESC = "\x1b]0;owned\x07\x1b[2J"  # set the terminal's title, then clear the screen
NOT_UTF8 = os.fsdecode(b"bad\xff")  # a file name that is not UTF-8, as Python holds it
NOT_UTF8_SHOWN = "bad\\xff"  # how tinyseg prints it


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 3-class checkpoint (random weights: no case looks at its predictions)."""
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.manual_seed(0)
    config = {
        "model": SPEC,
        "classes": CLASSES,
        "binary": None,
        "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3},
        "input": {"channels": 3, "resize": None, "patch": 16},
    }
    save_checkpoint(path, Checkpoint(config, build_model(SPEC).state_dict()))
    return path


def write_manifest(path: Path, rows: list[dict], classes: list[str] = CLASSES) -> Path:
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.replace_schema_metadata({"tinyseg.classes": json.dumps(classes)}), path)
    return path


def write_data(root: Path, ids: tuple[str, ...] = ("a", "b", "c")) -> Path:
    """images/ and masks/ (16×16 PNG) and manifest.parquet (the last id val, others train)."""
    rng = np.random.default_rng(0)
    rows = []
    for i, sid in enumerate(ids):
        write_map(root / "images" / f"{sid}.png", rng.integers(0, 256, (16, 16, 3), np.uint8))
        write_map(root / "masks" / f"{sid}.png", rng.integers(0, 3, (16, 16), np.uint8))
        split = "val" if i == len(ids) - 1 else "train"
        rows.append(
            {"sample_id": sid, "image": f"images/{sid}.png", "mask": f"masks/{sid}.png"}
            | {"split": split}
        )
    return write_manifest(root / "manifest.parquet", rows)


def refused(cli, root: Path, *args: str | Path, needles: tuple[str, ...], code: int = 1) -> str:
    """Run ``tinyseg ARGS`` in-process and check the refusal; its stderr."""
    before = snapshot(root)
    return assert_refused(cli(*args), code, *needles, root=root, before=before)


def assert_escaped(err: str) -> None:
    """No raw escape byte reached the terminal; its escaped form did."""
    assert "\x1b" not in err and "\x07" not in err, repr(err)
    assert "\\x1b" in err, err


def tiff_bytes(array: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


# ------------------------------------------------------- 2: files tinyseg did not write


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("a.tif", b"", "an empty file"),
        ("a.tif", b"II*\x00 not a tiff", "not a readable TIFF"),
        ("a.tif", tiff_bytes(np.zeros((16, 16), np.uint8))[:60], "not a readable TIFF"),
        ("a.tif", tiff_bytes(np.zeros((16, 16), np.uint8)), "without tinyseg's record"),
        ("probs/b.tif", b"", "an empty file"),
        ("predictions.parquet", b"PAR1 not parquet", "not a Parquet table"),
    ],
    ids=["empty", "junk", "cut", "no-record", "probs", "table"],
)
def test_infer_refuses_to_replace_files_it_did_not_write(
    cli, model, tmp_path, name, content, needle
):
    write_data(tmp_path)
    out = tmp_path / "out"
    (out / name).parent.mkdir(parents=True)
    (out / name).write_bytes(content)
    args = ("infer", "-c", model, tmp_path / "images", "-o", out, "--probs")
    err = refused(cli, tmp_path, *args, needles=(f"{name}: already exists", needle, "--force"))
    assert "predicting it again" not in err
    if name == "a.tif":  # --force replaces it
        assert cli(*args, "--force").exit_code == 0
        assert tifffile.imread(out / "a.tif").shape == (16, 16)


# ------------------------------------------------------------- 8: checks before work


HEADER_CASES = {  # name in images/ -> (how to make it from a good PNG's bytes, message)
    "cut-png": ("b.png", lambda p, png: p.write_bytes(png[:120]), "b.png: truncated PNG"),
    "junk-png": (
        "b.png",
        lambda p, png: p.write_bytes(b"\x89PNG\r\n\x1a\n junk"),
        "b.png: unreadable PNG",
    ),
    "cut-tiff": (
        "b.tif",
        lambda p, png: p.write_bytes(tiff_bytes(np.ones((64, 64), np.uint8))[:2000]),
        "b.tif: truncated TIFF",
    ),
    "complex-npy": (
        "b.npy",
        lambda p, png: np.save(p, np.ones((16, 16), np.complex64)),
        "b.npy: unsupported image dtype complex64",
    ),
    "folder": ("b.png", lambda p, png: p.mkdir(), None),  # named like an image: skipped
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_infer_checks_every_image_header_before_predicting_any(cli, model, tmp_path, case):
    name, make, needle = HEADER_CASES[case]
    write_data(tmp_path)
    png = (tmp_path / "images" / "b.png").read_bytes()
    (tmp_path / "images" / "b.png").unlink()
    make(tmp_path / "images" / name, png)
    args = ("infer", "-c", model, tmp_path / "images", "-o", tmp_path / "out")
    if needle is None:
        assert cli(*args).exit_code == 0
        return
    refused(cli, tmp_path, *args, needles=(needle,))


def test_infer_names_the_first_bad_pixel_and_keeps_the_images_before_it(cli, model, tmp_path):
    write_data(tmp_path)
    image = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    image[3, 7, 1] = np.nan
    image[9, 2, 0] = np.nan
    np.save(tmp_path / "images" / "z.npy", image)  # predicted last (sample-id order)
    out = tmp_path / "out"
    args = ("infer", "-c", model, tmp_path / "images", "-o", out)
    before = snapshot(tmp_path / "images")
    result = cli(*args)
    assert_refused(
        result, 1, "z.npy: pixel (y=3, x=7) is NaN", root=tmp_path / "images", before=before
    )
    # What needs a full decode stops at that image; the ones before it are kept (resume).
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    image[np.isnan(image)] = 0.5
    np.save(tmp_path / "images" / "z.npy", image)
    resumed = cli(*args, "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert (summary["kept"], summary["predicted"]) == (3, 1)


def test_infinite_pixel_is_named_in_file_coordinates_inside_a_roi(cli, model, tmp_path):
    image = np.zeros((16, 20, 3), np.float32)
    image[5, 9, 2] = np.inf
    tifffile.imwrite(tmp_path / "i.tif", image, photometric="rgb")
    rows = [{"sample_id": "i", "image": "i.tif", "y0": 2, "x0": 3, "y1": 12, "x1": 14}]
    manifest = write_manifest(tmp_path / "m.parquet", rows)
    args = ("infer", "-c", model, manifest, "-o", tmp_path / "out")
    refused(cli, tmp_path, *args, needles=("i.tif: pixel (y=5, x=9) is infinite",))


def test_train_names_the_bad_pixel_before_making_the_run(cli, tmp_path):
    manifest = write_data(tmp_path)
    image = np.full((16, 16, 3), 0.5, np.float32)
    image[4, 6, 0] = np.nan
    np.save(tmp_path / "images" / "nan.npy", image)
    table = pq.read_table(manifest)
    paths = table["image"].to_pylist()
    paths[0] = "images/nan.npy"
    pq.write_table(table.set_column(1, "image", pa.array(paths)), manifest)
    args = ("train", manifest, "-o", tmp_path / "run", "--epochs", "1", "--patch-size", "8")
    refused(cli, tmp_path, *args, needles=("nan.npy: pixel (y=4, x=6) is NaN",))


# -------------------------------------------------------------------------- 9: names


@pytest.mark.parametrize(
    ("sample_id", "needle"),
    [
        ("s" * 300, "is too long for a file name (300 bytes; the limit here is"),
        ("é" * 130, "is too long for a file name (260 bytes"),
        ("line\nbreak", "holds the control character '\\n'"),
        ("tab\there", "holds the control character '\\t'"),
        ("up/../../x", "holds '/'"),
        ("..", "starts with '.'"),
        ("", "empty sample_id"),
    ],
)
def test_infer_refuses_sample_ids_that_cannot_name_a_file(cli, model, tmp_path, sample_id, needle):
    write_data(tmp_path)
    rows = [
        {"sample_id": "a", "image": "images/a.png"},
        {"sample_id": sample_id, "image": "images/b.png"},
    ]
    manifest = write_manifest(tmp_path / "names.parquet", rows)
    args = ("infer", "-c", model, manifest, "-o", tmp_path / "out")
    refused(cli, tmp_path, *args, needles=("names.parquet: row 1: ", needle))


def test_infer_refuses_a_file_name_that_is_not_utf8(cli, model, tmp_path):
    write_data(tmp_path)
    (tmp_path / "images" / "b.png").rename(tmp_path / "images" / f"{NOT_UTF8}.png")
    args = ("infer", "-c", model, tmp_path / "images", "-o", tmp_path / "out")
    refused(cli, tmp_path, *args, needles=(f"{NOT_UTF8_SHOWN}.png", "not valid UTF-8"))


def test_infer_refuses_an_image_folder_name_the_table_cannot_store(cli, model, tmp_path):
    write_data(tmp_path)
    (tmp_path / "images").rename(tmp_path / NOT_UTF8)
    args = ("infer", "-c", model, tmp_path / NOT_UTF8, "-o", tmp_path / "out")
    refused(cli, tmp_path, *args, needles=(f"{NOT_UTF8_SHOWN}/a.png: the path is not valid",))


def test_infer_reads_stdin_paths_as_the_file_system_names_them(cli, model, tmp_path):
    write_data(tmp_path)
    os.rename(tmp_path / "images" / "b.png", os.fsencode(tmp_path / "images") + b"/bad\xff.png")
    listing = os.fsencode(tmp_path / "images" / "a.png") + b"\n"
    listing += os.fsencode(tmp_path / "images") + b"/bad\xff.png\n"
    before = snapshot(tmp_path)
    result = cli("infer", "-c", model, "-", "-o", tmp_path / "out", input=listing)
    needles = ("<stdin>: line 2: sample_id 'bad\\xff' is not valid UTF-8",)
    assert_refused(result, 1, *needles, root=tmp_path, before=before)


def test_score_prints_an_undecodable_name_escaped(tmp_path):
    """A subprocess: the real stderr bytes, through the real encoder."""
    write_data(tmp_path)
    (tmp_path / "masks" / "b.png").rename(tmp_path / "masks" / f"{NOT_UTF8}.png")
    before = snapshot(tmp_path)
    result = run_tinyseg("score", "--truth", tmp_path / "masks", "--pred", tmp_path / "masks")
    err = assert_refused(
        result, 1, f"{NOT_UTF8_SHOWN}.png", "not valid UTF-8", root=tmp_path, before=before
    )
    assert b"\xff" not in result.stderr and "UnicodeEncodeError" not in err


@pytest.mark.parametrize("command", ["split", "classweights"])
def test_folder_inputs_refuse_a_file_name_that_is_not_utf8(cli, tmp_path, command):
    write_data(tmp_path)
    (tmp_path / "masks" / "b.png").rename(tmp_path / "masks" / f"{NOT_UTF8}.png")
    (tmp_path / "images" / "b.png").rename(tmp_path / "images" / f"{NOT_UTF8}.png")
    if command == "split":
        args = ("split", "--from-dir", tmp_path / "images", "--masks", tmp_path / "masks")
        args += ("--ratios", "0.5,0.5", "-o", tmp_path / "split.parquet")
    else:
        args = ("classweights", tmp_path / "masks", "--scheme", "icf")
    refused(cli, tmp_path, *args, needles=(f"{NOT_UTF8_SHOWN}.png", "not valid UTF-8"))


def test_split_refuses_a_folder_name_that_is_not_utf8(cli, tmp_path):
    write_data(tmp_path)
    images = tmp_path / f"im{NOT_UTF8}"
    (tmp_path / "images").rename(images)
    args = ("split", "--from-dir", images, "--masks", tmp_path / "masks", "--ratios", "0.5,0.5")
    args += ("-o", tmp_path / "split.parquet")
    refused(cli, tmp_path, *args, needles=(f"im{NOT_UTF8_SHOWN}", "not valid UTF-8"))


def test_voxelize_refuses_a_scene_file_name_that_is_not_utf8(cli, tmp_path):
    (tmp_path / f"{NOT_UTF8}.las").write_bytes(b"LASF")
    args = ("voxelize", tmp_path / f"{NOT_UTF8}.las", "-o", tmp_path / "vox")
    refused(cli, tmp_path, *args, needles=(f"{NOT_UTF8_SHOWN}.las", "not valid UTF-8"))


# -------------------------------------------------------------- 10: terminal escapes


def test_infer_sample_id_with_escapes_is_refused_and_printed_escaped(cli, model, tmp_path):
    write_data(tmp_path)
    rows = [{"sample_id": f"x{ESC}", "image": "images/a.png"}]
    manifest = write_manifest(tmp_path / "esc.parquet", rows)
    args = ("infer", "-c", model, manifest, "-o", tmp_path / "out")
    err = refused(cli, tmp_path, *args, needles=("esc.parquet: row 0: ", "control character"))
    assert_escaped(err)


def test_score_file_names_with_escapes_in_errors_and_warnings(cli, tmp_path):
    write_data(tmp_path)
    write_map(tmp_path / "masks" / f"d{ESC}.png", np.zeros((16, 16), np.uint8))
    args = ("score", "--truth", tmp_path / "masks", "--pred", tmp_path / "images")
    err = refused(cli, tmp_path, *args, needles=("no prediction for 1 sample(s)",))
    assert_escaped(err)
    write_map(tmp_path / "pred" / "a.png", np.zeros((16, 16), np.uint8))
    args = ("score", "--truth", tmp_path / "masks", "--pred", tmp_path / "pred")
    skipped = cli(*args, "--missing", "skip")
    assert skipped.exit_code == 0, skipped.output
    assert "warning: skipped" in skipped.stderr
    assert_escaped(skipped.stderr)


def test_voxelize_file_name_with_escapes(cli, tmp_path):
    (tmp_path / f"s{ESC}.las").write_bytes(b"not a las file")
    args = ("voxelize", tmp_path / f"s{ESC}.las", "-o", tmp_path / "vox")
    assert_escaped(refused(cli, tmp_path, *args, needles=("not a readable LAS/LAZ file",)))


@pytest.mark.parametrize("command", ["score", "classweights", "resample", "split", "train"])
def test_class_names_with_escapes_and_markup_in_summary_tables(cli, tmp_path, command):
    manifest = write_data(tmp_path)
    classes = f"background,[/red]crack{ESC},[bold]pore"
    args = {
        "score": ("score", "--truth", tmp_path / "masks", "--pred", tmp_path / "masks"),
        "classweights": ("classweights", manifest, "--scheme", "icf"),
        "resample": ("resample", manifest, "--strategy", "random", "--size", "8"),
        "split": ("split", manifest, "--ratios", "0.5,0.5"),
        "train": ("train", manifest, "--dry-run", "--patch-size", "8", "--arch", "half-unet"),
    }[command]
    result = cli(*args, "--classes", classes)
    assert result.exit_code == 0, result.output
    assert_escaped(result.stderr)
    assert "[/red]crack\\x1b]0;owned\\x07\\x1b[2J" in result.stderr  # markup printed as is


def test_progress_descriptions_are_escaped(monkeypatch):
    from rich.console import Console

    from tinyseg_cli.cli import console

    buffer = io.StringIO()
    terminal = console._Console(file=buffer, force_terminal=True, width=120)
    assert isinstance(terminal, Console)
    monkeypatch.setattr(console, "stderr", terminal)
    monkeypatch.setattr(console.STATE, "quiet", False)
    with console.progress(f"scoring pred{ESC}", 2) as advance:
        advance("a")
    text = buffer.getvalue()
    assert "\x1b]0;owned" not in text and "\\x1b]0;owned" in text


# --------------------------------------------------------------- 11: library text


def test_tifffile_log_lines_stay_out_of_stderr_unless_verbose(cli, tmp_path):
    data = bytearray(tiff_bytes(np.zeros((16, 16), np.uint8)))
    data[4:8] = (16318464).to_bytes(4, "little")  # the first page is far past the end
    write_map(tmp_path / "truth" / "a.png", np.zeros((16, 16), np.uint8))
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "a.tif").write_bytes(bytes(data))
    before = snapshot(tmp_path)
    args = ("score", "--truth", tmp_path / "truth", "--pred", tmp_path / "pred")
    result = run_tinyseg(*args)  # a subprocess: Python's own last-resort log output
    err = assert_refused(result, 1, "a.tif: unreadable TIF file", root=tmp_path, before=before)
    assert "<tifffile" not in err and "invalid offset" not in err
    verbose = cli("-v", *args)
    assert verbose.exit_code == 1 and "warning: tifffile: " in verbose.stderr


@pytest.mark.parametrize("command", ["split", "resample", "classweights", "score", "train"])
def test_a_damaged_parquet_file_is_one_line_of_ours(cli, tmp_path, command):
    manifest = write_data(tmp_path)
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(manifest.read_bytes()[:300])  # the footer is gone
    args = {
        "split": ("split", damaged, "--ratios", "0.5,0.5"),
        "resample": ("resample", damaged, "--strategy", "random", "--size", "8"),
        "classweights": ("classweights", damaged, "--scheme", "icf"),
        "score": ("score", "--counts", damaged),
        "train": ("train", damaged, "-o", tmp_path / "run", "--epochs", "1"),
    }[command]
    err = refused(cli, tmp_path, *args, needles=("damaged.parquet: unreadable table",))
    assert "<Buffer>" not in err and "Either the file" not in err


def test_infer_manifest_that_is_not_parquet(cli, model, tmp_path):
    write_data(tmp_path)
    (tmp_path / "m.parquet").write_bytes(b"PAR1" + b"x" * 40 + b"PAR1")
    args = ("infer", "-c", model, tmp_path / "m.parquet", "-o", tmp_path / "out")
    err = refused(cli, tmp_path, *args, needles=("m.parquet: unreadable table",))
    assert "<Buffer>" not in err


def test_a_checkpoint_holding_python_objects_is_refused_in_one_line(cli, tmp_path):
    write_data(tmp_path)
    torch.save({"format": "tinyseg-checkpoint/1", "config": Fraction(1, 3)}, tmp_path / "x.pt")
    args = ("infer", "-c", tmp_path / "x.pt", tmp_path / "images", "-o", tmp_path / "out")
    needles = ("x.pt: not a readable checkpoint", "(fractions.Fraction)", "weights-only")
    err = refused(cli, tmp_path, *args, needles=needles)
    assert "PyTorch 2.6" not in err and "add_safe_globals" not in err
    # Encoder weights (train --encoder-weights PATH) are read the same way.
    from tinyseg_cli.errors import TinysegError
    from tinyseg_cli.models.build import _read_state_dict

    with pytest.raises(TinysegError, match=r"x\.pt: .*\(it holds a pickled Python object \(frac"):
        _read_state_dict(tmp_path / "x.pt")


# ------------------------------------------------------------ 12: misleading messages


def test_infer_on_an_empty_manifest_says_so(cli, model, tmp_path):
    columns = {"sample_id": pa.array([], pa.string()), "image": pa.array([], pa.string())}
    pq.write_table(pa.table(columns), tmp_path / "empty.parquet")
    args = ("infer", "-c", model, tmp_path / "empty.parquet", "-o", tmp_path / "out")
    err = refused(cli, tmp_path, *args, needles=("empty.parquet: the manifest holds no image",))
    assert "shard" not in err


@pytest.mark.parametrize("command", ["score", "classweights", "resample", "split", "train"])
def test_a_mask_that_is_a_folder_is_called_a_folder(cli, tmp_path, command):
    manifest = write_data(tmp_path)
    for name in ("a", "b", "c"):
        (tmp_path / "pred").mkdir(exist_ok=True)
        (tmp_path / "pred" / f"{name}.png").write_bytes((tmp_path / "masks" / "a.png").read_bytes())
    (tmp_path / "masks" / "b.png").unlink()
    (tmp_path / "masks" / "b.png").mkdir()
    args = {
        "score": ("score", "--truth", manifest, "--pred", tmp_path / "pred"),
        "classweights": ("classweights", manifest, "--scheme", "icf"),
        "resample": ("resample", manifest, "--strategy", "random", "--size", "8"),
        "split": ("split", manifest, "--ratios", "0.5,0.5"),
        "train": ("train", manifest, "-o", tmp_path / "run", "--epochs", "1"),
    }[command]
    err = refused(cli, tmp_path, *args, needles=("b.png: is a folder, expected a file",))
    assert "no such file" not in err


def test_infer_image_that_is_a_folder_is_called_a_folder(cli, model, tmp_path):
    write_data(tmp_path)
    rows = [{"sample_id": "a", "image": "images"}]
    manifest = write_manifest(tmp_path / "m.parquet", rows)
    args = ("infer", "-c", model, manifest, "-o", tmp_path / "out")
    refused(cli, tmp_path, *args, needles=("images: is a folder, expected a file",))


def test_hidden_files_in_input_folders_are_skipped(cli, model, tmp_path):
    write_data(tmp_path)
    for folder in ("images", "masks"):  # what macOS leaves on shared drives
        (tmp_path / folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (tmp_path / folder / ".b.png").write_bytes((tmp_path / folder / "b.png").read_bytes())
    out = tmp_path / "out"
    result = cli("infer", "-c", model, tmp_path / "images", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "a.tif",
        "b.tif",
        "c.tif",
        "predictions.parquet",
    ]
    scored = cli("score", "--truth", tmp_path / "masks", "--pred", tmp_path / "masks", "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["n_samples"] == 3
    assert stderr_of(scored).count("error") == 0

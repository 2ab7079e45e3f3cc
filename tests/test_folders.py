"""Defect sets laid out one folder per class (issue 20): ``split --from-dir
--class-from-folder``, soft masks and ``--mask-threshold``, background folders without
masks, and the one label reader every later command uses (classweights, resample, train,
score, overlay read the classes the manifest records; no mask is rewritten)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from tests.conftest import shared_dataset, write_map

H, W = 6, 8  # every image and mask of the hand-made sets


def jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W), 90, np.uint8)).save(path)
    return path


def soft(*pixels: tuple[int, int, int]) -> np.ndarray:
    """An H×W mask, 0 but for the given (y, x, value) pixels."""
    mask = np.zeros((H, W), np.uint8)
    for y, x, value in pixels:
        mask[y, x] = value
    return mask


def magnetic_tile_like(root: Path) -> Path:
    """MT_<class>/Imgs/<stem>.jpg beside <stem>.png, soft masks; MT_Free without defects.

    At threshold 128: a1 has 2 pixels of A (200, 130; not 127, 50), a2 has 3 of A, b1 has
    4 of B (not 100); f1's mask is ignored (a background folder); a3 has no mask.
    """
    imgs = root / "MT_A" / "Imgs"
    jpeg(imgs / "a1.jpg")
    write_map(imgs / "a1.png", soft((0, 0, 200), (0, 1, 130), (0, 2, 127), (1, 0, 50)))
    jpeg(imgs / "a2.jpg")
    write_map(imgs / "a2.png", soft((2, 2, 255), (2, 3, 255), (3, 3, 255)))
    jpeg(imgs / "a3.jpg")  # no mask: left out, with a warning
    imgs = root / "MT_B" / "Imgs"
    jpeg(imgs / "b1.jpg")
    write_map(
        imgs / "b1.png", soft((5, 0, 255), (5, 1, 255), (5, 2, 255), (5, 3, 255), (4, 4, 100))
    )
    imgs = root / "MT_Free" / "Imgs"
    jpeg(imgs / "f1.jpg")
    write_map(imgs / "f1.png", soft((1, 1, 255)))  # ignored: MT_Free has no defect
    return root


MT_SPLIT = ("--class-from-folder", "MT_([^/]+)", "--background-folder", "MT_Free")


def split_mt(cli, tmp_path: Path, *extra: str):
    root = magnetic_tile_like(tmp_path / "mt")
    out = tmp_path / "split.parquet"
    return cli("split", "--from-dir", root, *MT_SPLIT, "--ratios", "1,0", "-o", out, *extra), out


def test_class_folders_record_each_row_class_and_threshold(cli, tmp_path: Path):
    result, out = split_mt(cli, tmp_path, "--mask-threshold", "128", "--json")
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    rows = {row["sample_id"]: row for row in table.to_pylist()}
    assert sorted(rows) == ["a1", "a2", "b1", "f1"]
    assert {k: rows[k]["mask_class"] for k in rows} == {"a1": 1, "a2": 1, "b1": 2, "f1": 0}
    assert rows["f1"]["mask"] is None and rows["a1"]["mask"].endswith("a1.png")
    metadata = table.schema.metadata
    assert json.loads(metadata[b"tinyseg.classes"]) == ["background", "A", "B"]
    assert json.loads(metadata[b"tinyseg.masks"]) == {"threshold": 128}
    report = json.loads(result.stdout)
    pixels = {part["name"]: part["pixels"] for part in report["parts"]}["train"]
    # 4 images of 6×8 = 192 pixels: A 2 + 3, B 4, the rest background
    assert pixels == {"background": 192 - 9, "A": 5, "B": 4}
    assert "1 image(s) of class folders without a mask, left out: MT_A/Imgs/a3.jpg" in (
        result.stderr
    )


def test_a_soft_mask_without_a_threshold_is_refused_with_the_fix(cli, tmp_path: Path):
    result, out = split_mt(cli, tmp_path)
    assert result.exit_code == 1
    assert "a1.png: soft mask: values 200 and 130" in result.stderr
    assert "--mask-threshold 128" in result.stderr
    assert not out.exists()


def test_soft_masks_are_not_taken_for_a_255_class_problem(cli, tmp_path: Path):
    """Soft 0–255 masks without a class map used to split as classes '0'…'254' (exit 0)."""
    folder = tmp_path / "imgs"
    ramp = np.arange(H * W, dtype=np.uint8).reshape(H, W) * 5  # 0, 5, …, 235
    for stem in ("s1", "s2"):
        jpeg(folder / f"{stem}.jpg")
        write_map(folder / f"{stem}.png", ramp)
    result = cli(
        "split", "--from-dir", folder / "*.jpg", "--masks", folder / "*.png",
        "--ratios", "0.5,0.5", "-o", tmp_path / "s.parquet",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "masks hold 48 distinct labels up to 235" in result.stderr
    assert "--mask-threshold 128" in result.stderr
    binary = cli(
        "split", "--from-dir", folder / "*.jpg", "--masks", folder / "*.png",
        "--mask-threshold", "128", "--ratios", "0.5,0.5", "--json", "-q",
    )  # fmt: skip
    assert binary.exit_code == 0, binary.output
    report = json.loads(binary.stdout)
    assert report["classes"] == ["background", "foreground"]
    # values 128..235 (multiples of 5): 130, 135, …, 235 = 22 pixels per mask
    totals = {c: sum(p["pixels"][c] for p in report["parts"]) for c in report["classes"]}
    assert totals == {"background": 2 * (48 - 22), "foreground": 2 * 22}


def test_mvtec_layout_parallel_mask_tree_and_repeated_stems(cli, tmp_path: Path):
    """MVTec AD: test/<defect>/000.png with ground_truth/<defect>/000_mask.png; 'good' has
    no masks. The stem 000 repeats, so sample ids carry the folder."""
    test, truth = tmp_path / "test", tmp_path / "ground_truth"
    for defect, pixels in (("crack", 3), ("hole", 5)):
        write_map(test / defect / "000.png", np.full((H, W, 3), 60, np.uint8))
        mask = np.zeros((H, W), np.uint8)
        mask.flat[:pixels] = 255
        write_map(truth / defect / "000_mask.png", mask)
    write_map(test / "good" / "000.png", np.full((H, W, 3), 60, np.uint8))
    out = tmp_path / "split.parquet"
    result = cli(
        "split", "--from-dir", test, "--masks", truth, "--mask-suffix", "_mask",
        "--class-from-folder", "([^/]+)$", "--background-folder", "good",
        "--ratios", "1,0", "-o", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["sample_id"]: r["mask_class"] for r in pq.read_table(out).to_pylist()}
    assert rows == {"crack-000": 1, "good-000": 0, "hole-000": 2}
    report = json.loads(result.stdout)
    assert report["classes"] == ["background", "crack", "hole"]
    assert report["parts"][0]["pixels"] == {"background": 3 * 48 - 8, "crack": 3, "hole": 5}


def test_classes_given_must_name_every_folder_class(cli, tmp_path: Path):
    result, _ = split_mt(cli, tmp_path, "--mask-threshold", "128", "--classes", "bg,A")
    assert result.exit_code == 1
    assert "no class for folder class(es) 'B'" in result.stderr
    ordered, out = split_mt(
        cli, tmp_path, "--mask-threshold", "128", "--classes", "bg,B,A", "--force"
    )
    assert ordered.exit_code == 0, ordered.output
    rows = {r["sample_id"]: r["mask_class"] for r in pq.read_table(out).to_pylist()}
    assert rows == {"a1": 2, "a2": 2, "b1": 1, "f1": 0}


def test_later_commands_read_the_recorded_classes(cli, tmp_path: Path):
    """classweights, train (dry run) and score all see A = 5, B = 4 pixels, through the
    manifest's mask_class and threshold: the masks themselves hold 0–255."""
    result, split = split_mt(cli, tmp_path, "--mask-threshold", "128")
    assert result.exit_code == 0, result.output
    weights = cli("classweights", split, "--scheme", "uniform", "--json", "-q")
    assert weights.exit_code == 0, weights.output
    counted = {c["name"]: c["pixels"] for c in json.loads(weights.stdout)["classes"]}
    assert counted == {"background": 183, "A": 5, "B": 4}
    dry = cli(
        "train", split, "--arch", "half-unet", "--resize", "8", "8", "-b", "2",
        "--dry-run", "--json", "-q",
    )  # fmt: skip
    assert dry.exit_code == 0, dry.output
    trained = {c["name"]: c["pixels"] for c in json.loads(dry.stdout)["classes"]}
    assert trained == counted
    # predictions: a1 all background (misses its 2 A pixels), b1 exact, a2 and f1 all A
    pred = tmp_path / "pred"
    write_map(pred / "a1.png", np.zeros((H, W), np.uint8))
    write_map(pred / "b1.png", soft((5, 0, 2), (5, 1, 2), (5, 2, 2), (5, 3, 2)))
    write_map(pred / "a2.png", np.ones((H, W), np.uint8))
    write_map(pred / "f1.png", np.ones((H, W), np.uint8))
    scored = cli("score", "--truth", split, "--pred", pred, "--json", "-q")
    assert scored.exit_code == 0, scored.output
    classes = json.loads(scored.stdout)["classes"]
    assert {k: classes["A"][k] for k in ("tp", "fp", "fn")} == {"tp": 3, "fp": 48 - 3 + 48, "fn": 2}
    assert {k: classes["B"][k] for k in ("tp", "fp", "fn")} == {"tp": 4, "fp": 0, "fn": 0}


def test_magnetic_tile_as_six_classes_matches_its_source_counts(cli, tmp_path: Path):
    """SOURCE.md of the copied set, binarised at 128: 3,539,881 defect and 47,119,051
    background pixels; Blowhole 14,311."""
    root = shared_dataset("magnetic_tile")
    result = cli(
        "split", "--from-dir", root, *MT_SPLIT, "--mask-threshold", "128",
        "--ratios", "1,0", "--json", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"] == ["background", "Blowhole", "Break", "Crack", "Fray", "Uneven"]
    assert report["rows"] == 115 + 85 + 57 + 32 + 103 + 100
    pixels = report["parts"][0]["pixels"]
    assert pixels["background"] == 47_119_051
    assert sum(pixels.values()) - pixels["background"] == 3_539_881
    assert pixels["Blowhole"] == 14_311

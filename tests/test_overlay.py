"""``tinyseg overlay``: error layers, max-pooled shrinking, blending and crop geometry with
hand-computed values; the command's files, order and refusals through the CLI; the gallery
in a real headless browser (skipped when none is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from badinput import assert_refused, snapshot
from conftest import write_map
from PIL import Image

from tinyseg_cli.metrics.objects import ObjectOptions, match_objects
from tinyseg_cli.review.crops import crop_scale, crop_window, frame_box, worst_objects
from tinyseg_cli.review.gallery import href, ordered
from tinyseg_cli.review.render import (
    FN,
    FN_COLOUR,
    FP,
    FP_COLOUR,
    NONE,
    OUTLINE,
    TP,
    TP_COLOUR,
    blend,
    block_max,
    block_mean,
    error_layers,
    outline_mask,
    pool_factor,
    pool_labels,
)
from tinyseg_cli.review.sample import SampleSummary

BLUE = (0, 0, 255)  # the test images: a colour neither the page nor the error layers use


# -- pure steps ---------------------------------------------------------------------------------


def test_error_layers_per_pixel():
    truth = np.array([[0, 1, 1, 2, 255, 0]], np.uint8)
    pred = np.array([[0, 1, 0, 1, 1, 2]], np.uint8)
    layers = error_layers(truth, pred, ignore_index=255)
    # bg ok, TP, missed, class 2 predicted as 1 (a miss first), ignored, false alarm
    assert layers.tolist() == [[NONE, TP, FN, FN, NONE, FP]]


def test_block_max_keeps_one_missed_pixel_and_block_mean_averages():
    layers = np.full((1000, 1000), TP, np.uint8)
    layers[999, 0] = FN  # one missed pixel, in the last (partial) block row
    factor = pool_factor(1000, 1000, 256)
    assert factor == 4  # ceil(1000 / 256)
    pooled = block_max(layers, factor)
    assert pooled.shape == (250, 250)
    assert pooled[249, 0] == FN and (pooled == FN).sum() == 1
    image = np.array([[0, 2, 4], [6, 8, 10], [12, 14, 16]], np.uint8)[:, :, None]
    means = block_mean(image, 2)[:, :, 0]
    # blocks: {0,2,6,8} / {4,10} / {12,14} / {16}
    assert means.tolist() == [[4.0, 7.0], [13.0, 16.0]]


def test_pool_factor_is_the_smallest_whole_factor():
    assert pool_factor(100, 200, 200) == 1
    assert pool_factor(100, 201, 200) == 2
    assert pool_factor(8000, 6000, 2048) == 4


def test_blend_is_a_rounded_mix_and_outlines_are_opaque():
    base = np.full((1, 4, 3), 100, np.uint8)
    layers = np.array([[NONE, FN, TP, OUTLINE]], np.uint8)
    out = blend(base, layers, 0.5)
    assert out[0, 0].tolist() == [100, 100, 100]
    # FN (213, 94, 0): floor(0.5*100 + 0.5*213 + 0.5) = 157, 97.5 -> 97, 50.5 -> 50
    assert out[0, 1].tolist() == [157, 97, 50]
    # TP (0, 158, 115): 50.5 -> 50, 129.5 -> 129, 108
    assert out[0, 2].tolist() == [50, 129, 108]
    assert out[0, 3].tolist() == [204, 121, 167]


def test_colours_are_distinct():
    colours = {TP_COLOUR, FP_COLOUR, FN_COLOUR}
    assert len(colours) == 3


def test_outline_is_the_ring_outside_the_object():
    truth = np.zeros((5, 5), np.uint8)
    truth[2, 2] = 1
    ring = outline_mask(truth, [1])
    expected = np.zeros((5, 5), bool)
    expected[1:4, 1:4] = True
    expected[2, 2] = False
    assert (ring == expected).all()


def test_pool_labels_keeps_a_lone_foreground_pixel():
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0] = 255  # ignored
    labels[3, 3] = 2
    assert pool_labels(labels, 2, 255).tolist() == [[255, 0], [0, 2]]


def test_worst_objects_missed_first_then_false_each_largest_first():
    truth = np.zeros((20, 20), np.uint8)
    truth[0, 0] = 1  # 1 px, missed
    truth[5:7, 5:7] = 1  # 4 px, missed
    truth[15:18, 15:18] = 1  # 9 px, found
    pred = np.zeros_like(truth)
    pred[15:18, 15:18] = 1
    pred[10, 0:3] = 1  # 3 px, false
    matching = match_objects(truth, pred, ObjectOptions(), None)
    worst = worst_objects(matching, 10)
    assert [(w.kind, w.area, w.bbox) for w in worst] == [
        ("missed", 4, (5, 5, 7, 7)),
        ("missed", 1, (0, 0, 1, 1)),
        ("false", 3, (10, 0, 11, 3)),
    ]
    assert len(worst_objects(matching, 2)) == 2


def test_crop_geometry():
    # a 2×3 object at y 10-11, x 20-22 in a 100×50 image: context max(8, 2, 3) = 8
    window = crop_window((10, 20, 12, 23), (100, 50))
    assert window == (2, 12, 20, 31)
    assert crop_scale(window) == (256 // 19, 1)  # long side 19 -> enlarged 13×
    assert frame_box((10, 20, 12, 23), window, 13, 1) == (8 * 13, 8 * 13, 10 * 13, 11 * 13)
    # cut at the image's edge; a window longer than 256 px is pooled instead
    assert crop_window((0, 0, 1, 1), (100, 50)) == (0, 0, 9, 9)
    assert crop_scale((0, 0, 600, 100)) == (1, 3)


def summary(name: str, true_found_pred: tuple[int, int, int], tp_fp_fn: tuple[int, int, int]):
    pixels = np.array([[0, 0, 0], list(tp_fp_fn)])
    objects = np.array([[0, 0, 0], list(true_found_pred)])
    return SampleSummary(name, (10, 10), 1, pixels, objects)


def test_gallery_order_worst_first():
    rows = [
        summary("perfect", (2, 2, 2), (10, 0, 0)),
        summary("no-truth", (0, 0, 1), (0, 5, 0)),
        summary("half-bad-f2", (2, 1, 1), (1, 0, 9)),  # recall 0.5, F2 5/(5+36) = 0.122
        summary("half-good-f2", (2, 1, 1), (9, 0, 1)),  # recall 0.5, F2 45/49 = 0.918
        summary("none-found", (3, 0, 0), (0, 0, 7)),  # recall 0
    ]
    assert [s.sample_id for s in ordered(rows)] == [
        "none-found", "half-bad-f2", "half-good-f2", "perfect", "no-truth",
    ]  # fmt: skip
    assert rows[2].pixel_f2 == pytest.approx(5 / 41)


def test_href_percent_encodes_then_escapes():
    assert href('a #1?"<b>.png') == "a%20%231%3F%22%3Cb%3E.png"
    assert href("thumbs/x&y.png") == "thumbs/x%26y.png"


# -- the command ----------------------------------------------------------------------------


def make_samples(root: Path, n: int = 3, size: tuple[int, int] = (40, 60)) -> dict[str, Path]:
    """``n`` blue RGB images with a 3×3 true defect, a 1-px true defect and, in the
    predictions, the 3×3 found (sample k >= 1 also finds the 1-px one) and one 2×2 false
    alarm."""
    folders = {name: root / name for name in ("images", "truth", "pred")}
    height, width = size
    for k in range(n):
        image = np.zeros((height, width, 3), np.uint8)
        image[:] = BLUE
        truth = np.zeros((height, width), np.uint8)
        truth[5:8, 5:8] = 1
        truth[30, 50] = 1
        pred = np.zeros_like(truth)
        pred[5:8, 5:8] = 1
        pred[20:22, 20:22] = 1
        if k >= 1:
            pred[30, 50] = 1
        write_map(folders["images"] / f"s{k}.png", image)
        write_map(folders["truth"] / f"s{k}.png", truth)
        write_map(folders["pred"] / f"s{k}.png", pred)
    return folders


def overlay_args(folders: dict[str, Path], out: Path, *extra: str) -> list:
    return [
        "overlay", "--image", folders["images"], "--truth", folders["truth"],
        "--pred", folders["pred"], "-o", out, *extra,
    ]  # fmt: skip


def test_overlay_writes_every_picture_and_lists_worst_first(cli, tmp_path):
    folders = make_samples(tmp_path)
    out = tmp_path / "review"
    result = cli(*overlay_args(folders, out, "--crops", "2", "--panel", "--json", "--jobs", "1"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    order = [s["sample_id"] for s in report["samples"]]
    assert order == ["s0", "s1", "s2"]  # s0 missed the 1-px defect: recall 1/2
    first = report["samples"][0]
    assert (first["true_objects"], first["missed"], first["false"]) == (2, 1, 1)
    assert (first["tp"], first["fp"], first["fn"]) == (9, 4, 1)
    assert first["object_recall"] == 0.5
    assert first["pixel_f2"] == pytest.approx(45 / 53)  # 5·9 / (5·9 + 4·1 + 4)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    expected = ["index.html"]
    for k in range(3):
        expected += [f"s{k}.png", f"thumbs/s{k}.png", f"panels/s{k}.png"]
    expected += ["crops/s0_1.png", "crops/s0_2.png", "crops/s1_1.png", "crops/s2_1.png"]
    assert files == sorted(expected)
    # the overlay is the image size plus a legend strip below; errors blended at alpha 0.7
    picture = np.asarray(Image.open(out / "s0.png").convert("RGB"))
    assert picture.shape[1] >= 60 and picture.shape[0] > 40
    # FN (213, 94, 0) over blue at 0.7: floor(0.7·213 + 0.5) = 149, 66.3 -> 66, 0.3·255 -> 77
    blended_fn = [149, 66, 77]
    assert picture[30, 50].tolist() == blended_fn
    assert picture[0, 0].tolist() == list(BLUE)
    crop = np.asarray(Image.open(out / "crops/s0_1.png").convert("RGB"))
    assert (crop == blended_fn).all(axis=2).sum() >= 100  # the 1-px miss, enlarged
    page = (out / "index.html").read_text()
    assert page.count('<img src="thumbs/') == 3
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_large_image_keeps_a_single_missed_pixel_visible(cli, tmp_path):
    folders = {name: tmp_path / name for name in ("images", "truth", "pred")}
    write_map(folders["images"] / "big.png", np.full((1200, 900), 128, np.uint8))
    truth = np.zeros((1200, 900), np.uint8)
    truth[1001, 603] = 1
    write_map(folders["truth"] / "big.png", truth)
    write_map(folders["pred"] / "big.png", np.zeros_like(truth))
    out = tmp_path / "review"
    result = cli(*overlay_args(folders, out, "--max-size", "300", "--alpha", "1"))
    assert result.exit_code == 0, result.output
    picture = np.asarray(Image.open(out / "big.png").convert("RGB"))
    # factor ceil(1200 / 300) = 4: the view is 300×225 and the miss is at (250, 150)
    view = picture[:300, :225]
    is_fn = (view == FN_COLOUR).all(axis=2)
    assert np.argwhere(is_fn).tolist() == [[250, 150]]
    thumb = np.asarray(Image.open(out / "thumbs/big.png").convert("RGB"))
    assert thumb.shape[:2] == (150, 113)  # thumbnail 256: factor 2 on 300×225
    assert (thumb == FN_COLOUR).all(axis=2).sum() == 1


def test_split_of_a_manifest_and_probability_maps(cli, tmp_path):
    folders = make_samples(tmp_path, n=4)
    rows = {
        "sample_id": [f"s{k}" for k in range(4)],
        "image": [str(folders["images"] / f"s{k}.png") for k in range(4)],
        "mask": [str(folders["truth"] / f"s{k}.png") for k in range(4)],
        "split": ["train", "val", "val", "test"],
    }
    manifest = tmp_path / "split.parquet"
    pq.write_table(pa.table(rows), manifest)
    probabilities = tmp_path / "prob"  # as 'infer --split val' writes them
    for k in (1, 2):
        mask = np.asarray(Image.open(folders["pred"] / f"s{k}.png"))
        write_map(probabilities / f"s{k}.npy", np.where(mask > 0, 0.9, 0.2).astype(np.float32))
    out = tmp_path / "review"
    args = ["overlay", "--image", manifest, "--truth", manifest, "--split", "val"]
    result = cli(*args, "--pred", probabilities, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["sample_id"] for s in report["samples"]] == ["s1", "s2"]
    assert all(s["missed"] == 0 and s["false"] == 1 for s in report["samples"])


def test_names_are_escaped_in_the_page(cli, tmp_path):
    folders = make_samples(tmp_path, n=1)
    name = "a&b <i>#1"
    for folder in folders.values():
        (folder / "s0.png").rename(folder / f"{name}.png")
    out = tmp_path / "review"
    result = cli(*overlay_args(folders, out))
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "<i>" not in page and "a&amp;b &lt;i&gt;#1" in page
    assert 'src="thumbs/a%26b%20%3Ci%3E%231.png"' in page
    assert (out / "thumbs" / f"{name}.png").is_file()


def test_existing_outputs_need_force(cli, tmp_path):
    folders = make_samples(tmp_path, n=2)
    out = tmp_path / "review"
    assert cli(*overlay_args(folders, out)).exit_code == 0
    before = snapshot(tmp_path)
    result = cli(*overlay_args(folders, out))
    needles = ("index.html", "already exists", "--force")
    assert_refused(result, 1, *needles, root=tmp_path, before=before)
    assert cli(*overlay_args(folders, out, "--force")).exit_code == 0


def test_failure_part_way_leaves_nothing(cli, tmp_path):
    folders = make_samples(tmp_path, n=3)
    write_map(folders["images"] / "s2.png", np.zeros((10, 10), np.uint8))  # wrong size
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = cli(*overlay_args(folders, tmp_path / "review", "--jobs", "1"))
    assert_refused(result, 1, "s2", "shape mismatch", "10×10", root=tmp_path, before=before)


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["--match", "iou:2"], 2, "--match iou:2"),
        (["--connectivity", "6"], 2, "--connectivity"),
        (["--crops", "-1"], 2, "--crops"),
        (["--max-size", "3"], 2, "--max-size"),
        (["--alpha", "nan"], 2, "--alpha"),
    ],
)
def test_bad_options_are_usage_errors(cli, tmp_path, extra, code, needle):
    folders = make_samples(tmp_path, n=1)
    before = snapshot(tmp_path)
    result = cli(*overlay_args(folders, tmp_path / "review", *extra))
    assert_refused(result, code, needle, root=tmp_path, before=before)


def test_missing_image_stops_or_is_skipped(cli, tmp_path):
    folders = make_samples(tmp_path, n=2)
    (folders["images"] / "s1.png").unlink()
    before = snapshot(tmp_path)
    result = cli(*overlay_args(folders, tmp_path / "review"))
    assert_refused(result, 1, "no image for 1 sample(s): s1", root=tmp_path, before=before)
    result = cli(*overlay_args(folders, tmp_path / "review", "--missing", "skip", "--json"))
    assert result.exit_code == 0, result.output
    assert [s["sample_id"] for s in json.loads(result.stdout)["samples"]] == ["s0"]
    assert "skipped 1 sample(s) with no image: s1" in result.stderr


# -- the gallery in a real browser ------------------------------------------------------------


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium installed (Debian: apt-get install chromium)")


def test_gallery_in_headless_chromium(cli, tmp_path):
    chromium = browser()
    folders = make_samples(tmp_path, n=4)
    out = tmp_path / "review"
    assert cli(*overlay_args(folders, out, "--alpha", "1")).exit_code == 0
    url = (out / "index.html").resolve().as_uri()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    dom = subprocess.run(
        [*flags, profile, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr
    thumbs = [line for line in dom.stdout.split("<img")[1:] if 'src="thumbs/' in line]
    assert len(thumbs) == 4
    shot = tmp_path / "page.png"
    screenshot = [*flags, profile, "--window-size=1200,1600", f"--screenshot={shot}", url]
    done = subprocess.run(screenshot, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # text, table, pictures
    # the thumbnails themselves were drawn: the images' blue and the opaque miss colour
    assert (pixels == BLUE).all(axis=2).sum() >= 4 * 100
    assert (pixels == FN_COLOUR).all(axis=2).sum() > 0

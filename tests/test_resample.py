"""``tinyseg resample``: candidate patches against brute force, the sampling strategies'
compositions (SPEC §4.2), determinism, pipes and error paths."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_tinyseg, write_map

from tinyseg_cli.commands.resample.run import Options, draw_patches
from tinyseg_cli.commands.resample.survey import Settings, read_manifest, survey_samples
from tinyseg_cli.io.tables import resolve_table_path
from tinyseg_cli.prep.patches import (
    HANDFUL,
    PixelBalancer,
    Unbalanced,
    candidate_tops,
    centre_offset,
    draw_ranks,
    fixed_quotas,
    largest_remainder,
    least_excess,
    patch_pixels,
    patch_pixels_summed,
    pixel_spread,
    positions_of_ranks,
    summed_area,
    window_pixels,
)

# --- candidate patches --------------------------------------------------------------------


def brute_force_tops(present: np.ndarray, size: int) -> np.ndarray:
    height, width = present.shape
    out = np.zeros((max(0, height - size + 1), max(0, width - size + 1)), bool)
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            out[y, x] = present[y : y + size, x : x + size].any()
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8, 9, 16, 17])
def test_candidates_equal_brute_force(size: int):
    rng = np.random.default_rng(size)
    for _ in range(12):
        shape = tuple(int(v) for v in rng.integers(1, 30, 2))
        density = rng.choice([0.0, 0.005, 0.03, 0.3, 1.0])
        present = rng.random(shape) < density
        got = candidate_tops(present, size)
        assert got.shape == brute_force_tops(present, size).shape
        assert np.array_equal(got, brute_force_tops(present, size)), (shape, size, density)


def test_candidates_inside_a_roi_are_those_of_the_window():
    rng = np.random.default_rng(3)
    labels = (rng.random((40, 50)) < 0.01).astype(np.uint8)
    y0, x0, y1, x1 = 5, 7, 33, 41
    present = labels[y0:y1, x0:x1] == 1
    assert np.array_equal(candidate_tops(present, 6), brute_force_tops(present, 6))
    # a pixel outside the ROI next to its border never makes a candidate
    labels[:] = 0
    labels[y0 - 1, x0 + 3] = 1
    assert not candidate_tops(labels[y0:y1, x0:x1] == 1, 6).any()


def test_centre_convention_by_hand():
    present = np.zeros((12, 12), bool)
    present[5, 5] = True
    tops = candidate_tops(present, 4)  # corners y, x in 2..5 see the pixel
    assert np.argwhere(tops).min(axis=0).tolist() == [2, 2]
    assert np.argwhere(tops).max(axis=0).tolist() == [5, 5]
    assert tops.sum() == 16
    # even size: the centre is the lower-right of the four middle pixels, top-left + 2
    assert centre_offset(4) == 2 and centre_offset(5) == 2
    centres = np.argwhere(tops) + centre_offset(4)
    assert centres.min(axis=0).tolist() == [4, 4] and centres.max(axis=0).tolist() == [7, 7]


def test_mask_smaller_than_patch_has_no_candidate():
    assert candidate_tops(np.ones((3, 8), bool), 4).size == 0


def test_positions_of_ranks_follow_row_major_order():
    rng = np.random.default_rng(0)
    tops = rng.random((9, 11)) < 0.4
    for negate in (False, True):
        cells = np.argwhere(~tops if negate else tops)
        ranks = np.arange(len(cells))[::-1].copy()
        ys, xs = positions_of_ranks(tops, ranks, negate)
        assert np.array_equal(np.stack([ys, xs], 1), cells[ranks])


def brute_force_pixels(
    labels: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int, n_classes: int, ignore: int
) -> np.ndarray:
    out = np.zeros((len(ys), n_classes), np.int64)
    for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
        for c in range(n_classes):
            if c != ignore:
                out[i, c] = int((labels[y : y + size, x : x + size] == c).sum())
    return out


def test_summed_area_by_hand():
    present = np.array([[1, 0, 1], [0, 1, 1]], bool)
    assert summed_area(present).tolist() == [[0, 0, 0, 0], [0, 1, 1, 2], [0, 1, 2, 4]]
    assert summed_area(present).dtype == np.int32


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_window_counts_equal_brute_force(size: int):
    """Summed-area counts of every class in every valid patch, with and without ignored
    pixels (255, or -100 in a signed map), against sums over the windows."""
    rng = np.random.default_rng(size)
    for trial in range(6):
        shape = tuple(int(v) for v in rng.integers(size, 24, 2))
        n_classes = int(rng.integers(1, 5))
        labels = rng.choice(n_classes, shape, p=rng.dirichlet(np.ones(n_classes))).astype(np.uint8)
        if trial % 2:
            labels[rng.random(shape) < 0.1] = 255
        tops = np.argwhere(np.ones((shape[0] - size + 1, shape[1] - size + 1), bool))
        ys, xs = tops[:, 0], tops[:, 1]
        expected = brute_force_pixels(labels, ys, xs, size, n_classes, 255)
        assert np.array_equal(patch_pixels_summed(labels, ys, xs, size, n_classes, 255), expected)
        assert np.array_equal(patch_pixels(labels, ys, xs, size, n_classes, 255), expected)
        for few in (slice(0, 1), slice(None)):  # the bincount and the summed-area branch
            got = window_pixels(labels, ys[few], xs[few], size, n_classes, 255)
            assert np.array_equal(got, expected[few])
        signed = labels.astype(np.int16)
        signed[signed == 255] = -100
        got = patch_pixels_summed(signed, ys, xs, size, n_classes, -100)
        assert np.array_equal(got, expected)
        inside = brute_force_pixels(labels, ys, xs, size, n_classes, 0)  # ignore label 0
        assert np.array_equal(patch_pixels_summed(labels, ys, xs, size, n_classes, 0), inside)
        assert np.array_equal(patch_pixels(labels, ys, xs, size, n_classes, 0), inside)


def test_patch_pixels_leave_the_ignore_label_out():
    labels = np.array([[0, 1, 255], [2, 1, 0], [0, 0, 0]], np.uint8)
    for count in (patch_pixels, patch_pixels_summed):
        got = count(labels, np.array([0, 1]), np.array([1, 0]), 2, 3, 255)
        # (0,1): 1, 255, 1, 0 -> bg 1, c1 2; (1,0): 2, 1, 0, 0 -> bg 2, c1 1, c2 1
        assert got.tolist() == [[1, 2, 0], [2, 1, 1]]
        signed = labels.astype(np.int16)
        signed[signed == 255] = -100
        assert count(signed, np.array([0]), np.array([1]), 2, 3, -100).tolist() == [[1, 2, 0]]


# --- draws and compositions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [(10, [0.3, 0.2, 0.5], [3, 2, 5]), (10, [1, 1, 1], [4, 3, 3]), (7, [0.5, 0.5, 0], [4, 3, 0])],
)
def test_largest_remainder(total: int, weights: list[float], expected: list[int]):
    assert largest_remainder(total, weights).tolist() == expected


def test_draws_are_uniform_over_all_candidates():
    counts = np.array([0, 3, 1, 0])
    images, ranks = draw_ranks(counts, 8000, np.random.default_rng(0))
    assert set(images.tolist()) == {1, 2}
    assert (ranks < counts[images]).all() and (ranks >= 0).all()
    # every one of the 4 candidates has chance 1/4: image 1 holds 3 of them
    assert abs(np.mean(images == 1) - 0.75) < 0.02
    assert abs(np.mean(ranks[images == 1] == 2) - 1 / 3) < 0.03


@pytest.mark.parametrize(("n", "fraction", "positives"), [(10, 0.3, 3), (7, 0.5, 4), (5, 0.0, 0)])
def test_binary_quota_is_exact(n: int, fraction: float, positives: int):
    pos, neg = fixed_quotas("binary", n, [2], positive_fraction=fraction)
    assert (pos.count, pos.selector, pos.negate, pos.target) == (positives, 2, False, 2)
    assert (neg.count, neg.selector, neg.negate, neg.target) == (n - positives, 2, True, -1)


def test_oversample_quota_splits_n_and_draws_the_rest_at_random():
    quotas = fixed_quotas("oversample", 20, [3, 1], proportions=[0.25, 0.1])
    assert [(q.selector, q.count) for q in quotas] == [(3, 5), (1, 2), (-1, 13)]
    quotas = fixed_quotas("oversample", 9, [3, 1])  # equal shares, no remainder
    assert [(q.selector, q.count) for q in quotas] == [(3, 5), (1, 4), (-1, 0)]


def test_pixel_balancer_by_hand():
    """With a handful of 1 every candidate is taken in turn: uniform draws."""
    pools = {1: np.array([[0, 10, 0]] * 4), 2: np.array([[0, 0, 4]] * 4)}
    balancer = PixelBalancer([1, 2], 3, 0.2, min_patches=1, max_patches=10, handful=1)
    # totals (a, b): tie -> class 1: (10, 0); then 2: (10, 4); 2: (10, 8): (10-8)/10 = 0.2
    assert balancer.feed(pools) is None
    assert balancer.picks == {1: [0], 2: [0, 1]}
    assert balancer.drawn == {1: 1, 2: 2} and balancer.patches == 3
    assert balancer.spread == pytest.approx(0.2)


def test_pixel_balancer_asks_for_more_then_gives_up():
    pools = {1: np.array([[0, 5, 0]]), 2: np.array([[0, 10, 1]] * 3)}  # b comes with 10 a
    balancer = PixelBalancer([1, 2], 3, 0.1, min_patches=1, max_patches=10, handful=1)
    # (a, b) = (5, 0) -> class 2 three times: (35, 3), b still lowest, its pool is dry
    assert balancer.feed(pools) == 2
    assert balancer.totals.tolist() == [0, 35, 3] and balancer.picks == {1: [0], 2: [0, 1, 2]}
    pools = {1: np.zeros((0, 3), np.int64), 2: np.array([[0, 10, 1]] * 20)}  # the unused ones
    with pytest.raises(Unbalanced, match="10 patches drawn"):
        balancer.feed(pools)
    assert pixel_spread(np.array([0, 0])) == float("inf")


def test_least_excess_by_hand():
    targets = np.array([1, 2, 3])
    totals = np.array([500, 100, 90, 10])  # class 3 is due; the level is 100
    handful = np.array(
        [
            [0, 30, 0, 10],  # 100+30: 30 beyond the level, 3 per pixel gained
            [0, 0, 20, 10],  # 90+20: 10 beyond, 1 per pixel gained
            [0, 40, 0, 200],  # lifts the level to 210 itself: 140 stays below, 0
            [0, 0, 5, 10],  # 90+5 stays below 100: 0, but fewer pixels gained
            [9, 0, 0, 200],  # background is no target: 0, as many gained as row 2
        ]
    )
    assert least_excess(totals, targets, 3, handful) == 2  # 0, most gained, first
    assert least_excess(totals, targets, 3, handful[[0, 1]]) == 1
    assert least_excess(totals, targets, 3, handful[[0, 1, 3]]) == 2


def test_pixel_balancer_takes_the_best_of_each_handful():
    # class 2 candidates, handful 2: (a 8, b 1) then (a 0, b 1); picks take the second
    pools = {1: np.array([[0, 2, 0], [0, 9, 0]]), 2: np.array([[0, 8, 1], [0, 0, 1]] * 3)}
    balancer = PixelBalancer([1, 2], 3, 0.0, min_patches=1, max_patches=10, handful=2)
    # (a, b): class 1's best of (2, 9) -> equal excess 0, most gain: 9; then b: 1, 2, 3 ...
    assert balancer.feed(pools) == 2
    assert balancer.picks == {1: [1], 2: [1, 3, 5]} and balancer.totals.tolist() == [0, 9, 3]


NEAR = 8  # patch side of the near-common mask


def near_common_mask() -> np.ndarray:
    """16×24, classes bg, common (1), rare (2); patch 8. Columns 0-7 are common, column 8
    rare: every rare pixel touches the common block.

    A rare candidate has its left edge x in 1…8 (any of the 9 rows): 8 rare pixels and
    8·(8 − x) common ones, 28 on average, so uniform draws add 3.5 common pixels for each
    rare one and a patch drawn for common adds at least 8 more: the totals drift towards
    3.5 : 1, a spread near 71 %. The x = 8 windows hold no common pixel; 1 in 8 candidates,
    so a handful of 64 holds one with probability 1 − (7/8)⁶⁴ > 0.9998.
    """
    mask = np.zeros((16, 24), np.uint8)
    mask[:, :8] = 1
    mask[:, 8] = 2
    return mask


def near_common_manifest(root: Path) -> Path:
    write_map(root / "m.png", near_common_mask())
    (root / "manifest.csv").write_text("sample_id,image,mask\ns,m.png,m.png\n")
    return root / "manifest.csv"


def draw_near_common(root: Path, handful: int, seed: int = 0, draws: int = 1):
    manifest = read_manifest(str(near_common_manifest(root)))
    settings = Settings(NEAR, 3, 255)
    surveys = survey_samples(manifest.samples, settings)
    options = Options(
        "equal-pixels", 20, draws, seed=seed, targets=(1, 2), max_patches=400, handful=handful
    )
    return draw_patches(manifest.samples, surveys, options, settings)


def test_uniform_draws_cannot_balance_a_rare_class_next_to_a_common_one(tmp_path: Path):
    with pytest.raises(Unbalanced, match=r"400 patches drawn and the pixel totals still") as e:
        draw_near_common(tmp_path, handful=1)
    spread = float(str(e.value).split("differ by ")[1].split("%")[0]) / 100
    assert spread > 0.5  # the hand argument says about 0.71


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_composition_aware_draws_meet_the_tolerance(tmp_path: Path, seed: int):
    patches = draw_near_common(tmp_path, HANDFUL, seed, draws=2)
    assert patches.spreads is not None and max(patches.spreads) <= 0.10
    pixels = patch_pixels(near_common_mask(), patches.ys, patches.xs, NEAR, 3)
    assert np.array_equal(patches.pixels, pixels)
    for d in range(2):
        totals = patches.pixels[patches.draw == d].sum(axis=0)[1:]
        assert np.count_nonzero(patches.draw == d) >= 20
        assert pixel_spread(totals) <= 0.10
    again = draw_near_common(tmp_path, HANDFUL, seed, draws=2)
    for name in ("image", "ys", "xs", "target", "draw"):
        assert np.array_equal(getattr(again, name), getattr(patches, name))
    other = draw_near_common(tmp_path, HANDFUL, seed + 10, draws=2)
    assert not np.array_equal(other.xs, patches.xs) or not np.array_equal(other.ys, patches.ys)


def test_equal_pixels_near_a_common_class_through_the_command(cli, tmp_path: Path):
    manifest = near_common_manifest(tmp_path)
    args = (
        "resample", manifest, "--strategy", "equal-pixels", "--size", str(NEAR), "-n", "20",
        "--classes", "bg,common,rare", "-j", "1", "--json", "--force",
    )  # fmt: skip
    result = cli(*args, "-o", tmp_path / "p.parquet")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["spread"][0] <= 0.10
    common, rare = (row["pixels"] for row in summary["classes"][1:])
    assert (max(common, rare) - min(common, rare)) / max(common, rare) <= 0.10
    data = (tmp_path / "p.parquet").read_bytes()
    assert cli(*args, "-o", tmp_path / "p.parquet").exit_code == 0
    assert (tmp_path / "p.parquet").read_bytes() == data
    meta = json.loads(pq.read_table(tmp_path / "p.parquet").schema.metadata[b"tinyseg.resample"])
    assert meta["handful"] == HANDFUL


# --- the command --------------------------------------------------------------------------


def write_dataset(root: Path) -> Path:
    """Three training rows (one with an ROI) and a val row, classes bg, a, b, c.

    s0 (30×40): a = a 5×5 block at (2, 2); b = one pixel at (20, 30); one ignored pixel.
    s1 (30×40): a block at (10, 10); c = a 2×2 block at (25, 35).
    s2 (40×40), ROI (10, 10, 40, 40): b pixel at (15, 15); a pixel at (2, 2) outside the ROI.
    v (30×40, split val): every class, never sampled.
    """
    s0 = np.zeros((30, 40), np.uint8)
    s0[2:7, 2:7] = 1
    s0[20, 30] = 2
    s0[0, 39] = 255
    s1 = np.zeros((30, 40), np.uint8)
    s1[10:15, 10:15] = 1
    s1[25:27, 35:37] = 3
    s2 = np.zeros((40, 40), np.uint8)
    s2[15, 15] = 2
    s2[2, 2] = 1
    v = np.zeros((30, 40), np.uint8)
    v[:3, :3], v[5, 5], v[9, 9] = 1, 2, 3
    rows = []
    for name, mask in (("s0", s0), ("s1", s1), ("s2", s2), ("v", v)):
        write_map(root / "masks" / f"{name}.png", mask)
        write_map(root / "images" / f"{name}.png", np.full((*mask.shape, 3), 90, np.uint8))
        paths = {"image": f"images/{name}.png", "mask": f"masks/{name}.png"}
        rows.append({"sample_id": name, **paths})
    for row in rows:
        row.update(dict(zip(("y0", "x0", "y1", "x1"), [None] * 4, strict=True)))
        row["split"] = "val" if row["sample_id"] == "v" else "train"
    rows[2].update(y0=10, x0=10, y1=40, x1=40)
    pq.write_table(pa.Table.from_pylist(rows), root / "manifest.parquet")
    return root / "manifest.parquet"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data")


def resample(cli, manifest: Path, out: Path, *args: str, ok: bool = True):
    result = cli("resample", manifest, "--classes", "bg,a,b,c", "-j", "1", "-o", out, *args)
    if ok:
        assert result.exit_code == 0, result.output
        return pq.read_table(out)
    return result


def check_patches(table: pa.Table, out: Path) -> list[dict]:
    """Every patch lies inside its ROI and its px_ counts are those of its mask window."""
    from PIL import Image

    rows = table.to_pylist()
    for row in rows:
        mask = np.asarray(Image.open(resolve_table_path(row["mask"], out)))
        y0, x0 = (10, 10) if row["sample_id"] == "s2" else (0, 0)
        assert row["y"] >= y0 and row["x"] >= x0
        assert row["y"] + row["h"] <= mask.shape[0] and row["x"] + row["w"] <= mask.shape[1]
        window = mask[row["y"] : row["y"] + row["h"], row["x"] : row["x"] + row["w"]]
        counts = np.bincount(window.ravel(), minlength=256)
        assert [row[f"px_{n}"] for n in ("bg", "a", "b", "c")] == counts[:4].tolist()
        assert resolve_table_path(row["image"], out).is_file()
    assert {row["sample_id"] for row in rows} <= {"s0", "s1", "s2"}  # never the val row
    return rows


def test_equal_samples_gives_n_per_class(cli, dataset: Path, tmp_path: Path):
    out = tmp_path / "out" / "patches.parquet"
    table = resample(cli, dataset, out, "--strategy", "equal-samples", "-n", "6", "--size", "8")
    rows = check_patches(table, out)
    assert table.column_names[:9] == [
        "sample_id", "image", "mask", "y", "x", "h", "w", "draw", "target_class"
    ]  # fmt: skip
    assert len(rows) == 24
    for c, name in enumerate(("bg", "a", "b", "c")):
        drawn = [row for row in rows if row["target_class"] == c]
        assert len(drawn) == 6 and all(row[f"px_{name}"] >= 1 for row in drawn)
    meta = json.loads(table.schema.metadata[b"tinyseg.resample"])
    assert meta["strategy"] == "equal-samples" and meta["seed"] == 0
    assert json.loads(table.schema.metadata[b"tinyseg.classes"]) == ["bg", "a", "b", "c"]


def test_binary_positive_fraction_is_exact(cli, dataset: Path, tmp_path: Path):
    out = tmp_path / "p.parquet"
    table = resample(
        cli, dataset, out, "--strategy", "binary", "--class", "b", "-n", "10",
        "--positive-fraction", "0.3", "--size", "8", "--draws", "3",
    )  # fmt: skip
    rows = check_patches(table, out)
    for draw in range(3):
        mine = [row for row in rows if row["draw"] == draw]
        assert len(mine) == 10
        assert sum(row["px_b"] > 0 for row in mine) == 3
        assert all((row["px_b"] > 0) == (row["target_class"] == 2) for row in mine)
        assert {row["target_class"] for row in mine} == {2, -1}


def test_oversample_proportions(cli, dataset: Path, tmp_path: Path):
    out = tmp_path / "p.parquet"
    table = resample(
        cli, dataset, out, "--strategy", "oversample", "--class", "c", "--class", "b",
        "--proportions", "0.25,0.1", "-n", "20", "--size", "6",
    )  # fmt: skip
    rows = check_patches(table, out)
    targets = [row["target_class"] for row in rows]
    assert (targets.count(3), targets.count(2), targets.count(-1)) == (5, 2, 13)
    assert all(row["px_c"] > 0 for row in rows if row["target_class"] == 3)


def test_equal_pixels_meets_its_tolerance(cli, dataset: Path, tmp_path: Path):
    out = tmp_path / "p.parquet"
    table = resample(
        cli, dataset, out, "--strategy", "equal-pixels", "--tolerance", "0.1", "-n", "5",
        "--size", "8", "--draws", "2",
    )  # fmt: skip
    rows = check_patches(table, out)
    for draw in range(2):
        mine = [row for row in rows if row["draw"] == draw]
        totals = np.array([sum(row[f"px_{n}"] for row in mine) for n in ("a", "b", "c")])
        assert len(mine) >= 5
        assert (totals.max() - totals.min()) / totals.max() <= 0.1
        assert {row["target_class"] for row in mine} <= {1, 2, 3}


def test_equal_pixels_unattainable_is_an_error(cli, tmp_path: Path):
    mask = np.ones((20, 20), np.uint8)  # b only inside a large block of a
    mask[10, 10] = 2
    write_map(tmp_path / "m.png", mask)
    (tmp_path / "manifest.csv").write_text("sample_id,image,mask\ns,m.png,m.png\n")
    out = tmp_path / "p.parquet"
    result = cli(
        "resample", tmp_path / "manifest.csv", "--strategy", "equal-pixels", "--size", "4",
        "--max-patches", "200", "-j", "1", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "200 patches drawn" in result.output and len(result.output.strip().splitlines()) <= 2
    assert not out.exists()


def test_random_and_per_image(cli, dataset: Path, tmp_path: Path):
    out = tmp_path / "r.parquet"
    rows = check_patches(
        resample(cli, dataset, out, "--strategy", "random", "-n", "7", "--size", "8"), out
    )
    assert len(rows) == 7 and {row["target_class"] for row in rows} == {-1}
    out = tmp_path / "pi.parquet"
    table = resample(
        cli, dataset, out, "--strategy", "equal-samples", "--class", "a", "--class", "b",
        "-n", "2", "--size", "8", "--per-image",
    )  # fmt: skip
    rows = check_patches(table, out)
    found = sorted((row["sample_id"], row["target_class"]) for row in rows)
    # a: s0 and s1 (the a pixel of s2 lies outside its ROI); b: s0 and s2; 2 each
    assert found == sorted([("s0", 1)] * 2 + [("s1", 1)] * 2 + [("s0", 2)] * 2 + [("s2", 2)] * 2)


def test_composition_json_by_hand(cli, tmp_path: Path):
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 1] = mask[2, 2] = 1
    mask[3, 3] = 255
    write_map(tmp_path / "m.png", mask)
    (tmp_path / "manifest.csv").write_text("sample_id,image,mask\ns,m.png,m.png\n")
    result = cli(
        "resample", tmp_path / "manifest.csv", "--strategy", "equal-samples", "-n", "2",
        "--size", "4", "--json", "-j", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # one valid patch, drawn 2× for class 0 and 2× for class 1: 13 bg + 2 px of class 1 each
    assert summary["patches"] == 4
    assert [(c["drawn"], c["samples"], c["pixels"]) for c in summary["classes"]] == [
        (2, 4, 52),
        (2, 4, 8),
    ]
    assert summary["classes"][1]["share"] == pytest.approx(8 / 60)


def test_same_seed_same_bytes_and_jobs_do_not_matter(cli, dataset: Path, tmp_path: Path):
    args = ("--strategy", "equal-pixels", "--size", "8", "-n", "4", "--draws", "2", "--force")
    first = resample(cli, dataset, tmp_path / "a.parquet", *args)
    data = (tmp_path / "a.parquet").read_bytes()
    resample(cli, dataset, tmp_path / "a.parquet", *args)
    assert (tmp_path / "a.parquet").read_bytes() == data
    parallel = cli(
        "resample", dataset, "--classes", "bg,a,b,c", "-j", "2", "-o", tmp_path / "b.parquet",
        *args,
    )  # fmt: skip
    assert parallel.exit_code == 0, parallel.output
    assert pq.read_table(tmp_path / "b.parquet").equals(first)
    other = resample(cli, dataset, tmp_path / "c.parquet", *args, "--seed", "1")
    assert not other.equals(first)
    draws = first.to_pylist()
    assert [r["y"] for r in draws if r["draw"] == 0] != [r["y"] for r in draws if r["draw"] == 1]


def test_manifest_through_a_pipe(dataset: Path):
    folder = dataset.parent
    done = run_tinyseg(
        "resample", "-", "--strategy", "binary", "--class", "1", "-n", "4", "--size", "8",
        "-j", "1", "-o", "-", input=dataset.read_bytes(), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    table = pq.read_table(io.BytesIO(done.stdout))
    assert table.num_rows == 4
    assert all((folder / path).is_file() for path in table["mask"].to_pylist())
    assert b"binary" in done.stderr  # the composition table on stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ("--strategy binary -n 2", 2, "exactly one --class"),
        ("--strategy random --class a", 2, "random draws for no class"),
        ("--strategy oversample", 2, "at least one --class"),
        ("--strategy random --tolerance 0.2", 2, "applies to --strategy"),
        ("--strategy oversample --class a --proportions 0.2,0.4", 2, "one proportion"),
        ("--strategy oversample --class a --class b --proportions 0.8,0.4", 2, "at most 1"),
        ("--strategy equal-samples --class zz", 2, "unknown class"),
        ("--strategy equal-pixels --per-image", 2, "--per-image"),
        ("--strategy random --size 31", 1, "smaller than the 31×31 patch"),
        ("--strategy equal-samples --classes bg,a,b,c,d --size 8", 1, "'d' has no candidate"),
        ("--strategy binary --class bg --size 30", 1, "no negative patch"),
        ("--strategy random --classes bg,a --size 8", 1, "outside the class map"),
    ],
)
def test_errors(cli, dataset: Path, tmp_path: Path, args: str, code: int, message: str):
    out = tmp_path / "p.parquet"
    if "--classes" not in args:
        args += " --classes bg,a,b,c"
    result = cli("resample", dataset, "-j", "1", "-o", out, *args.split())
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_data_errors(cli, dataset: Path, tmp_path: Path):
    table = pq.read_table(dataset)
    bad_cases = {
        "no_image": (table.drop_columns(["image"]), "needs a column 'image'"),
        "no_train": (table.filter(pa.compute.equal(table["split"], "val")), "split == 'train'"),
        "missing": (table.set_column(2, "mask", pa.array(["masks/zz.png"] * 4)), "no such file"),
        "shape": (table.set_column(1, "image", pa.array(["images/s2.png"] * 4)), "image is 40×40"),
    }
    for name, (bad, message) in bad_cases.items():
        path = dataset.parent / f"{name}.parquet"
        pq.write_table(bad, path)
        result = cli("resample", path, "--strategy", "random", "-j", "1", "--size", "4")
        assert result.exit_code == 1, (name, result.output)
        assert message in result.output, (name, result.output)
    out = tmp_path / "exists.parquet"
    out.write_bytes(b"x")
    result = cli("resample", dataset, "--strategy", "random", "-o", out)
    assert result.exit_code == 1 and "already exists" in result.output


def test_split_pipes_into_resample(dataset: Path):
    folder = dataset.parent
    split = run_tinyseg(
        "split", "--from-dir", "images", "--masks", "masks", "--ratios", "0.5,0.5", "-q",
        "-o", "-", cwd=folder,
    )  # fmt: skip
    assert split.returncode == 0, split.stderr.decode()
    done = run_tinyseg(
        "resample", "-", "--strategy", "random", "-n", "5", "--size", "8", "-q", "-o", "-",
        input=split.stdout, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    manifest = pq.read_table(io.BytesIO(split.stdout)).to_pylist()
    train = {row["sample_id"] for row in manifest if row["split"] == "train"}
    table = pq.read_table(io.BytesIO(done.stdout))
    assert table.num_rows == 5 and set(table["sample_id"].to_pylist()) <= train

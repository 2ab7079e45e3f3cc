"""Threshold sweeps and tolerance matching (issue 21): hand-computed 5×5 sweeps for exact
pixels and each tolerance rule, the case where greedy matching loses a pair that a maximum
matching keeps, the benchmark's ODS interpolation, OIS and AP, thinning as MATLAB's
bwmorph 'thin', and shards of a sweep merged by 'score --counts'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tifffile

from tests.conftest import run_tinyseg, write_map
from tinyseg_cli.metrics.sweep import (
    SweepCounts,
    average_precision,
    best_interpolated,
    exact_counts,
    parse_thresholds,
    reached,
    summarize_sweep,
)
from tinyseg_cli.metrics.tolerance import matched_pairs, thin, tolerance_counts

# A 5×5 truth: row 2 is the class. The probabilities: row 2 [0.9, 0.8, 0.3, 0.6, 0.1],
# and two false positives: (1, 1) = 0.7, next to the truth, and (4, 4) = 0.95, far from it.
TRUTH = np.zeros((5, 5), bool)
TRUTH[2, :] = True
SCORES = np.zeros((5, 5), np.float32)
SCORES[2, :] = [0.9, 0.8, 0.3, 0.6, 0.1]
SCORES[1, 1], SCORES[4, 4] = 0.7, 0.95
THRESHOLDS = np.array([0.2, 0.5, 0.75])
VALID = np.ones((5, 5), bool)


def test_thresholds_like_the_benchmark():
    assert np.allclose(parse_thresholds("99"), np.linspace(0.01, 0.99, 99))
    assert parse_thresholds("4").tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert parse_thresholds("0.5,0.1,0.5").tolist() == [0.1, 0.5]
    for bad in ("0", "1.5,0.2", "x"):
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def test_exact_sweep_by_hand():
    """t = 0.2: 0.9 0.8 0.3 0.6 on the truth, 0.7 and 0.95 off it: TP 4, FP 2, FN 1, TN 18.
    t = 0.5: TP 3 (0.9 0.8 0.6), FP 2. t = 0.75: TP 2, FP 1 (0.95)."""
    counts = exact_counts(reached(SCORES, THRESHOLDS), TRUTH, VALID, 3)
    tp, fp = counts.cnt_p, counts.sum_p - counts.cnt_p
    fn, tn = counts.sum_r - counts.cnt_r, counts.tn
    assert (tp.tolist(), fp.tolist(), fn.tolist(), tn.tolist()) == (
        [4, 3, 2], [2, 2, 1], [1, 2, 3], [18, 18, 19],
    )  # fmt: skip


def test_integer_maps_compare_as_scaled_probabilities():
    """An 8-bit map v reaches t when v >= t × 255 (as score --threshold compares)."""
    values = np.array([0, 50, 51, 128, 255], np.uint8)
    assert reached(values, np.array([0.2, 0.5])).tolist() == [0, 0, 1, 2, 2]  # 51 = 0.2 × 255


def test_summaries_by_hand():
    """ODS of the 5×5 case: F 8/11 at t = 0.2 (P 2/3, R 0.8); the interpolation towards
    0.5 only lowers F. AP: precision 2/3 reaches recall 0.8, so 81 of the 100 levels
    (0, …, 0.80) have 2/3, summed and divided by 101."""
    counts = exact_counts(reached(SCORES, THRESHOLDS), TRUTH, VALID, 3)
    summary = summarize_sweep(THRESHOLDS, [counts])
    assert summary.ods.f == pytest.approx(8 / 11)
    assert summary.ods.threshold == pytest.approx(0.2)
    assert (summary.ods.precision, summary.ods.recall) == pytest.approx((2 / 3, 0.8))
    assert summary.ap == pytest.approx(81 * (2 / 3) / 101)
    assert summary.ois.f == pytest.approx(8 / 11)


def test_ods_interpolates_between_thresholds():
    """(R, P) = (1, 0.2) at 0.4 and (0.2, 1) at 0.6: F 1/3 at both, but halfway (t = 0.5)
    R = P = 0.6, F = 0.6."""
    best = best_interpolated(np.array([0.4, 0.6]), np.array([1.0, 0.2]), np.array([0.2, 1.0]))
    assert (best.threshold, best.recall, best.precision, best.f) == pytest.approx(
        (0.5, 0.6, 0.6, 0.6)
    )


def test_ois_pools_each_image_at_its_best_threshold():
    """Image a is best at t0 (4 of 4 found, 4 predicted), b at t1 (1 of 2, 1 predicted):
    OIS pools 5 found of 6, 5 right of 5: R 5/6, P 1, F 10/11. ODS pools both images: t0
    gives R 6/6, P 6/10 (F 0.75), t1 R 2/6, P 2/2 (F 0.5), and between them the benchmark
    interpolates: R = 1 − (2/3)d, P = 0.6 + 0.4d for d = 0, 0.01, …, 1."""
    a = SweepCounts(np.array([4, 1]), np.array([4, 4]), np.array([4, 1]), np.array([4, 1]))
    b = SweepCounts(np.array([2, 1]), np.array([2, 2]), np.array([2, 1]), np.array([6, 1]))
    summary = summarize_sweep(np.array([0.3, 0.7]), [a, b])
    assert (summary.ois.recall, summary.ois.precision) == pytest.approx((5 / 6, 1.0))
    assert summary.ois.f == pytest.approx(10 / 11)
    steps = [k / 100 for k in range(101)]
    f = [2 * (0.6 + 0.4 * d) * (1 - 2 * d / 3) / (0.6 + 0.4 * d + 1 - 2 * d / 3) for d in steps]
    assert summary.ods.f == pytest.approx(max(f)) and max(f) > 0.76
    assert summary.ods.threshold == pytest.approx(0.3 + 0.4 * steps[f.index(max(f))])


def test_average_precision_is_the_benchmarks():
    """Recall 0.5 at precision 1 and recall 1 at precision 0.5: levels 0..0.5 (51) have
    precision 1, levels 0.51..0.99 (49) have 0.5: (51 + 24.5) / 101."""
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(
        75.5 / 101
    )


def test_relaxed_tolerance_by_hand():
    """Within 1 px, no thinning. t = 0.2: predicted 0.9 0.8 0.3 0.6 (on the truth) and 0.7
    (one row above: near), not 0.95 (two rows below): cnt_p 5 of 6. Truth found: each truth
    pixel with a predicted pixel within 1 px: columns 0..3 (4 of 5; column 4 has 0.1 and
    its neighbours 0.6 at column 3 — within 1 px, found too): 5. t = 0.75: predicted 0.9,
    0.8 and 0.95: right 2 of 3; found: columns 0, 1, 2 (0.8 is next to column 2): 3 of 5."""
    levels = reached(SCORES, THRESHOLDS)
    counts = tolerance_counts(levels, TRUTH, VALID, 3, 1.0, "relaxed", "none")
    assert counts.cnt_p.tolist() == [5, 4, 2] and counts.sum_p.tolist() == [6, 5, 3]
    assert counts.cnt_r.tolist() == [5, 5, 3] and counts.sum_r.tolist() == [5, 5, 5]


def test_matched_tolerance_by_hand():
    """One-to-one pairs within 1 px. t = 0.2: predictions p0..p3 on truth columns 0..3 and
    q = (1, 1), whose only truth pixel within 1 px is (2, 1). A maximum matching pairs q with
    t1 and shifts the row along: p0-t0, p1-t2, p2-t3, p3-t4: 5 pairs (pairing each p with
    its own column first would leave q alone: 4). t = 0.5 (p2 drops): q-t1, p0-t0, p1-t2,
    p3-t3: 4. t = 0.75: p0, p1 and the far 0.95: 2."""
    levels = reached(SCORES, THRESHOLDS)
    counts = tolerance_counts(levels, TRUTH, VALID, 3, 1.0, "matched", "none")
    assert counts.cnt_p.tolist() == [5, 4, 2] and counts.cnt_r.tolist() == [5, 4, 2]
    assert counts.sum_p.tolist() == [6, 5, 3]


def test_maximum_matching_keeps_the_pair_greedy_matching_loses():
    """D = 1.5. Truth X (2, 2), Y (2, 3); predictions A (1, 2), 1 from X and 1.41 from Y,
    and B (2, 1), 1 from X and 2 from Y. Greedy nearest-first pairs A with X and leaves B
    alone; a maximum matching pairs A-Y and B-X: 2 pairs."""
    truth = np.zeros((5, 5), bool)
    truth[2, 2] = truth[2, 3] = True
    pred = np.zeros((5, 5), bool)
    pred[1, 2] = pred[2, 1] = True
    assert matched_pairs(pred, truth, 1.5) == 2
    assert matched_pairs(pred, truth, 1.0) == 1  # A to Y is 1.41 > 1


def test_maximum_matching_equals_scipys_on_random_pixels():
    """Against scipy's maximum_bipartite_matching (another implementation, fast enough on
    small random graphs) on pixels within 1 to 3.2 px, including a sequence on one truth
    where pixels come and go, as thinning at falling thresholds makes them."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    def reference(pred: np.ndarray, truth: np.ndarray, radius: float) -> int:
        (py, px), (ty, tx) = np.nonzero(pred), np.nonzero(truth)
        near = np.hypot(py[:, None] - ty, px[:, None] - tx) <= radius
        if not near.any():
            return 0
        pairs = maximum_bipartite_matching(csr_matrix(near.astype(np.int8)), perm_type="column")
        return int(np.count_nonzero(pairs >= 0))

    rng = np.random.default_rng(11)
    for _ in range(150):
        shape = (int(rng.integers(3, 25)), int(rng.integers(3, 25)))
        pred = rng.random(shape) < rng.uniform(0.05, 0.6)
        truth = rng.random(shape) < rng.uniform(0.05, 0.6)
        radius = float(rng.choice([1.0, 1.5, 2.0, 3.2]))
        assert matched_pairs(pred, truth, radius) == reference(pred, truth, radius)
    from tinyseg_cli.metrics.tolerance import _TruthWithin

    truth = rng.random((20, 20)) < 0.3
    within = _TruthWithin(truth, 1.5)  # one truth, its last matching kept between calls
    for _ in range(30):
        pred = rng.random((20, 20)) < rng.uniform(0.05, 0.5)
        assert within.matched(np.flatnonzero(pred)) == reference(pred, truth, 1.5)


def test_thinning_as_bwmorph_thin():
    """A bar 3 pixels thick thins to its middle line; a cross keeps its arms."""
    bar = np.zeros((7, 12), bool)
    bar[2:5, 1:11] = True
    thinned = thin(bar)
    assert thinned[3, 2:10].all() and thinned[2].sum() + thinned[4].sum() <= 2
    assert thin(np.zeros((4, 4), bool)).sum() == 0
    line = np.zeros((5, 5), bool)
    line[2, :] = True
    assert np.array_equal(thin(line), line)  # already one pixel wide


def test_thinning_matches_scikit_image_where_installed():
    skimage = pytest.importorskip("skimage.morphology", reason="scikit-image is not installed")
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for _ in range(50):
        blob = ndimage.gaussian_filter(rng.random((30, 40)), rng.uniform(0.5, 3)) > 0.5
        assert np.array_equal(thin(blob), skimage.thin(blob))


def test_sweep_with_thinning_equals_each_threshold_thinned_and_counted_alone():
    """A sweep adds each threshold's pixels to the last one's and counts in compiled loops;
    it must give what thinning the threshold's mask from scratch and counting pairs of
    pixels by their distances gives, on maps with blobs, lines and pixels at the border."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    thresholds = np.linspace(0.1, 0.9, 9)
    for case in range(6):
        shape = (int(rng.integers(12, 30)), int(rng.integers(12, 30)))
        scores = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.8, 2.5))
        scores = (scores - scores.min()) / np.ptp(scores)
        truth = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.55
        truth[0, :] |= case % 2 == 0  # truth touching the border
        radius = float(rng.choice([1.0, 1.5, 2.5]))
        levels = reached(scores, thresholds)
        valid = np.ones(shape, bool)
        for thin_mode in ("pred", "both"):
            truth_used = thin(truth) if thin_mode == "both" else truth
            ty, tx = np.nonzero(truth_used)
            relaxed = tolerance_counts(levels, truth, valid, 9, radius, "relaxed", thin_mode)
            matched = tolerance_counts(levels, truth, valid, 9, radius, "matched", thin_mode)
            for k in range(9):
                pred = thin(levels > k)
                py, px = np.nonzero(pred)
                within = np.hypot(py[:, None] - ty, px[:, None] - tx) <= radius
                assert relaxed.sum_p[k] == matched.sum_p[k] == py.size
                assert relaxed.cnt_p[k] == np.count_nonzero(within.any(axis=1))
                assert relaxed.cnt_r[k] == np.count_nonzero(within.any(axis=0))
                assert matched.cnt_p[k] == matched_pairs(pred, truth_used, radius)
            assert (relaxed.sum_r == ty.size).all()


def write_case(root: Path) -> tuple[Path, Path]:
    write_map(root / "t" / "a.png", TRUTH.astype(np.uint8))
    (root / "p").mkdir(parents=True)
    tifffile.imwrite(root / "p" / "a.tif", SCORES)
    second = np.flipud(SCORES).copy()
    write_map(root / "t" / "b.png", np.flipud(TRUTH).astype(np.uint8))
    tifffile.imwrite(root / "p" / "b.tif", second)
    return root / "t", root / "p"


def test_score_thresholds_through_the_cli_and_shards_merged(cli, tmp_path: Path):
    truth, pred = write_case(tmp_path)
    whole = cli(
        "score", "--truth", truth, "--pred", pred, "--thresholds", "0.2,0.5,0.75",
        "--classes", "bg,crack", "--json", "-q", "--sweep-out", tmp_path / "all.parquet",
        "-o", tmp_path / "scores.parquet",
    )  # fmt: skip
    assert whole.exit_code == 0, whole.output
    crack = json.loads(whole.stdout)["classes"]["crack"]
    # both images are the 5×5 case (b flipped): pooled counts double, so ODS is unchanged
    assert crack["ods"] == pytest.approx(8 / 11) and crack["ods_threshold"] == pytest.approx(0.2)
    table = pq.read_table(tmp_path / "all.parquet")
    assert table.column_names[:4] == ["sample_id", "class_index", "class_name", "threshold"]
    assert table.num_rows == 2 * 3
    rows = [r for r in table.to_pylist() if r["sample_id"] == "a"]
    assert [(r["tp"], r["fp"], r["fn"], r["tn"]) for r in rows] == [
        (4, 2, 1, 18), (3, 2, 2, 18), (2, 1, 3, 19),
    ]  # fmt: skip
    shards = []
    for k in range(2):
        out = tmp_path / f"shard{k}.parquet"
        done = cli(
            "score", "--truth", truth, "--pred", pred, "--thresholds", "0.2,0.5,0.75",
            "--classes", "bg,crack", "--shard", f"{k}/2", "-q", "--sweep-out", out,
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        shards.append(out)
    merged = cli("score", "--counts", *shards, "--json", "-q")
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout)["classes"]["crack"] == crack
    scores = pq.read_table(tmp_path / "scores.parquet").to_pylist()
    assert scores[0]["class_name"] == "crack" and scores[0]["ods"] == pytest.approx(8 / 11)


def test_a_thresholds_table_piped_into_score_counts(tmp_path: Path):
    """``--sweep-out -`` into ``score --counts -``: stdin is read once and still recognised
    as a thresholds table (not refused as a confusion counts table without tp, fp, fn, tn)."""
    truth, pred = write_case(tmp_path)
    made = run_tinyseg(
        "score", "--truth", truth, "--pred", pred, "--thresholds", "0.2,0.5,0.75",
        "--classes", "bg,crack", "-q", "--sweep-out", "-",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr.decode()
    reduced = run_tinyseg("score", "--counts", "-", "--json", "-q", input=made.stdout)
    assert reduced.returncode == 0, reduced.stderr.decode()
    crack = json.loads(reduced.stdout)["classes"]["crack"]
    assert crack["ods"] == pytest.approx(8 / 11) and crack["ods_threshold"] == pytest.approx(0.2)


def test_tolerance_sweeps_through_the_cli_in_two_workers(tmp_path: Path, monkeypatch):
    """The 5×5 case within 1 px, image b its mirror (the same counts): two worker processes
    each sweep an image, compiling the tolerance kernels at the same time into one empty
    cache. Relaxed (by hand above): found 5 5 3 of 5, right 5 4 2 of 6 5 3; matched: 5 4 2
    pairs."""
    truth, pred = write_case(tmp_path)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    for rule, found, right in (
        ("relaxed", [5, 5, 3], [5, 4, 2]),
        ("matched", [5, 4, 2], [5, 4, 2]),
    ):
        out = tmp_path / f"{rule}.parquet"
        done = run_tinyseg(
            "score", "--truth", truth, "--pred", pred, "--thresholds", "0.2,0.5,0.75",
            "--classes", "bg,crack", "--tolerance", "1", "--tolerance-rule", rule,
            "--thin", "none", "-j", "2", "-q", "--sweep-out", out,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        for image in ("a", "b"):
            rows = [r for r in pq.read_table(out).to_pylist() if r["sample_id"] == image]
            assert [r["cnt_r"] for r in rows] == found and [r["sum_r"] for r in rows] == [5] * 3
            assert [r["cnt_p"] for r in rows] == right and [r["sum_p"] for r in rows] == [6, 5, 3]


def test_sweep_usage_errors(cli, tmp_path: Path):
    truth, pred = write_case(tmp_path)
    base = ("score", "--truth", truth, "--pred", pred)
    for extra, needle in (
        (("--tolerance", "2"), "--tolerance needs --thresholds"),
        (("--thresholds", "9", "--objects"), "--objects does not go with --thresholds"),
        (("--thresholds", "1.5,2"), "expected numbers t1,t2,"),
        (("--thresholds", "9", "--tolerance", "-1"), "expected a distance > 0"),
    ):
        result = cli(*base, *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert needle in result.stderr


def test_plot_draws_precision_recall_curves_of_a_thresholds_table(cli, tmp_path: Path):
    truth, pred = write_case(tmp_path)
    sweep = tmp_path / "sweep.parquet"
    made = cli(
        "score", "--truth", truth, "--pred", pred, "--thresholds", "0.2,0.5,0.75",
        "--classes", "bg,crack", "-q", "--sweep-out", sweep,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    figure = tmp_path / "pr.svg"
    drawn = cli("plot", sweep, "-o", figure)
    assert drawn.exit_code == 0, drawn.output
    assert "precision/recall curves of sweep" in drawn.stderr
    svg = figure.read_text()
    for gid in ("pr/sweep: crack", "ods/sweep: crack", "ois/sweep: crack", "iso-f/0.6"):
        assert f'id="{gid}"' in svg, gid
    assert "ODS 0.727, OIS 0.727, AP 0.535" in svg  # 8/11 and 81·(2/3)/101, as above
    refused = cli("plot", sweep, "--metric", "f2", "-o", tmp_path / "x.png")
    assert refused.exit_code == 2


def test_matched_counts_agree_with_pyedgeeval_where_installed():
    """pyEdgeEval 0.2.8 (the BSDS matching, GPL: a bench/test extra only) on two CrackForest
    images, 9 thresholds, 0.0075 × diagonal: with the same predicted pixels (no thinning) a
    maximum matching never has fewer pairs than its CSA, and with thinning the counts stay
    within 1 % (its thinning stops a subiteration early now and then); ODS, OIS and AP
    within 0.005."""
    pytest.importorskip("pyEdgeEval", reason="pyEdgeEval is not installed (make bench adds it)")
    from PIL import Image
    from pyEdgeEval.common.binary_label.evaluate_boundaries import (
        evaluate_boundaries_threshold,
    )
    from scipy import ndimage

    from tests.conftest import shared_dataset

    root = shared_dataset("crackforest")
    # without thinning, low thresholds predict whole regions, which its CSA takes minutes
    # to match: the thresholds from 0.6 up keep the predictions thin enough
    for thin_mode, apply, thresholds in (
        ("none", False, parse_thresholds("0.6,0.7,0.8,0.9")),
        ("pred", True, parse_thresholds("9")),
    ):
        ours_all, theirs_all = [], []
        for k, mask in enumerate(sorted((root / "mask").glob("*.png"))[:2]):
            truth = np.asarray(Image.open(mask)) == 1
            rng = np.random.default_rng(k)
            crack = ndimage.gaussian_filter(truth.astype(np.float64), 2.0)
            clutter = ndimage.gaussian_filter(rng.random(truth.shape), 4.0)
            clutter = (clutter - clutter.min()) / np.ptp(clutter)
            probs = np.clip(0.95 * crack / crack.max() + 0.4 * clutter**3, 0, 1)
            theirs = evaluate_boundaries_threshold(
                thresholds=thresholds, pred=probs, gt=truth.astype(np.uint8), max_dist=0.0075,
                apply_thinning=apply, apply_nms=False,
            )  # fmt: skip
            radius = 0.0075 * float(np.hypot(*truth.shape))
            levels = reached(probs, thresholds)
            ours = tolerance_counts(
                levels,
                truth,
                np.ones(truth.shape, bool),
                len(thresholds),
                radius,
                "matched",
                thin_mode,
            )
            cnt_p = np.asarray(theirs[2])
            if thin_mode == "none":
                assert (ours.cnt_p >= cnt_p).all()
                assert (ours.sum_p == np.asarray(theirs[3])).all()
            has = cnt_p > 0
            assert (np.abs(ours.cnt_p[has] - cnt_p[has]) <= 0.01 * cnt_p[has]).all()
            ours_all.append(ours)
            theirs_all.append(SweepCounts(*(np.asarray(v, np.int64) for v in theirs)))
        mine, peer = summarize_sweep(thresholds, ours_all), summarize_sweep(thresholds, theirs_all)
        assert abs(mine.ods.f - peer.ods.f) <= 0.005
        assert abs(mine.ois.f - peer.ois.f) <= 0.005
        assert abs(mine.ap - peer.ap) <= 0.005

"""score --thresholds: 99 thresholds against one, and the tolerance rules against pyEdgeEval
0.2.8 (the BSDS benchmark's matching in Python, GPL: a bench extra, never imported by
tinyseg) on CrackForest images (SPEC §8).

Predictions: the probability maps of a model when ``TINYSEG_BENCH_PROBS`` names a folder of
them (``<stem>.tif``, from ``infer --probs``), else maps made from each truth mask, the
same every run: the crack blurred (σ 2, a network's thick, soft response) plus smooth
clutter, so every threshold keeps some false positives. Both tools get the same float64
maps and compare ``p >= t``; the timings cover the counting, not the decoding.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from common import Section, Target, console, interleaved
from rich.table import Table
from scipy import ndimage

from tinyseg_cli.metrics.counts import confusion_matrix
from tinyseg_cli.metrics.sweep import (
    exact_counts,
    parse_thresholds,
    reached,
    summarize_sweep,
)
from tinyseg_cli.metrics.tolerance import tolerance_counts

CRACKFOREST = Path(__file__).resolve().parents[2] / "shared" / "data" / "crackforest"
MAX_DIST = 0.0075  # of the image diagonal, as the benchmark


def load_pairs(count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, truth, probabilities) of the first ``count`` CrackForest images."""
    from PIL import Image

    probs_dir = os.environ.get("TINYSEG_BENCH_PROBS")
    masks = sorted((CRACKFOREST / "mask").glob("*.png"))
    if probs_dir:  # the images the model predicted (infer --split test: 073-118)
        masks = [m for m in masks if (Path(probs_dir) / f"{m.stem}.tif").is_file()]
    pairs = []
    for k, mask in enumerate(masks[:count]):
        truth = np.asarray(Image.open(mask)) == 1
        if probs_dir:
            import tifffile

            probs = tifffile.imread(Path(probs_dir) / f"{mask.stem}.tif").astype(np.float64)
            probs = probs[1] if probs.ndim == 3 else probs
        else:
            rng = np.random.default_rng(k)
            crack = ndimage.gaussian_filter(truth.astype(np.float64), 2.0)
            crack /= max(crack.max(), 1e-9)
            clutter = ndimage.gaussian_filter(rng.random(truth.shape), 4.0)
            clutter = (clutter - clutter.min()) / max(np.ptp(clutter), 1e-9)
            probs = np.clip(0.95 * crack + 0.4 * clutter**3, 0, 1)
        pairs.append((mask.stem, truth, probs))
    return pairs


def pyedgeeval_counts(truth: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, thin: bool):
    from pyEdgeEval.common.binary_label.evaluate_boundaries import (
        evaluate_boundaries_threshold,
    )

    return evaluate_boundaries_threshold(
        thresholds=thresholds, pred=probs, gt=truth.astype(np.uint8), max_dist=MAX_DIST,
        apply_thinning=thin, apply_nms=False,
    )  # fmt: skip


def same_pixels_agreement(
    truth: np.ndarray, probs: np.ndarray, thresholds: np.ndarray
) -> tuple[float, float]:
    """Our matches against pyEdgeEval's, both given the same thinned predictions at each
    threshold: (lowest ratio, largest relative difference). Ours thins as MATLAB does;
    pyEdgeEval's own thinning stops when the first subiteration deletes nothing, leaving a
    pixel or two the second would delete, so end to end its counts may differ slightly."""
    from tinyseg_cli.metrics.tolerance import matched_pairs, thin

    radius = MAX_DIST * float(np.hypot(*truth.shape))
    lowest, largest = 1.0, 0.0
    for t in thresholds:
        pred = thin(probs >= t)
        _, _, theirs, _ = pyedgeeval_counts(truth, pred.astype(np.float64), np.array([0.5]), False)
        if theirs[0] > 0:
            mine = matched_pairs(pred, truth, radius)
            lowest = min(lowest, mine / float(theirs[0]))
            largest = max(largest, abs(mine - float(theirs[0])) / float(theirs[0]))
    return lowest, largest


def ours(truth, probs, thresholds, rule, thin):
    radius = MAX_DIST * float(np.hypot(*truth.shape))
    levels = reached(probs, thresholds)
    valid = np.ones(truth.shape, bool)
    return tolerance_counts(levels, truth, valid, len(thresholds), radius, rule, thin)


def run(quick: bool = False) -> Section:
    section = Section("score --thresholds")
    if not CRACKFOREST.is_dir():
        console.print(f"[yellow]skipped[/]: {CRACKFOREST} is absent")
        return section
    thresholds = parse_thresholds("99")
    pairs = load_pairs(40 if not quick else 10)
    valid = np.ones(pairs[0][1].shape, bool)

    # exact pixels: 99 thresholds in one pass against one threshold, the same way, and
    # against the plain counting kernel at one threshold (what --threshold runs)
    one = np.array([0.5])

    def sweep(chosen: np.ndarray) -> None:
        for _, truth, probs in pairs:
            exact_counts(reached(probs, chosen), truth, valid, len(chosen))

    def kernel() -> None:
        for _, truth, probs in pairs:
            confusion_matrix(truth.view(np.uint8), (probs >= 0.5).view(np.uint8), 2)

    times, _ = interleaved(
        {"99": lambda: sweep(thresholds), "1": lambda: sweep(one), "kernel": kernel},
        5 if quick else 10,
    )
    ratio = times["99"] / times["1"]
    note = f"{len(pairs)} maps of 480×320"
    section.ratios.append(("99 thresholds / 1 threshold (exact pixels)", ratio, note))
    section.ratios.append(
        ("99 thresholds / counting kernel at one threshold", times["99"] / times["kernel"], note)
    )
    section.targets.append(Target("99 thresholds <= 2x one threshold", ratio, 2.0, "<="))

    try:
        import pyEdgeEval  # noqa: F401
    except ImportError:
        console.print("[yellow]pyEdgeEval is not installed[/]: `make bench` installs it")
        return section
    peers = pairs[: 2 if quick else 5]
    # once-per-process costs kept out of the per-image times, ours reported on its own:
    # numba's import and the load (or first compilation) of the thinning kernels
    _, truth, probs = peers[0]
    t0 = time.perf_counter()
    ours(truth[:40, :40], probs[:40, :40], thresholds, "relaxed", "pred")
    startup = time.perf_counter() - t0
    pyedgeeval_counts(truth[:40, :40], probs[:40, :40], thresholds[:3], True)
    table = Table(title="per image, 99 thresholds, 0.0075 × diagonal", title_justify="left")
    for column in ("image", "pyEdgeEval s", "matched s", "relaxed s", "relaxed (no thin) s"):
        table.add_column(column, justify="right")
    totals = np.zeros(4)
    worst_low = same_low = 1.0
    worst_diff = same_diff = 0.0
    theirs_all, ours_all = [], []
    for stem, truth, probs in peers:
        t0 = time.perf_counter()
        cnt_r, sum_r, cnt_p, sum_p = pyedgeeval_counts(truth, probs, thresholds, True)
        t1 = time.perf_counter()
        matched = ours(truth, probs, thresholds, "matched", "pred")
        t2 = time.perf_counter()
        ours(truth, probs, thresholds, "relaxed", "pred")
        t3 = time.perf_counter()
        ours(truth, probs, thresholds, "relaxed", "none")
        t4 = time.perf_counter()
        seconds = np.array([t1 - t0, t2 - t1, t3 - t2, t4 - t3])
        totals += seconds
        table.add_row(stem, *(f"{s:.3f}" for s in seconds))
        has = cnt_p > 0
        if has.any():
            worst_low = min(worst_low, float((matched.cnt_p[has] / cnt_p[has]).min()))
            worst_diff = max(
                worst_diff, float((np.abs(matched.cnt_p[has] - cnt_p[has]) / cnt_p[has]).max())
            )
        theirs_all.append((cnt_r, sum_r, cnt_p, sum_p))
        ours_all.append(matched)
        low, diff = same_pixels_agreement(truth, probs, thresholds)
        same_low, same_diff = min(same_low, low), max(same_diff, diff)
    console.print(table)
    from tinyseg_cli.metrics.sweep import SweepCounts

    theirs = summarize_sweep(
        thresholds, [SweepCounts(*(np.asarray(a, np.int64) for a in c)) for c in theirs_all]
    )
    mine = summarize_sweep(thresholds, ours_all)
    for name, value in (
        ("pyEdgeEval / matched (speed-up)", totals[0] / totals[1]),
        ("pyEdgeEval / relaxed (speed-up)", totals[0] / totals[2]),
        ("pyEdgeEval / relaxed, no thinning (speed-up)", totals[0] / totals[3]),
        ("end to end: matched / pyEdgeEval matches, lowest", worst_low),
        ("same thinned pixels: matched / pyEdgeEval matches, lowest", same_low),
        ("same thinned pixels: |matched - pyEdgeEval| / pyEdgeEval, largest", same_diff),
        ("end to end: |matched - pyEdgeEval| / pyEdgeEval, largest", worst_diff),
        ("tolerance kernels' start-up, once per process (s)", startup),
        ("ODS difference", abs(mine.ods.f - theirs.ods.f)),
        ("OIS difference", abs(mine.ois.f - theirs.ois.f)),
        ("AP difference", abs(mine.ap - theirs.ap)),
    ):
        section.ratios.append((name, value, f"{len(peers)} CrackForest images"))
    section.targets += [
        Target("matched >= 20x faster than pyEdgeEval", totals[0] / totals[1], 20, ">="),
        Target("relaxed, thinned prediction, >= 100x", totals[0] / totals[2], 100, ">="),
        Target("relaxed, one pass (--thin none), >= 100x", totals[0] / totals[3], 100, ">="),
        Target("matched counts never below pyEdgeEval's (same pixels)", same_low, 1.0, ">="),
        Target("matched counts within 1 % of pyEdgeEval's (same pixels)", same_diff, 0.01, "<="),
        Target("ODS within 0.005", abs(mine.ods.f - theirs.ods.f), 0.005, "<="),
        Target("OIS within 0.005", abs(mine.ois.f - theirs.ois.f), 0.005, "<="),
        Target("AP within 0.005", abs(mine.ap - theirs.ap), 0.005, "<="),
    ]
    section.raw.update(
        images=len(peers),
        startup_s=startup,
        seconds={"pyedgeeval": totals[0], "matched": totals[1], "relaxed": totals[2],
                 "relaxed_no_thin": totals[3]},
        ods={"ours": mine.ods.f, "pyedgeeval": theirs.ods.f},
        ois={"ours": mine.ois.f, "pyedgeeval": theirs.ois.f},
        ap={"ours": mine.ap, "pyedgeeval": theirs.ap},
    )  # fmt: skip
    return section

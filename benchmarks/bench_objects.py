"""`tinyseg score --objects` against pixel scoring and the component-matching peers.

SPEC §8 targets: ``score --objects`` within 2× the time of pixel scoring on the same folder,
and ≥ 5× faster than the component-matching peers on the same pairs. Of the peers, panoptica
installs from PyPI (the ``bench`` extra); the MetricsReloaded package does not (it is not on
PyPI), so it is not measured. A plain ``scipy.ndimage.label`` + IoU-matrix loop is measured
too. All three count matched objects at IoU ≥ 0.5 with 4-connectivity (panoptica's rule
for 2D: scipy's default structure), and their counts are compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from bench_score_e2e import N_CLASSES, _read, make_folder, tinyseg_exe
from common import Section, Target, console, cores, fmt_seconds, interleaved, warn_if_busy
from rich.table import Table

FOREGROUND = range(1, N_CLASSES)


def run_score(args: list[str]) -> tuple[float, str]:
    """Wall time and stdout of one ``tinyseg score`` call (fresh interpreter)."""
    start = time.perf_counter()
    proc = subprocess.run([str(tinyseg_exe()), "score", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"tinyseg score failed: {proc.stderr.strip()[-500:]}")
    return seconds, proc.stdout


def scipy_loop(pairs: list[tuple[Path, Path]]) -> dict[str, int]:
    """The plain way: label each class with scipy.ndimage, an IoU matrix per class, match at
    IoU ≥ 0.5 (unique above 0.5, so no assignment is needed)."""
    from scipy import ndimage

    totals = {"true": 0, "pred": 0, "matched": 0}
    for truth_path, pred_path in pairs:
        truth, pred = _read(truth_path), _read(pred_path)
        for c in FOREGROUND:
            t_lab, n_t = ndimage.label(truth == c)
            p_lab, n_p = ndimage.label(pred == c)
            inter = np.zeros((n_t + 1, n_p + 1), dtype=np.int64)
            np.add.at(inter, (t_lab.ravel(), p_lab.ravel()), 1)
            t_area, p_area = inter.sum(1)[1:], inter.sum(0)[1:]
            inter = inter[1:, 1:]
            iou = inter / np.maximum(t_area[:, None] + p_area[None, :] - inter, 1)
            totals["true"] += n_t
            totals["pred"] += n_p
            totals["matched"] += int((iou >= 0.5).any(axis=1).sum())
    return totals


def panoptica_evaluator() -> Any:
    """panoptica's semantic → instance (connected components) → naive threshold matching at
    IoU 0.5, per class, imported and built outside the timing; None when not installed."""
    try:
        from panoptica import (
            ConnectedComponentsInstanceApproximator,
            InputType,
            NaiveThresholdMatching,
            Panoptica_Evaluator,
            disable_citation_reminder,
        )
        from panoptica.metrics import Metric
        from panoptica.utils.segmentation_class import SegmentationClassGroups
    except ImportError:
        return None
    disable_citation_reminder()
    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(matching_threshold=0.5),
        segmentation_class_groups=SegmentationClassGroups(
            {f"c{c}": ([c], False) for c in FOREGROUND}
        ),
        instance_metrics=[Metric.IOU],
        global_metrics=[Metric.DSC],
    )
    return evaluator


def panoptica_counts(pairs: list[tuple[Path, Path]], evaluator: Any) -> dict[str, int]:
    """Object counts of every pair by panoptica."""
    totals = {"true": 0, "pred": 0, "matched": 0}
    for truth_path, pred_path in pairs:
        truth, pred = _read(truth_path), _read(pred_path)
        results = evaluator.evaluate(pred.astype(np.int32), truth.astype(np.int32), verbose=False)
        for result in results.values():
            totals["true"] += int(result.n_ref_instances)
            totals["pred"] += int(result.n_pred_instances)
            totals["matched"] += int(result.tp)
    return totals


def _tinyseg_totals(stdout: str) -> dict[str, int]:
    micro = json.loads(stdout)["objects"]["micro"]
    return {
        "true": micro["true_objects"],
        "pred": micro["pred_objects"],
        "matched": micro["detected"],
    }


def run(quick: bool = False) -> Section:
    """Time pixel scoring, object scoring and the peers on one generated folder."""
    section = Section("score --objects")
    n_pairs, side = (40, 1024) if quick else (200, 1024)
    jobs = cores()
    repeats = 3 if quick else 5
    classes = ",".join(f"c{i}" for i in range(N_CLASSES))
    with tempfile.TemporaryDirectory(prefix="tinyseg-bench-") as tmp:
        (Path(tmp) / "big").mkdir()
        (Path(tmp) / "tiny").mkdir()
        truth_dir, pred_dir = make_folder(Path(tmp) / "big", n_pairs, side)
        tiny = make_folder(Path(tmp) / "tiny", 2, 64)
        pairs = [(t, pred_dir / t.name) for t in sorted(truth_dir.iterdir())]
        base = ["--truth", str(truth_dir), "--pred", str(pred_dir), "--classes", classes, "-q"]
        rule = ["--objects", "--connectivity", "4", "--match", "iou:0.5", "--json"]

        def score(extra: list[str], n_jobs: int, inputs: list[str] = base) -> Callable[[], float]:
            return lambda: run_score([*inputs, *extra, "--jobs", str(n_jobs)])[0]

        tiny_base = ["--truth", str(tiny[0]), "--pred", str(tiny[1]), "--classes", classes, "-q"]
        _, stdout = run_score([*base, *rule, "--jobs", str(jobs)])
        ours = _tinyseg_totals(stdout)
        section.raw["cpu_busy_before"] = warn_if_busy("the object-scoring timings")
        times, _ = interleaved(
            {
                "pixels_n": score([], jobs),
                "objects_n": score(rule, jobs),
                "pixels_1": score([], 1),
                "objects_1": score(rule, 1),
                "startup_1": score(rule, 1, tiny_base),
            },
            repeats,
        )
        peers: dict[str, float] = {}
        peer_counts: dict[str, dict[str, int] | None] = {}
        import scipy.ndimage  # noqa: F401  (imported before the timing)

        evaluator = panoptica_evaluator()
        candidates: dict[str, Callable[[list[tuple[Path, Path]]], dict[str, int]]] = {
            "scipy loop": scipy_loop
        }
        if evaluator is not None:
            candidates["panoptica"] = partial(panoptica_counts, evaluator=evaluator)
        for name, fn in candidates.items():
            start = time.perf_counter()
            peer_counts[name] = fn(pairs)
            peers[name] = time.perf_counter() - start
    _report(section, times, peers, peer_counts, ours, n_pairs, side, jobs, repeats)
    return section


def _report(
    section: Section,
    t: dict[str, float],
    peers: dict[str, float],
    peer_counts: dict[str, dict[str, int] | None],
    ours: dict[str, int],
    n_pairs: int,
    side: int,
    jobs: int,
    repeats: int,
) -> None:
    table = Table(
        title=f"score --objects — {n_pairs} pairs of {side}×{side}, {N_CLASSES - 1} "
        f"foreground classes (tinyseg best of {repeats}; peers once, in this process)",
        title_justify="left",
    )
    for col in ("what", "time", "true / pred / matched objects"):
        table.add_column(col, justify="left" if col == "what" else "right")
    counts = f"{ours['true']} / {ours['pred']} / {ours['matched']}"
    table.add_row(f"tinyseg score --jobs {jobs} (pixels)", fmt_seconds(t["pixels_n"]), "")
    table.add_row(f"tinyseg score --objects --jobs {jobs}", fmt_seconds(t["objects_n"]), counts)
    table.add_row("tinyseg score --jobs 1 (pixels)", fmt_seconds(t["pixels_1"]), "")
    table.add_row("tinyseg score --objects --jobs 1", fmt_seconds(t["objects_1"]), counts)
    for name, seconds in peers.items():
        c = peer_counts[name]
        assert c is not None
        table.add_row(
            f"{name} (1 process)",
            fmt_seconds(seconds),
            f"{c['true']} / {c['pred']} / {c['matched']}",
        )
    console.print(table)
    if "panoptica" not in peers:
        console.print("panoptica is not installed (pip install panoptica): not measured")
    console.print("MetricsReloaded: not on PyPI, not measured")
    section.ratios += [
        (f"objects / pixels, --jobs {jobs}", t["objects_n"] / t["pixels_n"], "same folder"),
        ("objects / pixels, --jobs 1", t["objects_1"] / t["pixels_1"], "same folder"),
    ]
    section.targets.append(
        Target(
            f"score --objects --jobs {jobs} <= 2x pixel scoring",
            t["objects_n"] / t["pixels_n"],
            2.0,
            "<=",
            "",
        )
    )
    work_1 = t["objects_1"] - t["startup_1"]
    section.ratios.append(("tinyseg --objects start-up (s)", t["startup_1"], "2 pairs of 64×64"))
    for name, seconds in peers.items():
        speedup = seconds / work_1
        section.ratios.append(
            (f"{name} / tinyseg --objects --jobs 1", seconds / t["objects_1"], "start-up included")
        )
        section.ratios.append(
            (f"{name} / tinyseg --objects --jobs 1, start-up subtracted", speedup, "one core each")
        )
        same = peer_counts[name] == ours
        section.targets.append(
            Target(f"{name} counts equal tinyseg's", float(same), 1, ">=", f"{peer_counts[name]}")
        )
        if name == "panoptica":
            section.targets.append(
                Target(
                    "tinyseg --objects >= 5x faster than panoptica (1 core each)",
                    speedup,
                    5.0,
                    ">=",
                    "per-pair work: tinyseg's start-up subtracted, panoptica imported before",
                )
            )
    section.raw["objects"] = {"pairs": n_pairs, "side": side, "jobs": jobs, **t, "peers": peers}


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])

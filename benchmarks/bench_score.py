"""`score` counting kernel: throughput against numpy/sklearn/torchmetrics/smp, and exactness.

SPEC §8 targets: the kernel >= 0.8x the best plain-numpy ``bincount`` variant measured in the
same run and >= 10x scikit-learn's ``confusion_matrix``; exact counts beyond 2**24 pixels of
one class (``smp.metrics.get_stats`` counts with float32 ``histc`` and is wrong there).
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from common import Measure, Section, Target, best_of, console, fmt_seconds, interleaved
from rich.table import Table

N_CLASSES = 5
IGNORE = 255
CHUNK = 1 << 20
SKLEARN_FRACTION = 8  # sklearn is timed on the first 1/8 of the pixels
# A realistic imbalanced class distribution: mostly background, rare small targets.
IMBALANCED_P = (0.965, 0.02, 0.01, 0.004, 0.001)
SPARSE_P = (0.995, 0.002, 0.0015, 0.001, 0.0005)  # like the masks of the end-to-end folder
PRED_ERROR = 0.03  # fraction of predicted pixels redrawn at random (imbalanced case)
IGNORE_FRACTION = 0.005  # fraction of truth pixels set to the ignore index (ignore case)

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- data


def _draw(rng: np.random.Generator, shape: tuple[int, int], p: tuple[float, ...]) -> np.ndarray:
    """Labels with class probabilities ``p`` (uint16 thresholds, no float temporaries)."""
    u = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
    labels = np.zeros(shape, dtype=np.uint8)
    for edge in np.cumsum(p)[:-1]:
        labels += u >= np.uint16(round(edge * (1 << 16)))
    return labels


def make_pair(kind: str, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded truth/prediction pair of ``side``×``side`` uint8 label maps.

    ``uniform``: both uniform over 5 classes, independent. ``imbalanced`` (``sparse``): truth
    drawn from ``IMBALANCED_P`` (``SPARSE_P``), the prediction equals it except ``PRED_ERROR``
    of the pixels redrawn. ``ignore``: ``imbalanced`` with ``IGNORE_FRACTION`` of the truth
    set to 255.
    """
    rng = np.random.default_rng(seed)
    shape = (side, side)
    if kind == "uniform":
        return (
            rng.integers(0, N_CLASSES, size=shape, dtype=np.uint8),
            rng.integers(0, N_CLASSES, size=shape, dtype=np.uint8),
        )
    p = SPARSE_P if kind == "sparse" else IMBALANCED_P
    truth = _draw(rng, shape, p)
    flip = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16) < round(PRED_ERROR * (1 << 16))
    pred = np.where(flip, _draw(rng, shape, p), truth)
    if kind == "ignore":
        drop = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
        truth[drop < round(IGNORE_FRACTION * (1 << 16))] = IGNORE
    return truth, pred


# --------------------------------------------------------------------------- candidates


def ours(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The library kernel under test."""
    from tinyseg_cli.metrics.counts import confusion_matrix

    return confusion_matrix(truth, pred, n_classes=N_CLASSES, ignore_index=IGNORE)


def np_whole(dtype: type) -> Kernel:
    """Plain numpy: one ``bincount`` of the whole-array index ``truth*K + pred`` in ``dtype``."""

    def run(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
        index = np.multiply(truth.reshape(-1), dtype(N_CLASSES), dtype=dtype)
        np.add(index, pred.reshape(-1), out=index, casting="unsafe")
        return np.bincount(index, minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)

    return run


def np_chunked(dtype: type, chunk: int = CHUNK) -> Kernel:
    """Plain numpy: ``bincount`` of the ``dtype`` index over flat chunks of ``chunk`` pixels."""

    def run(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
        t, p = truth.reshape(-1), pred.reshape(-1)
        counts = np.zeros(N_CLASSES**2, dtype=np.int64)
        for start in range(0, t.size, chunk):
            index = np.multiply(t[start : start + chunk], dtype(N_CLASSES), dtype=dtype)
            np.add(index, p[start : start + chunk], out=index, casting="unsafe")
            counts += np.bincount(index, minlength=N_CLASSES**2)
        return counts.reshape(N_CLASSES, N_CLASSES)

    return run


def np_masked_chunked(truth: np.ndarray, pred: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Plain numpy with an ignore index: drop ignored pixels per chunk, uint8 index."""
    t, p = truth.reshape(-1), pred.reshape(-1)
    counts = np.zeros(N_CLASSES**2, dtype=np.int64)
    for start in range(0, t.size, chunk):
        tc, pc = t[start : start + chunk], p[start : start + chunk]
        keep = tc != IGNORE
        index = np.multiply(tc[keep], np.uint8(N_CLASSES), dtype=np.uint8)
        np.add(index, pc[keep], out=index)
        counts += np.bincount(index, minlength=N_CLASSES**2)
    return counts.reshape(N_CLASSES, N_CLASSES)


def np_skip_background(truth: np.ndarray, pred: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Plain numpy, uint8 index in chunks, but when index 0 (background/background) holds
    most of a chunk, count it with ``count_nonzero`` and ``bincount`` only the rest.

    ``bincount`` slows down when most pixels hit one counter (each increment waits for the
    previous one); tiny-target maps are mostly background, so skipping it pays off there.
    """
    t, p = truth.reshape(-1), pred.reshape(-1)
    counts = np.zeros(N_CLASSES**2, dtype=np.int64)
    for start in range(0, t.size, chunk):
        index = np.multiply(t[start : start + chunk], np.uint8(N_CLASSES), dtype=np.uint8)
        np.add(index, p[start : start + chunk], out=index)
        nonzero = np.count_nonzero(index)
        if 2 * nonzero < index.size:
            counts += np.bincount(index[index.view(bool)], minlength=N_CLASSES**2)
            counts[0] += index.size - nonzero
        else:
            counts += np.bincount(index, minlength=N_CLASSES**2)
    return counts.reshape(N_CLASSES, N_CLASSES)


NUMPY_VARIANTS: dict[str, Kernel] = {
    "numpy int64 index, whole array": np_whole(np.int64),
    "numpy uint8 index, whole array": np_whole(np.uint8),
    "numpy uint8 index, 1M chunks": np_chunked(np.uint8),
    "numpy int32 index, 1M chunks": np_chunked(np.int32),
    "numpy intp index, 1M chunks": np_chunked(np.intp),
}
# Measured and shown, but outside the SPEC §8 baseline set the target is computed over.
EXTRA_VARIANTS: dict[str, Kernel] = {
    "extra: numpy uint8 1M, skip background": np_skip_background,
}


def sklearn_cm(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``sklearn.metrics.confusion_matrix`` with labels 0..K-1."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(truth.reshape(-1), pred.reshape(-1), labels=list(range(N_CLASSES)))


def torchmetrics_cm(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """torchmetrics' functional ``multiclass_confusion_matrix`` on CPU (no validation)."""
    import torch
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    return multiclass_confusion_matrix(
        torch.from_numpy(pred), torch.from_numpy(truth), N_CLASSES, validate_args=False
    ).numpy()


def smp_stats(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``smp.metrics.get_stats`` (multiclass) as a 4×K array of TP, FP, FN, TN."""
    import segmentation_models_pytorch as smp
    import torch

    stats = smp.metrics.get_stats(
        torch.from_numpy(pred)[None],
        torch.from_numpy(truth)[None],
        mode="multiclass",
        num_classes=N_CLASSES,
    )
    return np.stack([s[0].numpy() for s in stats])


def ovr(matrix: np.ndarray) -> np.ndarray:
    """TP, FP, FN, TN per class (4×K) of a confusion matrix (rows truth)."""
    tp = np.diagonal(matrix).astype(np.int64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    tn = int(matrix.sum()) - tp - fp - fn
    return np.stack([tp, fp, fn, tn])


def copy_both(buffers: tuple[np.ndarray, np.ndarray]) -> Kernel:
    """The bandwidth bound: copy both maps into preallocated buffers."""

    def run(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
        np.copyto(buffers[0], truth)
        np.copyto(buffers[1], pred)
        return buffers[0]

    return run


# --------------------------------------------------------------------------- benchmarks


def bench_kernel(kind: str, side: int, repeats: int, section: Section) -> None:
    """Time every candidate on one ``kind`` of pair and record ratios and targets."""
    start = time.perf_counter()
    truth, pred = make_pair(kind, side)
    if kind == "ignore":
        console.print(
            f"ignore pair: {IGNORE_FRACTION:.1%} of the truth is {IGNORE}, so ours counts "
            "byte pairs in a 256×256 table; compared with a masked numpy count (no target)"
        )
    gen_s = time.perf_counter() - start
    pixels = truth.size
    if kind == "ignore":
        fast: dict[str, Kernel] = {
            "ours": ours,
            "numpy uint8 index, 1M chunks, masked": np_masked_chunked,
        }
    else:
        buffers = (np.empty_like(truth), np.empty_like(pred))
        fast = {
            "ours": ours,
            **NUMPY_VARIANTS,
            **EXTRA_VARIANTS,
            "memory copy (both maps)": copy_both(buffers),
        }
    times, results = interleaved(
        {k: (lambda f=f: f(truth, pred)) for k, f in fast.items()}, repeats
    )
    reference = results["ours"]
    measures: dict[str, Measure] = {}
    exact: dict[str, bool | None] = {}
    for name, seconds in times.items():
        measures[name] = Measure(name, seconds, pixels)
        if name in EXTRA_VARIANTS:
            measures[name].note = "not in the target's baseline set"
        exact[name] = (
            None if name.startswith("memory") else bool(np.array_equal(results[name], reference))
        )

    if kind != "ignore":
        sub = truth.shape[0] // SKLEARN_FRACTION
        t_sub, p_sub = truth[:sub], pred[:sub]
        seconds, cm = best_of(lambda: sklearn_cm(t_sub, p_sub), repeats=3, warmup=0)
        name = f"sklearn confusion_matrix (1/{SKLEARN_FRACTION} of pixels)"
        measures[name] = Measure(name, seconds, t_sub.size, "timed on a subsample")
        exact[name] = bool(np.array_equal(cm, ours(t_sub, p_sub)))
        peer_repeats = 2 if pixels > 1 << 24 else 3  # slow peers: fewer repeats
        seconds, cm = best_of(lambda: torchmetrics_cm(truth, pred), peer_repeats)
        name = "torchmetrics multiclass_confusion_matrix"
        measures[name] = Measure(name, seconds, pixels, "CPU, validate_args=False")
        exact[name] = bool(np.array_equal(cm, reference))
        seconds, stats = best_of(lambda: smp_stats(truth, pred), peer_repeats)
        name = "smp.metrics.get_stats (multiclass)"
        measures[name] = Measure(name, seconds, pixels, "uint8 tensors, float32 histc")
        exact[name] = bool(np.array_equal(stats, ovr(reference)))
        if not exact[name]:
            measures[name].note += f"; max |error| {int(np.abs(stats - ovr(reference)).max()):,}"

    ours_m = measures["ours"]
    table = Table(
        title=f"score kernel — {kind} {side}×{side} uint8, {N_CLASSES} classes "
        f"({pixels / 1e6:.1f} Mpix per map; best of {repeats})",
        title_justify="left",
    )
    for col, just in (
        ("candidate", "left"),
        ("time", "right"),
        ("Gpix/s", "right"),
        ("ours / X", "right"),
        ("exact", "center"),
        ("note", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for name, m in measures.items():
        ratio = ours_m.gpix_s / m.gpix_s if m.gpix_s else float("nan")
        mark = {True: "[green]yes[/]", False: "[bold red]NO[/]", None: "-"}[exact[name]]
        table.add_row(
            name,
            fmt_seconds(m.seconds),
            f"{m.gpix_s:.3f}",
            "-" if name == "ours" else f"{ratio:.2f}x",
            mark,
            m.note,
        )
    console.print(table)

    numpy_names = [n for n in measures if n.startswith("numpy")]
    best_np = max(numpy_names, key=lambda n: measures[n].gpix_s)
    r_np = ours_m.gpix_s / measures[best_np].gpix_s
    section.ratios.append((f"{kind}: ours Gpix/s", ours_m.gpix_s, ""))
    if kind == "ignore":
        section.ratios.append(
            (
                f"{kind}: ours / masked numpy (info, no target)",
                r_np,
                f"{IGNORE_FRACTION:.1%} of truth = {IGNORE}: the kernel's byte-pair table",
            )
        )
    else:
        section.ratios.append((f"{kind}: ours / best numpy", r_np, best_np))
        for extra in EXTRA_VARIANTS:
            section.ratios.append(
                (
                    f"{kind}: ours / {extra.removeprefix('extra: ')}",
                    ours_m.gpix_s / measures[extra].gpix_s,
                    "info, no target: not a SPEC baseline variant",
                )
            )
        sk = next(n for n in measures if n.startswith("sklearn"))
        r_sk = ours_m.gpix_s / measures[sk].gpix_s
        tm = "torchmetrics multiclass_confusion_matrix"
        sm = "smp.metrics.get_stats (multiclass)"
        copy = "memory copy (both maps)"
        section.ratios += [
            (f"{kind}: ours / sklearn", r_sk, f"sklearn on 1/{SKLEARN_FRACTION} of the pixels"),
            (f"{kind}: ours / torchmetrics", ours_m.gpix_s / measures[tm].gpix_s, ""),
            (
                f"{kind}: ours / smp get_stats",
                ours_m.gpix_s / measures[sm].gpix_s,
                "" if exact[sm] else "smp counts are wrong here",
            ),
            (
                f"{kind}: ours / memory copy",
                ours_m.gpix_s / measures[copy].gpix_s,
                "bandwidth bound",
            ),
        ]
        section.targets += [
            Target(
                f"{kind}: ours >= 0.8x best numpy bincount",
                r_np,
                0.8,
                ">=",
                f"best: {best_np} ({measures[best_np].gpix_s:.3f} Gpix/s)",
            ),
            Target(
                f"{kind}: ours >= 10x sklearn",
                r_sk,
                10.0,
                ">=",
                f"sklearn {measures[sk].gpix_s * 1e3:.1f} Mpix/s on a 1/"
                f"{SKLEARN_FRACTION} subsample",
            ),
        ]
    wrong = [n for n, ok in exact.items() if ok is False]
    if not corner_check(truth, pred):
        console.print(f"[bold red]ERROR[/]: ours disagrees with np.add.at on the {kind} pair")
    for name in wrong:
        console.print(f"[yellow]note[/]: {name} disagrees with ours on the {kind} pair")
    section.raw[f"kernel_{kind}"] = {
        "side": side,
        "pixels": pixels,
        "generate_s": gen_s,
        "repeats": repeats,
        "best_numpy": best_np,
        "candidates": {
            n: {
                "seconds": m.seconds,
                "pixels": m.pixels,
                "gpix_s": m.gpix_s,
                "exact": exact[n],
                "note": m.note,
            }
            for n, m in measures.items()
        },
        "ours_matrix": reference.tolist(),
    }


def corner_check(truth: np.ndarray, pred: np.ndarray, rows: int = 64) -> bool:
    """Ours equals an independent ``np.add.at`` count on the first ``rows`` rows."""
    t = truth[:rows].reshape(-1).astype(np.int64)
    p = pred[:rows].reshape(-1).astype(np.int64)
    keep = t != IGNORE
    direct = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(direct, (t[keep], p[keep]), 1)
    return bool(np.array_equal(direct, ours(truth[:rows], pred[:rows])))


def bench_memory(side: int, section: Section) -> None:
    """Peak extra memory of the kernel (tracemalloc) on a ``side``² uniform pair."""
    truth, pred = make_pair("uniform", side, seed=1)
    tracemalloc.start()
    ours(truth, pred)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mib = peak / 2**20
    section.ratios.append(
        (
            "kernel peak extra memory (MiB)",
            mib,
            f"inputs {2 * truth.nbytes / 2**20:.0f} MiB; tracemalloc",
        )
    )
    section.raw["kernel_peak_extra_bytes"] = peak
    console.print(
        f"kernel peak extra memory on a {side}² pair: {mib:.1f} MiB "
        f"(inputs {2 * truth.nbytes / 2**20:.0f} MiB)"
    )


def exactness_side() -> int:
    """A side whose square exceeds 2**24 per torch thread (histc splits work by thread)."""
    import torch

    need = math.sqrt((1 << 24) * max(1, torch.get_num_threads()) * 1.1)
    return max(8192, math.ceil(need / 1024) * 1024)


def bench_exactness(section: Section) -> None:
    """Counts beyond 2**24 pixels of one class: ours exact, smp (float32 histc) wrong."""
    import torch

    side = exactness_side()
    n = side * side
    truth = np.ones((side, side), dtype=np.uint8)
    flat_t = truth.reshape(-1)
    zeros = np.arange(1000) * (n // 1000)  # 1000 class-0 pixels spread over the map
    flat_t[zeros] = 0
    pred = truth.copy()
    flat_p = pred.reshape(-1)
    flat_p[zeros[:333]] = 1  # 333 class-0 pixels predicted as 1
    flat_p[zeros[:777] + 1] = 2  # 777 class-1 pixels predicted as 2
    expected = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    expected[0, 0], expected[0, 1] = 1000 - 333, 333
    expected[1, 1], expected[1, 2] = n - 1000 - 777, 777
    want = ovr(expected)
    got_ours = ovr(ours(truth, pred))
    got_tm = ovr(torchmetrics_cm(truth, pred))
    got_smp = smp_stats(truth, pred)

    table = Table(
        title=f"exactness — {side}×{side}: {n - 1000:,} truth pixels of class 1 "
        f"(2**24 = {1 << 24:,}; torch threads: {torch.get_num_threads()})",
        title_justify="left",
    )
    for col in ("count", "expected", "ours", "torchmetrics", "smp get_stats", "smp − expected"):
        table.add_column(col, justify="left" if col == "count" else "right")
    stats = ("TP", "FP", "FN", "TN")
    for c in range(N_CLASSES):
        for s in range(4):
            shown = (c, s) == (1, 0) or got_smp[s, c] != want[s, c] or got_ours[s, c] != want[s, c]
            if shown:
                diff = int(got_smp[s, c] - want[s, c])
                table.add_row(
                    f"class {c} {stats[s]}",
                    f"{want[s, c]:,}",
                    f"{got_ours[s, c]:,}",
                    f"{got_tm[s, c]:,}",
                    f"{got_smp[s, c]:,}",
                    f"[bold red]{diff:+,}[/]" if diff else "0",
                )
    console.print(table)
    err_ours = int(np.abs(got_ours - want).max())
    err_smp = int(np.abs(got_smp - want).max())
    err_tm = int(np.abs(got_tm - want).max())
    console.print(
        f"max |error| over all {4 * N_CLASSES} counts: ours {err_ours}, "
        f"torchmetrics {err_tm}, smp {err_smp:,}"
    )
    section.targets.append(
        Target(
            "exact counts > 2**24 px of one class (ours max |error|)",
            err_ours,
            0,
            "<=",
            f"smp get_stats max |error| {err_smp:,} on the same pair",
        )
    )
    section.ratios.append(
        ("exactness: smp get_stats max |error| (pixels)", err_smp, "float32 histc; ours is exact")
    )
    section.raw["exactness"] = {
        "side": side,
        "pixels": n,
        "torch_threads": torch.get_num_threads(),
        "expected": want.tolist(),
        "ours": got_ours.tolist(),
        "torchmetrics": got_tm.tolist(),
        "smp": got_smp.tolist(),
        "max_error": {"ours": err_ours, "torchmetrics": err_tm, "smp": err_smp},
    }


def run(quick: bool = False) -> Section:
    """All kernel benchmarks; ``quick`` uses 2048² maps."""
    section = Section("score kernel")
    side = 2048 if quick else 8192
    repeats = 7 if quick else 5
    for kind in ("uniform", "imbalanced", "sparse", "ignore"):
        bench_kernel(kind, side, repeats, section)
    bench_memory(side, section)
    bench_exactness(section)
    return section


def main() -> Any:
    """Run the kernel benchmarks alone (``python benchmarks/bench_score.py [--quick]``)."""
    import sys

    return run(quick="--quick" in sys.argv[1:])


if __name__ == "__main__":
    main()

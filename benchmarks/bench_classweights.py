"""`tinyseg classweights` over a folder of masks: end to end and its counting kernel, in Mpix/s.

Issue 3: `classweights` over 100 masks of 2048×2048. Compared with decoding the same files
alone (the floor for any reader) and with a plain ``np.bincount`` per mask. No SPEC target:
the numbers are reported.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from bench_score_e2e import _objects, _paint, _ready, run_cli
from common import Section, Target, console, cores, fmt_seconds, interleaved, warn_if_busy
from decode_only import decode_all
from rich.table import Table

N_CLASSES = 4


def make_folder(root: Path, n_masks: int, side: int, seed: int = 0) -> Path:
    """``n_masks`` seeded PNG masks of tiny targets (cracks, pores, inclusions)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "masks"
    folder.mkdir()
    for i in range(n_masks):
        Image.fromarray(_paint(_objects(rng, side), side)).save(folder / f"mask_{i:04d}.png")
    return folder


def load(paths: list[str]) -> list[np.ndarray]:
    from PIL import Image

    arrays = []
    for path in paths:
        with Image.open(path) as image:
            arrays.append(np.asarray(image))
    return arrays


def kernel(arrays: list[np.ndarray]) -> np.ndarray:
    """The library's per-mask counting (blocks of rows, ignore label 255 checked)."""
    from tinyseg_cli.metrics.counts import label_counts

    return np.sum([label_counts(a, N_CLASSES, 255) for a in arrays], axis=0)


def plain_bincount(arrays: list[np.ndarray]) -> np.ndarray:
    """A plain ``np.bincount`` of each whole mask (no ignore label, no range check)."""
    counts = [np.bincount(a.reshape(-1), minlength=N_CLASSES) for a in arrays]
    return np.sum(counts, axis=0)


def weights_pixels(out: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return np.asarray(pq.read_table(out)["pixels"].to_pylist(), np.int64)


def run(quick: bool = False) -> Section:
    """Generate the folder, then time decoding, the kernel and ``tinyseg classweights``."""
    section = Section("classweights")
    n_masks, side = (20, 1024) if quick else (100, 2048)
    jobs = cores()
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="tinyseg-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        folder = make_folder(root, n_masks, side)
        gen_s = time.perf_counter() - start
        paths = sorted(str(p) for p in folder.iterdir())
        size_mb = sum(Path(p).stat().st_size for p in paths) / 1e6
        console.print(
            f"folder: {n_masks} PNG masks of {side}×{side}, {N_CLASSES} classes, "
            f"{size_mb:.1f} MB; generated in {gen_s:.1f} s"
        )
        (root / "tiny").mkdir()
        tiny = make_folder(root / "tiny", 2, 64)  # start-up: the same command on 2 small masks
        out = root / "weights.parquet"
        options = ["--scheme", "iscf", "-o", str(out), "--force", "-q"]
        base = ["classweights", str(folder), *options]
        section.raw["cpu_busy_before"] = warn_if_busy("the classweights timings")
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(_ready, range(jobs)))
            times, _ = interleaved(
                {
                    "decode_n": lambda: decode_all(paths, jobs, pool),
                    "startup": lambda: run_cli(["classweights", str(tiny), *options]),
                    "e2e_n": lambda: run_cli([*base, "--jobs", str(jobs)]),
                    "e2e_1": lambda: run_cli([*base, "--jobs", "1"]),
                },
                repeats,
            )
        arrays = load(paths[: min(len(paths), 20)])  # the kernel alone, on decoded masks
        kernel_times, kernel_results = interleaved(
            {"kernel": lambda: kernel(arrays), "bincount": lambda: plain_bincount(arrays)},
            repeats + 2,
        )
        direct = sum(plain_bincount(load([path])) for path in paths)
        exact = bool(np.array_equal(weights_pixels(out), direct))
    exact_kernel = bool(np.array_equal(kernel_results["kernel"], kernel_results["bincount"]))
    pixels = n_masks * side * side
    kernel_pixels = sum(a.size for a in arrays)
    rows = [
        (f"decode only, {jobs} processes", times["decode_n"], pixels, ""),
        ("tinyseg classweights, 2 masks of 64² (start-up)", times["startup"], 2 * 64 * 64, ""),
        (f"tinyseg classweights --jobs {jobs}", times["e2e_n"], pixels, "incl. start-up"),
        ("tinyseg classweights --jobs 1", times["e2e_1"], pixels, "incl. start-up"),
        ("kernel: label_counts", kernel_times["kernel"], kernel_pixels, "decoded masks, 1 core"),
        ("plain np.bincount", kernel_times["bincount"], kernel_pixels, "no ignore, no checks"),
    ]
    table = Table(
        title=f"classweights — {n_masks} masks, {pixels / 1e6:.0f} Mpix (best of {repeats})",
        title_justify="left",
    )
    for col in ("what", "time", "Mpix/s", "note"):
        table.add_column(col, justify="left" if col in ("what", "note") else "right")
    for name, seconds, count, note in rows:
        table.add_row(name, fmt_seconds(seconds), f"{count / seconds / 1e6:,.0f}", note)
    console.print(table)
    e2e_rate = pixels / times["e2e_n"] / 1e6
    section.ratios += [
        (f"e2e --jobs {jobs} Mpix/s", e2e_rate, "incl. start-up"),
        (
            f"e2e --jobs {jobs} Mpix/s, start-up excluded",
            pixels / max(times["e2e_n"] - times["startup"], 1e-9) / 1e6,
            f"start-up {times['startup']:.2f} s subtracted",
        ),
        ("e2e --jobs 1 Mpix/s", pixels / times["e2e_1"] / 1e6, "incl. start-up"),
        (f"e2e --jobs {jobs} / decode ({jobs} proc)", times["e2e_n"] / times["decode_n"], ""),
        ("kernel Mpix/s", kernel_pixels / kernel_times["kernel"] / 1e6, "1 core"),
        ("kernel / plain bincount time", kernel_times["kernel"] / kernel_times["bincount"], ""),
    ]
    section.targets.append(
        Target(
            "classweights pixel counts equal numpy's",
            float(exact and exact_kernel),
            1,
            ">=",
            "weights table 'pixels' vs np.bincount of every mask",
        )
    )
    section.raw["classweights"] = {
        "masks": n_masks,
        "side": side,
        "files_mb": size_mb,
        "jobs": jobs,
        "generate_s": gen_s,
        "seconds": times,
        "kernel_seconds": kernel_times,
        "kernel_pixels": kernel_pixels,
    }
    return section


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])

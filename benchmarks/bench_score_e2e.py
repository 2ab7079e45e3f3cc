"""`tinyseg score` end to end over a folder of TIFF/PNG pairs, against decoding alone.

SPEC §8 target: with ``--jobs`` = cores, scoring a folder takes <= 1.25x the time needed just
to decode its files (decoded here by the same number of worker processes).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from common import Section, Target, console, cores, fmt_seconds, interleaved, warn_if_busy
from decode_only import decode_all
from rich.table import Table

N_CLASSES = 4  # background, crack, pore, inclusion
TIFF_COMPRESSION = "zlib"  # masks are usually stored compressed; 'none' writes raw strips


# --------------------------------------------------------------------------- data


def _disc(out: np.ndarray, cy: int, cx: int, r: int, label: int) -> None:
    """Paint a filled disc of radius ``r`` (clipped to the map)."""
    h, w = out.shape
    y0, y1, x0, x1 = max(cy - r, 0), min(cy + r + 1, h), max(cx - r, 0), min(cx + r + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    out[y0:y1, x0:x1][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = label


def _crack(out: np.ndarray, points: np.ndarray, width: int, label: int) -> None:
    """Paint a polyline of ``width`` pixels through ``points`` (k×2, y and x)."""
    h, w = out.shape
    segments = []
    for (ya, xa), (yb, xb) in itertools.pairwise(points):
        steps = int(max(abs(yb - ya), abs(xb - xa))) + 1
        segments.append(np.stack([np.linspace(ya, yb, steps), np.linspace(xa, xb, steps)], 1))
    path = np.rint(np.concatenate(segments)).astype(np.int64)
    for dy in range(width):
        for dx in range(width):
            ys, xs = path[:, 0] + dy, path[:, 1] + dx
            ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
            out[ys[ok], xs[ok]] = label


def _objects(rng: np.random.Generator, side: int) -> list[tuple[Any, ...]]:
    """A random set of tiny targets: a few cracks, some pores and inclusions."""
    objects: list[tuple[Any, ...]] = []
    for _ in range(rng.integers(0, 4)):
        start = rng.integers(0, side, 2)
        walk = np.cumsum(rng.normal(0, 25, (rng.integers(3, 9), 2)), axis=0) + start
        objects.append(("crack", walk, int(rng.integers(1, 4)), 1))
    for _ in range(rng.integers(5, 40)):
        objects.append(("disc", *rng.integers(0, side, 2), int(rng.integers(2, 9)), 2))
    for _ in range(rng.integers(0, 12)):
        objects.append(("disc", *rng.integers(0, side, 2), int(rng.integers(6, 20)), 3))
    return objects


def _paint(objects: list[tuple[Any, ...]], side: int) -> np.ndarray:
    out = np.zeros((side, side), dtype=np.uint8)
    for obj in objects:
        if obj[0] == "crack":
            _crack(out, obj[1], obj[2], obj[3])
        else:
            _disc(out, int(obj[1]), int(obj[2]), obj[3], obj[4])
    return out


def _predicted(
    rng: np.random.Generator, objects: list[tuple[Any, ...]], side: int
) -> list[tuple[Any, ...]]:
    """A plausible prediction: most targets found, slightly off, plus some false alarms."""
    found: list[tuple[Any, ...]] = []
    for obj in objects:
        if rng.random() < 0.15:  # missed
            continue
        if obj[0] == "crack":
            found.append(("crack", obj[1] + rng.normal(0, 1.0, obj[1].shape), obj[2], obj[3]))
        else:
            _, cy, cx, r, label = obj
            jitter = rng.integers(-2, 3, 2)
            found.append(
                (
                    "disc",
                    cy + jitter[0],
                    cx + jitter[1],
                    max(1, r + int(rng.integers(-1, 2))),
                    label,
                )
            )
    for _ in range(rng.integers(0, 6)):  # false alarms
        found.append(
            (
                "disc",
                *rng.integers(0, side, 2),
                int(rng.integers(2, 7)),
                int(rng.integers(1, N_CLASSES)),
            )
        )
    return found


def write_map(path: Path, labels: np.ndarray) -> None:
    """TIFF through tifffile or PNG through Pillow, by suffix."""
    if path.suffix == ".tif":
        import tifffile

        compression = None if TIFF_COMPRESSION == "none" else TIFF_COMPRESSION
        tifffile.imwrite(path, labels, compression=compression)
    else:
        from PIL import Image

        Image.fromarray(labels).save(path)


def make_folder(root: Path, n_pairs: int, side: int, seed: int = 0) -> tuple[Path, Path]:
    """``n_pairs`` seeded truth/prediction pairs (half TIFF, half PNG) under ``root``."""
    rng = np.random.default_rng(seed)
    truth_dir, pred_dir = root / "truth", root / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    for i in range(n_pairs):
        objects = _objects(rng, side)
        name = f"sample_{i:04d}" + (".tif" if i % 2 == 0 else ".png")
        write_map(truth_dir / name, _paint(objects, side))
        write_map(pred_dir / name, _paint(_predicted(rng, objects, side), side))
    return truth_dir, pred_dir


# --------------------------------------------------------------------------- decode baseline


def _ready(_: int) -> int:
    import tifffile  # noqa: F401
    from PIL import Image  # noqa: F401

    return 0


def direct_counts(truth_dir: Path, pred_dir: Path) -> np.ndarray:
    """Confusion matrix of the whole folder by plain numpy (to validate tinyseg's counts)."""
    total = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    for t in sorted(truth_dir.iterdir()):
        truth = _read(t).astype(np.int64).reshape(-1)
        pred = _read(pred_dir / t.name).astype(np.int64).reshape(-1)
        total += np.bincount(truth * N_CLASSES + pred, minlength=N_CLASSES**2).reshape(
            N_CLASSES, N_CLASSES
        )
    return total


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".tif":
        import tifffile

        return tifffile.imread(path)
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


# --------------------------------------------------------------------------- tinyseg


def tinyseg_exe() -> Path:
    """The ``tinyseg`` console script of the running interpreter's environment."""
    exe = Path(sys.executable).parent / "tinyseg"
    if not exe.exists():
        raise SystemExit(f"{exe} not found: install the package (make install)")
    return exe


def run_cli(args: list[str]) -> float:
    """Wall time of one ``tinyseg`` invocation; fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run([str(tinyseg_exe()), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"tinyseg {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    return seconds


def validate(truth_dir: Path, pred_dir: Path, work: Path) -> bool:
    """tinyseg's counts table, summed per class, equals a plain numpy count of the folder."""
    import pyarrow.parquet as pq

    out = work / "counts.parquet"
    run_cli(
        [
            "score",
            "--truth",
            str(truth_dir),
            "--pred",
            str(pred_dir),
            "--jobs",
            "1",
            "--classes",
            ",".join(f"c{i}" for i in range(N_CLASSES)),
            "--counts-out",
            str(out),
            "-q",
        ]
    )
    cols = pq.read_table(out).to_pydict()
    matrix = direct_counts(truth_dir, pred_dir)
    tp = np.diagonal(matrix)
    fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
    want = {"tp": tp, "fp": fp, "fn": fn, "tn": matrix.sum() - tp - fp - fn}
    ok = True
    for stat, expected in want.items():
        got = np.zeros(N_CLASSES, dtype=np.int64)
        np.add.at(got, np.asarray(cols["class_index"]), np.asarray(cols[stat], dtype=np.int64))
        ok &= bool(np.array_equal(got, expected))
    return ok


# --------------------------------------------------------------------------- benchmark


def run_program(args: list[str]) -> float:
    """Wall time of one Python program (the decode-only baseline) in a fresh interpreter."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def run(quick: bool = False) -> Section:
    """Generate the folder, then time decoding and ``tinyseg score`` at 1 and all cores.

    Both sides run as programs started from the shell, so both pay an interpreter and their
    imports: the decode-only program (``decode_only.py``) and ``tinyseg score``. Start-up is
    measured on a folder of two 64×64 pairs and subtracted for the per-pixel ratio. Decoding
    in this process's warm pool is shown for reference.
    """
    section = Section("score end to end")
    n_pairs, side = (40, 1024) if quick else (200, 1024)
    jobs = cores()
    repeats = 3 if quick else 7
    decoder = str(Path(__file__).with_name("decode_only.py"))
    with tempfile.TemporaryDirectory(prefix="tinyseg-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        (root / "big").mkdir()
        truth_dir, pred_dir = make_folder(root / "big", n_pairs, side)
        gen_s = time.perf_counter() - start
        (root / "tiny").mkdir()
        tiny_truth, tiny_pred = make_folder(root / "tiny", 2, 64)
        paths = sorted(str(p) for d in (truth_dir, pred_dir) for p in d.iterdir())
        size_mb = sum(Path(p).stat().st_size for p in paths) / 1e6
        fg = float(np.mean([(_read(Path(p)) > 0).mean() for p in paths[: len(paths) // 2]]))
        console.print(
            f"folder: {n_pairs} pairs of {side}×{side} uint8 labels, {N_CLASSES} "
            f"classes, half TIFF ({TIFF_COMPRESSION}) half PNG, {size_mb:.1f} MB, "
            f"foreground {fg:.2%}; generated in {gen_s:.1f} s"
        )

        counts_ok = validate(truth_dir, pred_dir, root)
        if not counts_ok:
            console.print("[bold red]ERROR[/]: tinyseg's counts differ from a numpy count")

        def score(truth: Path, pred: Path, n_jobs: int) -> Callable[[], float]:
            args = ["score", "--truth", str(truth), "--pred", str(pred), "-q"]
            return lambda: run_cli([*args, "--jobs", str(n_jobs)])

        def decode_program(folders: tuple[Path, Path], n_jobs: int) -> Callable[[], float]:
            return lambda: run_program([decoder, str(n_jobs), *map(str, folders)])

        section.raw["cpu_busy_before"] = warn_if_busy("the end-to-end timings")
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(_ready, range(jobs)))  # workers started and warm before timing
            # Round-robin, so that load from elsewhere hits every candidate alike.
            times, _ = interleaved(
                {
                    "decode_n": decode_program((truth_dir, pred_dir), jobs),
                    "decode_1": decode_program((truth_dir, pred_dir), 1),
                    "decode_startup": decode_program((tiny_truth, tiny_pred), jobs),
                    "decode_warm": lambda: decode_all(paths, jobs, pool),
                    "e2e_n": score(truth_dir, pred_dir, jobs),
                    "e2e_1": score(truth_dir, pred_dir, 1),
                    "startup": score(tiny_truth, tiny_pred, jobs),
                },
                repeats,
            )
    t = times
    pixels = 2 * n_pairs * side * side
    rows = [
        (f"decode-only program, {jobs} processes", t["decode_n"], "fresh interpreter"),
        ("decode-only program, 1 process", t["decode_1"], "fresh interpreter"),
        (f"decode in a warm pool of {jobs}", t["decode_warm"], "no start-up (reference)"),
        (f"tinyseg score --jobs {jobs} -q", t["e2e_n"], "fresh interpreter"),
        ("tinyseg score --jobs 1 -q", t["e2e_1"], "fresh interpreter"),
    ]
    table = Table(
        title=f"score end to end — {n_pairs} pairs, {pixels / 1e6:.0f} Mpix decoded "
        f"(best of {repeats})",
        title_justify="left",
        caption=f"start-up (2 pairs of 64×64): decode-only program {t['decode_startup']:.3f} s, "
        f"tinyseg score {t['startup']:.3f} s",
        caption_justify="left",
    )
    for col, just in (("what", "left"), ("time", "right"), ("Mpix/s", "right"), ("note", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for name, seconds, note in rows:
        table.add_row(name, fmt_seconds(seconds), f"{pixels / seconds / 1e6:.0f}", note)
    console.print(table)

    r_n = t["e2e_n"] / t["decode_n"]
    r_n_work = (t["e2e_n"] - t["startup"]) / (t["decode_n"] - t["decode_startup"])
    r_1 = t["e2e_1"] / t["decode_1"]
    section.ratios += [
        (f"e2e --jobs {jobs} / decode-only program ({jobs} proc)", r_n, "both fresh processes"),
        (
            f"e2e --jobs {jobs} / decode, start-ups subtracted",
            r_n_work,
            f"start-up {t['startup']:.2f} s vs {t['decode_startup']:.2f} s",
        ),
        ("e2e --jobs 1 / decode-only program (1 proc)", r_1, "both fresh processes"),
        (
            f"e2e --jobs {jobs} / decode in a warm pool",
            t["e2e_n"] / t["decode_warm"],
            "no start-up on the decode side",
        ),
        (
            f"e2e speed-up --jobs {jobs} vs --jobs 1",
            t["e2e_1"] / t["e2e_n"],
            f"decode speed-up {t['decode_1'] / t['decode_n']:.2f}",
        ),
        ("tinyseg score start-up (s)", t["startup"], "2 pairs of 64×64"),
        ("decode-only start-up (s)", t["decode_startup"], "2 pairs of 64×64"),
    ]
    section.targets += [
        Target(
            f"e2e --jobs {jobs} <= 1.25x decode",
            r_n,
            1.25,
            "<=",
            f"{t['e2e_n']:.2f} s vs decode-only program {t['decode_n']:.2f} s",
        ),
        Target(
            f"e2e --jobs {jobs} <= 1.25x decode (start-ups subtracted)",
            r_n_work,
            1.25,
            "<=",
            "per-pixel work",
        ),
        Target(
            "e2e counts equal a numpy count of the folder",
            float(counts_ok),
            1,
            ">=",
            "tinyseg --counts-out summed per class vs numpy",
        ),
    ]
    section.raw["e2e"] = {
        "pairs": n_pairs,
        "side": side,
        "classes": N_CLASSES,
        "files_mb": size_mb,
        "foreground_fraction": fg,
        "tiff_compression": TIFF_COMPRESSION,
        "jobs": jobs,
        "generate_s": gen_s,
        **{f"{name}_s": seconds for name, seconds in t.items()},
        "counts_ok": counts_ok,
    }
    return section


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])

"""`make bench`: run every benchmark, print a summary of ratios and PASS/FAIL per SPEC §8
target, and write the raw numbers to benchmarks/out/results.json.

Benchmarks report, they do not gate: the exit status is 0 even when a target fails.
``--quick`` runs a small variant (2048² maps, 40 file pairs, 20 masks of 1024² for
classweights) suitable for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # importable as a module too, not only as a script
    sys.path.insert(0, str(HERE))

import bench_classweights  # noqa: E402
import bench_infer  # noqa: E402
import bench_objects  # noqa: E402
import bench_resample  # noqa: E402
import bench_score  # noqa: E402
import bench_score_e2e  # noqa: E402
import bench_sparse  # noqa: E402
import bench_sweep  # noqa: E402
import bench_train  # noqa: E402
import bench_tune  # noqa: E402
import bench_voxelize  # noqa: E402
import numpy as np  # noqa: E402
from common import Section, console, cores, targets_table, warn_if_busy  # noqa: E402
from rich.rule import Rule  # noqa: E402
from rich.table import Table  # noqa: E402


def environment() -> dict[str, str | int]:
    """Versions and hardware the numbers belong to."""
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cores": cores(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sklearn": sklearn.__version__,
        "load_average_1min": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "-",
    }


def summary(sections: list[Section]) -> Table:
    """Every ratio of every section in one table."""
    table = Table(title="summary — ratios", title_justify="left")
    table.add_column("section")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("note", overflow="fold")
    for section in sections:
        for name, value, note in section.ratios:
            shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3f}"
            table.add_row(section.title, name, shown, note)
    return table


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks; returns 0 whatever the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast variant")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "out" / "results.json",
        help="where to write the raw numbers (JSON)",
    )
    parser.add_argument(
        "--only",
        choices=(
            "kernel",
            "e2e",
            "objects",
            "resample",
            "classweights",
            "infer",
            "train",
            "tune",
            "sparse",
            "voxelize",
            "sweep",
        ),
        help="run one benchmark only",
    )
    parser.add_argument(
        "--tiff-compression",
        choices=("zlib", "none"),
        default="zlib",
        help="how the end-to-end TIFFs are written (default zlib; 'none' "
        "lets tinyseg memory-map them)",
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    env = environment()
    console.print(Rule(f"tinyseg benchmarks ({'quick' if args.quick else 'full'})"))
    console.print(", ".join(f"{k} {v}" for k, v in env.items()))
    busy = warn_if_busy("the benchmarks")
    env["cpu_busy_before"] = "-" if busy is None else f"{busy:.2f}"
    sections: list[Section] = []
    bench_score_e2e.TIFF_COMPRESSION = args.tiff_compression
    for key, title, bench in (
        ("kernel", "score: counting kernel", bench_score.run),
        ("e2e", "score: end to end", bench_score_e2e.run),
        ("objects", "score --objects: vs pixels and peers", bench_objects.run),
        ("resample", "resample: candidate patches", bench_resample.run),
        ("classweights", "classweights: folder of masks", bench_classweights.run),
        ("infer", "infer: tiled vs full passes", bench_infer.run),
        ("train", "train: tinyseg vs a hand-written smp loop", bench_train.run),
        ("tune", "tune-oii: bisection vs grid (trainings)", bench_tune.run),
        ("sparse", "sparse: 3D U-Net step per backend", bench_sparse.run),
        ("voxelize", "voxelize: LAS/LAZ to voxels", bench_voxelize.run),
        ("sweep", "score --thresholds: sweeps and tolerance vs pyEdgeEval", bench_sweep.run),
    ):
        if args.only not in (None, key):
            continue
        console.print(Rule(title))
        t0 = time.perf_counter()
        section = bench(quick=args.quick)
        section.raw["elapsed_s"] = time.perf_counter() - t0
        console.print(f"({title} took {section.raw['elapsed_s']:.0f} s)")
        sections.append(section)
    elapsed = time.perf_counter() - start

    console.print(Rule("summary"))
    console.print(summary(sections))
    targets = [t for s in sections for t in s.targets]
    console.print(targets_table("summary — SPEC §8 targets", targets))
    failed = [t for t in targets if not t.passed]
    for t in failed:
        console.print(
            f"[bold red]FAIL[/]: {t.name}: measured {t.value:.3f}, required {t.op} {t.bound:g}"
        )
    console.print(
        f"{len(targets) - len(failed)}/{len(targets)} targets met; benchmarks took {elapsed:.0f} s"
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "mode": "quick" if args.quick else "full",
        "elapsed_s": elapsed,
        "environment": env,
        "sections": [s.as_json() for s in sections],
        "passed": len(targets) - len(failed),
        "failed": [t.name for t in failed],
    }
    args.out.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    console.print(f"raw numbers: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

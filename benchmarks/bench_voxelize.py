"""`tinyseg voxelize` on generated LAS and LAZ files: points/s and peak RSS against the
physical limits measured in the same run (SPEC §8, issue 10 item 7).

Files: 10 M points (2.5 M for the memory comparison) at 250 points/m² over 200 m (100 m)
squares, 30 m of height, RGB and intensity, five classes; 0.02 m voxels in 50 m tiles, so
nearly every point is its own voxel (the worst case). Peers, measured here:
- laspy chunked read alone (LAS), and lazrs decode alone (LAZ, laspy's default backend: lazrs
  on every core): the floors of any reader;
- read + packed-key ``torch.unique``: the same tile and voxel keys as voxelize (so its count
  of unique keys must equal voxelize's voxel rows), packed into int64 and made unique;
- ``np.unique(axis=0)`` on the integer coordinates: the naive peer, timed on a subsample and
  extrapolated linearly (labelled so);
- writing voxelize's own two tables again with pyarrow (same settings, one thread): what the
  output alone costs, which neither reference above pays (reported, not a target).
``tinyseg voxelize`` runs in a fresh process; its wall time includes start-up, and its peak
RSS is that process's own (``os.wait4``). Targets: end to end ≥ 0.5× "read + packed-key
unique" from LAS, ≤ 1.5× the decode time from LAZ, peak RSS of the 10 M file ≤ 1.25× that
of the 2.5 M file (memory bounded by chunk and tile, not by the file). Files are generated
once into benchmarks/out/voxelize and reused. ``--quick``: 4 M and 1 M points at 100 per m²,
25 m tiles.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import Section, Target, console, fmt_seconds, interleaved, warn_if_busy
from rich.table import Table

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "voxelize"
VOXEL = 0.02
CLASSES = (np.array([2, 5, 6, 1, 9], np.uint8), np.array([0.70, 0.20, 0.06, 0.035, 0.005]))
CHUNK = 1_000_000
MIB = 1 << 20


@dataclass(frozen=True)
class Setup:
    points: int
    small_points: int
    side: float  # metres; the small file covers (small_points / points)·side² at one density
    tile: float
    subsample: int  # points timed for np.unique(axis=0)


FULL = Setup(10_000_000, 2_500_000, 200.0, 50.0, 500_000)
QUICK = Setup(4_000_000, 1_000_000, 200.0, 25.0, 100_000)


def generate(path: Path, points: int, side: float, seed: int) -> Path:
    """``points`` uniform points over a ``side``² square, written in chunks (LAZ by suffix)."""
    import laspy

    if path.exists():
        with laspy.open(path) as reader:
            if reader.header.point_count == points:
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([600_000.0, 6_000_000.0, 0.0])
    rng = np.random.default_rng(seed)
    partial = path.with_name(path.name + ".part")
    with laspy.open(partial, mode="w", header=header, do_compress=path.suffix == ".laz") as out:
        for start in range(0, points, CHUNK):
            count = min(CHUNK, points - start)
            record = laspy.ScaleAwarePointRecord.zeros(count, header=header)
            record.X = rng.integers(0, int(side * 1000), count, dtype=np.int32)
            record.Y = rng.integers(0, int(side * 1000), count, dtype=np.int32)
            record.Z = rng.integers(0, 30_000, count, dtype=np.int32)
            record.classification = rng.choice(CLASSES[0], count, p=CLASSES[1])
            for name in ("red", "green", "blue", "intensity"):
                record[name] = rng.integers(0, 65_535, count, dtype=np.uint16)
            out.write_points(record)
    partial.rename(path)
    return path


def read_only(path: Path) -> int:
    """laspy's chunked read with scaled coordinates: the floor of any LAS/LAZ reader."""
    import laspy

    total = 0
    with laspy.open(path) as reader:
        for points in reader.chunk_iterator(CHUNK):
            xyz = np.stack([points.x, points.y, points.z], axis=1)
            total += len(xyz)
    return total


def chunk_keys(path: Path, tile: float, limit: int | None = None):
    """Per chunk, (tile id, vx, vy, vz) as voxelize computes them (stride = tile)."""
    import laspy

    with laspy.open(path) as reader:
        low = np.asarray(reader.header.mins)
        span = np.asarray(reader.header.maxs) - low
        tiles_x = 1 if span[0] < tile else int((span[0] - tile) // tile) + 2
        for points in reader.chunk_iterator(limit or CHUNK):
            relative = np.stack([points.x, points.y, points.z], axis=1) - low
            ix = np.floor(relative[:, 0] / tile).astype(np.int64)
            iy = np.floor(relative[:, 1] / tile).astype(np.int64)
            relative[:, 0] -= ix * tile
            relative[:, 1] -= iy * tile
            yield iy * tiles_x + ix, np.floor(relative / VOXEL).astype(np.int64)
            if limit:
                return


def read_unique(path: Path, tile: float) -> int:
    """Read + quantise + packed int64 key + ``torch.unique``: the number of voxels."""
    import torch

    side = int(np.ceil(tile / VOXEL)) + 1  # voxels along x and y in a tile
    keys = []
    for tile_id, voxel in chunk_keys(path, tile):
        keys.append(((tile_id * side + voxel[:, 0]) * side + voxel[:, 1]) << 16 | voxel[:, 2])
    return int(torch.unique(torch.from_numpy(np.concatenate(keys))).numel())


def numpy_unique_rows(path: Path, tile: float, subsample: int) -> tuple[float, int]:
    """Seconds of ``np.unique(axis=0)`` on the first ``subsample`` points' integer keys."""
    tile_id, voxel = next(chunk_keys(path, tile, subsample))
    rows = np.column_stack([tile_id, voxel])
    start = time.perf_counter()
    np.unique(rows, axis=0)
    return time.perf_counter() - start, len(rows)


def write_outputs(out: Path) -> float:
    """Seconds to write voxelize's two tables of ``out`` again with pyarrow and the same
    settings (the output's own floor: no reading, no aggregation), best of two."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = {name: pq.read_table(out / f"{name}.parquet") for name in ("voxels", "points")}
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for name, table in tables.items():
            fields = table.schema
            floats = [f.name for f in fields if pa.types.is_floating(f.type)]
            delta = ["point_index", "tile", "voxel_row"] if name == "points" else []
            pq.write_table(
                table,
                out / f"rewrite-{name}.parquet",
                compression="lz4",
                use_dictionary=[f.name for f in fields if pa.types.is_string(f.type)],
                column_encoding={
                    **dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
                    **dict.fromkeys(floats, "BYTE_STREAM_SPLIT"),
                },
                row_group_size=1 << 19,
            )
        best = min(best, time.perf_counter() - start)
    for name in tables:
        (out / f"rewrite-{name}.parquet").unlink()
    return best


# A small launcher process runs tinyseg and reports its child's peak RSS: measured from the
# benchmark process itself, the child would inherit this process's high-water mark at fork.
LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "out": done.stdout, "err": done.stderr[-500:],
                  "seconds": seconds, "peak_kib": peak}))
"""


def run_voxelize(source: Path, out: Path, tile: float) -> dict[str, float]:
    """``tinyseg voxelize`` in a fresh process: wall seconds and that process's peak RSS."""
    import json

    args = [sys.executable, "-m", "tinyseg_cli", "voxelize", str(source), "-o", str(out)]
    args += ["--voxel", str(VOXEL), "--tile", str(tile), "--force", "-q", "--json"]
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], capture_output=True, text=True, check=True
    )
    result = json.loads(launched.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"tinyseg voxelize {source} failed: {result['err']}")
    voxels = json.loads(result["out"])["voxels"]
    return {"seconds": result["seconds"], "peak_mib": result["peak_kib"] / 1024, "voxels": voxels}


def run(quick: bool = False) -> Section:
    """Generate the files, then time the peers and ``tinyseg voxelize``."""
    setup = QUICK if quick else FULL
    section = Section("voxelize")
    start = time.perf_counter()
    big_las = generate(OUT / f"uniform-{setup.points}.las", setup.points, setup.side, 0)
    big_laz = generate(OUT / f"uniform-{setup.points}.laz", setup.points, setup.side, 0)
    small_side = setup.side * (setup.small_points / setup.points) ** 0.5
    small_las = generate(
        OUT / f"uniform-{setup.small_points}.las", setup.small_points, small_side, 1
    )
    sizes = (
        f"{big_las.stat().st_size / MIB:,.0f} MiB LAS, {big_laz.stat().st_size / MIB:,.0f} MiB LAZ"
    )
    console.print(
        f"files: {setup.points:,} points over a {setup.side:g} m square ({sizes}), "
        f"{setup.small_points:,} over {small_side:g} m; ready in "
        f"{time.perf_counter() - start:.0f} s"
    )
    section.raw["cpu_busy_before"] = warn_if_busy("the voxelize timings")
    peers, results = interleaved(
        {
            "read": lambda: read_only(big_las),
            "read_unique": lambda: read_unique(big_las, setup.tile),
            "decode_laz": lambda: read_only(big_laz),
        },
        repeats=2,
        warmup=0,
    )
    naive_s, naive_n = numpy_unique_rows(big_las, setup.tile, setup.subsample)
    work = OUT / "runs"
    e2e = {
        "las": run_voxelize(big_las, work / "las", setup.tile),
        "laz": run_voxelize(big_laz, work / "laz", setup.tile),
        "small": run_voxelize(small_las, work / "small", setup.tile),
    }
    peers["write_outputs"] = write_outputs(work / "las")
    _report(section, setup, peers, results, (naive_s, naive_n), e2e)
    return section


def _report(
    section: Section,
    setup: Setup,
    peers: dict[str, float],
    results: dict[str, int],
    naive: tuple[float, int],
    e2e: dict[str, dict[str, float]],
) -> None:
    n = setup.points
    naive_rate = naive[1] / naive[0]
    rows = [
        ("laspy chunked read (LAS)", peers["read"], n, ""),
        ("read + packed-key torch.unique (LAS)", peers["read_unique"], n, "the LAS reference"),
        ("np.unique(axis=0)", n / naive_rate, n, f"extrapolated from {naive[1]:,} points"),
        ("lazrs decode (LAZ)", peers["decode_laz"], n, "the LAZ reference"),
        (
            "writing voxelize's two tables alone",
            peers["write_outputs"],
            n,
            "pyarrow, same settings, one thread",
        ),
        (
            "tinyseg voxelize (LAS)",
            e2e["las"]["seconds"],
            n,
            f"peak {e2e['las']['peak_mib']:.0f} MiB",
        ),
        (
            "tinyseg voxelize (LAZ)",
            e2e["laz"]["seconds"],
            n,
            f"peak {e2e['laz']['peak_mib']:.0f} MiB",
        ),
        (
            f"tinyseg voxelize, {setup.small_points:,} points (LAS)",
            e2e["small"]["seconds"],
            setup.small_points,
            f"peak {e2e['small']['peak_mib']:.0f} MiB",
        ),
    ]
    table = Table(
        title=f"voxelize — {n:,} points, {VOXEL} m voxels, {setup.tile:g} m tiles",
        title_justify="left",
    )
    for column in ("what", "time", "M points/s", "note"):
        table.add_column(column, justify="left" if column in ("what", "note") else "right")
    for name, seconds, count, note in rows:
        table.add_row(name, fmt_seconds(seconds), f"{count / seconds / 1e6:.2f}", note)
    console.print(table)
    versus_unique = peers["read_unique"] / e2e["las"]["seconds"]
    versus_decode = e2e["laz"]["seconds"] / peers["decode_laz"]
    memory = e2e["las"]["peak_mib"] / e2e["small"]["peak_mib"]
    exact = e2e["las"]["voxels"] == results["read_unique"] == e2e["laz"]["voxels"]
    section.ratios += [
        ("voxelize LAS M points/s", n / e2e["las"]["seconds"] / 1e6, "incl. start-up"),
        ("voxelize LAZ M points/s", n / e2e["laz"]["seconds"] / 1e6, "incl. start-up"),
        ("read + unique M points/s", n / peers["read_unique"] / 1e6, "LAS"),
        (
            "voxelize LAS speed / (read + unique + writing the tables)",
            (peers["read_unique"] + peers["write_outputs"]) / e2e["las"]["seconds"],
            "information: the output's cost included",
        ),
        ("np.unique(axis=0) M points/s", naive_rate / 1e6, f"extrapolated from {naive[1]:,}"),
        ("voxelize peak RSS MiB", e2e["las"]["peak_mib"], f"{n:,} points"),
        (
            "voxelize peak RSS MiB (small)",
            e2e["small"]["peak_mib"],
            f"{setup.small_points:,} points",
        ),
    ]
    section.targets += [
        Target(
            "voxelize LAS speed / (read + packed-key unique)", versus_unique, 0.5, ">=", "SPEC §8"
        ),
        Target("voxelize LAZ time / lazrs decode time", versus_decode, 1.5, "<=", "SPEC §8"),
        Target(
            f"voxelize peak RSS {n / 1e6:g} M / {setup.small_points / 1e6:g} M points",
            memory,
            1.25,
            "<=",
            "independent of the file size",
        ),
        Target("voxel rows == packed-key unique count", float(exact), 1, ">=", "exact"),
    ]
    section.raw["voxelize"] = {
        "setup": setup.__dict__,
        "peers_seconds": peers,
        "unique_voxels": results["read_unique"],
        "numpy_unique_rows": {"seconds": naive[0], "points": naive[1]},
        "e2e": e2e,
    }


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])

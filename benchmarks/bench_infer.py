"""`infer`: tiled inference of a large image against full-image passes over the same pixels.

SPEC §8 targets, smp Unet-mobilenet_v2 (random weights) on an 8192×8192 RGB image: peak
memory of ``tinyseg infer`` (tiled) < 2 GiB, and its time <= 1.15× the time of full-image
passes over the same pixels (16 passes over a 2048² crop: one 8192² pass would need tens of
GB). Each candidate runs in a fresh process, so its peak RSS (VmHWM) is its own; times are
taken inside the process, after imports. ``--quick``: a 2048² image, 512² tiles and passes
(a smoke test: small tiles overlap relatively more, so it has no time target).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import Section, Target, console, fmt_seconds, warn_if_busy
from rich.table import Table

MODEL = {"arch": "unet", "encoder": "mobilenet_v2", "in_channels": 3, "out_channels": 2}
GIB = 1 << 30


# --------------------------------------------------------------------------- workers


def _peak_rss() -> int:
    """Peak resident memory of this process in bytes (VmHWM; ru_maxrss off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _worker_infer(args: list[str]) -> dict[str, float]:
    """``tinyseg infer`` in-process; the clock starts after the heavy imports."""
    import segmentation_models_pytorch  # noqa: F401  (imported before the clock starts)
    import torch  # noqa: F401

    import tinyseg_cli.commands.infer.run  # noqa: F401
    from tinyseg_cli.cli.main import app

    base = _peak_rss()
    start = time.perf_counter()
    app(["infer", *args], standalone_mode=False)
    return {"seconds": time.perf_counter() - start, "peak": _peak_rss(), "base": base}


def _worker_full(checkpoint: str, side: int, repeats: int) -> dict[str, float]:
    """One forward pass over a ``side``² image, as ``infer`` runs it (best of ``repeats``)."""
    import torch

    from tinyseg_cli.inference.model import load_model

    model = load_model(checkpoint, torch.device("cpu"))
    image = torch.randn(1, 3, side, side)
    model.runner(image[:, :, :64, :64])  # warm-up
    base = _peak_rss()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.runner(image)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "peak": _peak_rss(), "base": base}


def _spawn(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {args[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- data


def make_inputs(root: Path, side: int) -> tuple[Path, Path]:
    """A random-weights checkpoint and an uncompressed RGB TIFF of ``side``² (smooth noise)."""
    import tifffile
    import torch

    from tinyseg_cli.io.checkpoint import Checkpoint, save_checkpoint
    from tinyseg_cli.models import build_model

    torch.manual_seed(0)
    config = {
        "model": MODEL,
        "classes": ["background", "defect"],
        "binary": None,
        "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3},
        "input": {"channels": 3, "resize": None, "patch": 512},
    }
    checkpoint = root / "model.pt"
    save_checkpoint(checkpoint, Checkpoint(config, build_model(MODEL).state_dict()))
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
    image = root / "image.tif"
    tifffile.imwrite(image, np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1), photometric="rgb")
    return checkpoint, image


# --------------------------------------------------------------------------- run


def run(quick: bool = False) -> Section:
    """Tiled ``infer`` of one large image vs full passes over crops of the same total size."""
    section = Section("infer")
    side, crop = (2048, 512) if quick else (8192, 2048)
    passes = (side // crop) ** 2
    with tempfile.TemporaryDirectory(prefix="tinyseg-bench-") as tmp:
        root = Path(tmp)
        checkpoint, image = make_inputs(root, side)
        tiling = ["--max-pixels", str(crop * crop), "--tile", str(crop)] if quick else []
        args = [str(image), "-c", str(checkpoint), "-o", str(root / "out"), "-q", "--force"]
        section.raw["cpu_busy_before"] = warn_if_busy("the infer timings")
        tiled = _spawn("infer", *args, "--device", "cpu", *tiling)
        full = _spawn("full", str(checkpoint), str(crop), "1" if not quick else "3")
    full_total = full["seconds"] * passes
    ratio = tiled["seconds"] / full_total
    table = Table(title=f"infer — {side}² RGB, smp Unet-mobilenet_v2, CPU", title_justify="left")
    for header in ("run", "time", "peak RSS", "over imports + model"):
        table.add_column(header, justify="left" if header == "run" else "right")
    table.add_row(
        "tinyseg infer (tiled, defaults)" if not quick else f"tinyseg infer (tiles {crop})",
        fmt_seconds(tiled["seconds"]),
        f"{tiled['peak'] / GIB:.2f} GiB",
        f"{(tiled['peak'] - tiled['base']) / GIB:.2f} GiB",
    )
    table.add_row(
        f"{passes} × one full pass on {crop}²",
        fmt_seconds(full_total),
        f"{full['peak'] / GIB:.2f} GiB",
        f"{(full['peak'] - full['base']) / GIB:.2f} GiB",
    )
    console.print(table)
    section.ratios.append(("tiled time / full passes", ratio, f"{passes} passes of {crop}²"))
    section.ratios.append(("tiled peak RSS (GiB)", tiled["peak"] / GIB, f"{side}² image"))
    if not quick:  # 512² tiles overlapping by 64 cost 1.37× the pixels: no target there
        peak = tiled["peak"] / GIB
        section.targets += [
            Target("infer 8192²: tiled time / full passes", ratio, 1.15, "<=", "SPEC §8"),
            Target("infer 8192²: peak RSS (GiB)", peak, 2.0, "<=", "SPEC §8"),
        ]
    section.raw.update({"side": side, "crop": crop, "tiled": tiled, "full_pass": full})
    return section


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        mode, rest = sys.argv[2], sys.argv[3:]
        if mode == "infer":
            result = _worker_infer(rest)
        else:
            result = _worker_full(rest[0], int(rest[1]), int(rest[2]))
        print(json.dumps(result))
    else:
        run(quick="--quick" in sys.argv)

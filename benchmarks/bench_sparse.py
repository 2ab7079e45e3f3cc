"""`sparse`: sparse 3D U-Net forward + backward seconds per 100 k voxels, per backend.

The network of SPEC §7.3 (ASPP bridge, channels 32-64-128-256, 7 classes; ``--quick``:
16-32-64-128) runs one training step (forward, cross-entropy, backward) on a generated
urban-like scene (a gently rolling ground, building walls) voxelised to about
40 k voxels (``--quick``: 10 k) in two tiles, with every sparse backend installed, on CPU at the
machine's thread count (``python bench_sparse.py --device cuda`` on a GPU). Kernel maps are
built inside each timed step, as they are for every new batch in training. No SPEC §8
target: the numbers compare the backends measured in the same run.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from common import Section, best_of, console, fmt_seconds, warn_if_busy
from rich.table import Table

from tinyseg_cli.models.sparse_unet import SparseUNet
from tinyseg_cli.sparse import available_backends

N_CLASSES = 7
DEVICE = "cpu"


def scene(voxels: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique voxel coordinates (N, 3) and batch indices (N,) of two generated tiles; about
    two thirds of ``voxels`` survive as unique sites."""
    generator = torch.Generator().manual_seed(seed)
    side = int((voxels / 2 / 1.6) ** 0.5)  # the ground holds ~60 % of a tile's voxels
    parts = []
    for tile in range(2):
        xy = torch.randint(0, side, (side * side * 3, 2), generator=generator)
        ground = 4 + (2 * torch.sin(xy[:, :1] / 9.0) + torch.cos(xy[:, 1:] / 13.0)).long()
        parts.append((tile, torch.cat([xy, ground], 1)))
        for wall_index in range(6):  # walls: a vertical rectangle along x or y
            x0, y0 = torch.randint(0, side - side // 4, (2,), generator=generator).tolist()
            n = side * 6
            u = torch.randint(0, side // 4, (n,), generator=generator)
            h = torch.randint(5, 5 + side // 8, (n,), generator=generator)
            wall = torch.stack([x0 + u, torch.full_like(u, y0), h], 1)
            parts.append((tile, wall if wall_index % 2 else wall[:, [1, 0, 2]]))
    coords = torch.cat([c for _, c in parts])
    batch = torch.cat([torch.full((len(c),), t) for t, c in parts])
    keys = torch.cat([batch[:, None], coords], 1).unique(dim=0)
    return keys[:, 1:].int(), keys[:, 0].int()


def step_seconds(
    backend: str, coords: torch.Tensor, batch: torch.Tensor, channels: tuple[int, ...], repeats: int
) -> float:
    """Best wall time of one forward + backward step of the network on ``backend``."""
    torch.manual_seed(0)
    model = SparseUNet(6, N_CLASSES, channels, backend=backend).to(DEVICE).train()
    features = torch.randn(len(coords), 6, device=DEVICE)
    labels = torch.randint(0, N_CLASSES, (len(coords),), device=DEVICE)

    def step() -> float:
        model.zero_grad(set_to_none=True)
        x = model.input(coords.to(DEVICE), features, batch.to(DEVICE))  # fresh kernel maps
        loss = torch.nn.functional.cross_entropy(model(x), labels[x.order])
        loss.backward()
        if DEVICE.startswith("cuda"):
            torch.cuda.synchronize()
        return loss.item()

    seconds, _ = best_of(step, repeats)
    return seconds


def run(quick: bool = False) -> Section:
    """Seconds per 100 k voxels of one training step, per available backend."""
    section = Section("sparse")
    voxels, channels, repeats = (
        (15_000, (16, 32, 64, 128), 2) if quick else (60_000, (32, 64, 128, 256), 3)
    )
    coords, batch = scene(voxels)
    n = len(coords)
    backends = available_backends(DEVICE)
    section.raw["cpu_busy_before"] = warn_if_busy("the sparse timings")
    results: dict[str, dict[str, Any]] = {}
    for backend in backends:
        seconds = step_seconds(backend, coords, batch, channels, repeats)
        results[backend] = {"seconds": seconds, "per_100k": seconds * 100_000 / n}
    table = Table(
        title=f"sparse U-Net (ASPP, channels {channels}) forward + backward, {n:,} voxels, "
        f"{DEVICE}, {torch.get_num_threads()} threads, best of {repeats}",
        title_justify="left",
    )
    for header in ("backend", "step", "s / 100 k voxels"):
        table.add_column(header, justify="left" if header == "backend" else "right")
    for backend, r in results.items():
        table.add_row(backend, fmt_seconds(r["seconds"]), f"{r['per_100k']:.2f}")
        section.ratios.append(
            (f"{backend}: s per 100 k voxels (fwd+bwd)", r["per_100k"], f"{n:,} voxels, {DEVICE}")
        )
    console.print(table)
    if "spconv" in results:
        section.ratios.append(
            (
                "spconv / torch step time",
                results["spconv"]["seconds"] / results["torch"]["seconds"],
                "on CPU both run the torch arithmetic; spconv builds its own kernel maps",
            )
        )
    section.raw.update({"voxels": n, "channels": list(channels), "device": DEVICE})
    section.raw["results"] = results
    return section


if __name__ == "__main__":
    if "--device" in sys.argv:
        DEVICE = sys.argv[sys.argv.index("--device") + 1]
    run(quick="--quick" in sys.argv)

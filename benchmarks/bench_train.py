"""`train`: training throughput of the library's loop against a plain hand-written smp loop.

SPEC §8 targets on CPU: at most 10 % overhead over a hand-written smp loop (tinyseg / hand
images/s >= 0.9) and the loader's share of the step time < 10 %. Both loops train smp
Unet-mobilenet_v2 (random weights) with Adam and cross-entropy on the same generated data
(32 RGB PNGs of 512² with sparse defect masks, 4 random patches per image and epoch), with
the same batch, patch size and DataLoader workers (cores − 1, and 0), in this process. The
clock runs from the end of the last warm-up step to the end of the last step, so start-up,
imports and the first workers' spawn are excluded; epoch boundaries inside that window
count (the hand loop's new workers, as a plain DataLoader starts them each epoch; tinyseg's
per-epoch ``last.pt`` and log; its workers persist). Each loop runs ``ROUNDS`` times,
alternating with the other; its fastest run counts. ``--quick``: 128² patches and fewer
steps, all inside the first epoch.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import Section, Target, console, cores, warn_if_busy
from rich.table import Table

CLASSES = ["background", "scratch", "pit"]
N_IMAGES, SIDE = 32, 512
PER_IMAGE = 4  # random patches per image and epoch, as `tinyseg train` defaults to
BATCH = 8
MEAN, STD = [0.62, 0.62, 0.62], [0.08, 0.08, 0.08]  # roughly the generated images' own
ROUNDS = 2  # each loop runs this often; the best run counts (a shared 2-core machine)
DEVICE = "cpu"  # SPEC §8's figures are for CPU; `python bench_train.py --device cuda` on a GPU


# --------------------------------------------------------------------------- data


def _pair(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB grey-noise image with a few scratches (class 1) and pits (class 2), its mask."""
    mask = np.zeros((side, side), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        row, start = (int(v) for v in rng.integers(0, side - side // 4, 2))
        mask[row : row + 2, start : start + side // 6] = 1
    for _ in range(int(rng.integers(1, 6))):
        y, x = (int(v) for v in rng.integers(0, side - 4, 2))
        mask[y : y + 3, x : x + 3] = 2
    image = 160 + rng.normal(0, 12, (side, side, 3))
    image[mask == 1] -= 70
    image[mask == 2] -= 120
    return np.clip(image, 0, 255).astype(np.uint8), mask


def make_data(root: Path, n_images: int = N_IMAGES, side: int = SIDE) -> Path:
    """PNG images and masks under ``root`` and their split manifest (all rows train)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rows = []
    for i in range(n_images):
        image, mask = _pair(rng, side)
        Image.fromarray(image).save(root / "images" / f"s{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
        rows.append({"sample_id": f"s{i}", "image": f"images/s{i}.png", "mask": f"masks/s{i}.png"})
    table = pa.Table.from_pylist([{**row, "split": "train"} for row in rows])
    table = table.replace_schema_metadata({"tinyseg.classes": json.dumps(CLASSES)})
    manifest = root / "split.parquet"
    pq.write_table(table, manifest)
    return manifest


# --------------------------------------------------------------------------- candidates


def _summary(ends: list[float], loader: list[float], warmup: int) -> dict[str, Any]:
    """Throughput over the steps after ``warmup`` from the end time of every step, and the
    loader's share of those steps' time (``loader``: seconds waited for each batch)."""
    seconds = ends[-1] - ends[warmup - 1]
    steps = len(ends) - warmup
    per_step = [b - a for a, b in zip(ends[warmup - 1 : -1], ends[warmup:], strict=True)]
    return {
        "images_per_s": steps * BATCH / seconds,
        "seconds": seconds,
        "steps": steps,
        "median_step_s": statistics.median(per_step),
        "max_step_s": max(per_step),
        "loader_share": sum(loader[warmup:]) / seconds,
    }


def run_tinyseg(
    manifest: Path, run_dir: Path, patch: int, workers: int, warmup: int, steps: int
) -> dict[str, Any]:
    """The library's Trainer, driven as `tinyseg train` drives it (no validation)."""
    import torch

    from tinyseg_cli.commands.train.config import TrainOptions
    from tinyseg_cli.commands.train.loop import Hooks, StepReport, Trainer
    from tinyseg_cli.commands.train.modality import prepare
    from tinyseg_cli.runtime.distributed import Distributed

    options = TrainOptions(
        manifest=str(manifest),
        run_dir=str(run_dir),
        arch="unet",
        encoder="mobilenet_v2",
        patch_size=patch,
        patches_per_image=PER_IMAGE,
        loss="ce",
        iterations=warmup + steps,
        batch_size=BATCH,
        workers=workers,
        val_every=0,
        device=DEVICE,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(prepare(options), torch.device(DEVICE), Distributed())
    trainer.initialise_weights()
    ends: list[float] = []
    loader: list[float] = []

    def on_step(report: StepReport) -> None:
        ends.append(time.perf_counter())
        loader.append(report.loader_share * BATCH / report.images_per_s)

    trainer.run(Hooks(on_step=on_step))
    return _summary(ends, loader, warmup)


def run_hand(patch: int, manifest: Path, workers: int, warmup: int, steps: int) -> dict[str, Any]:
    """A plain smp loop: PIL-reading Dataset, shuffling DataLoader, Adam, CrossEntropyLoss."""
    import pyarrow.parquet as pq
    import segmentation_models_pytorch as smp
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    rows = pq.read_table(manifest).to_pylist()
    root = manifest.parent
    mean = np.asarray(MEAN, np.float32)
    std = np.asarray(STD, np.float32)

    class Patches(Dataset):
        def __init__(self, epoch: int) -> None:
            rng = np.random.default_rng([0, epoch])
            self.items = [
                (root / row["image"], root / row["mask"], *rng.integers(0, SIDE - patch + 1, 2))
                for row in rows
                for _ in range(PER_IMAGE)
            ]

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            image_path, mask_path, y, x = self.items[i]
            box = (int(x), int(y), int(x) + patch, int(y) + patch)
            with Image.open(image_path) as im:
                pixels = np.asarray(im.crop(box), np.float32) / 255.0
            with Image.open(mask_path) as im:
                target = np.asarray(im.crop(box), np.int64)
            pixels = ((pixels - mean) / std).transpose(2, 0, 1)
            return torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(target)

    device = torch.device(DEVICE)
    torch.manual_seed(0)
    model = smp.create_model(
        "unet", "mobilenet_v2", encoder_weights=None, in_channels=3, classes=len(CLASSES)
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
    model.train()
    ends: list[float] = []
    loader: list[float] = []
    epoch = 0
    while len(ends) < warmup + steps:
        batches = DataLoader(
            Patches(epoch), batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True
        )
        waited = time.perf_counter()
        for images, targets in batches:
            loader.append(time.perf_counter() - waited)
            images, targets = images.to(device), targets.to(device)
            loss = criterion(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()
            ends.append(time.perf_counter())
            if len(ends) == warmup + steps:
                break
            waited = time.perf_counter()
        epoch += 1
    return _summary(ends, loader, warmup)


# --------------------------------------------------------------------------- run


def measure(
    manifest: Path, patch: int, settings: list[int], warmup: int, steps: int
) -> dict[str, dict[str, Any]]:
    """Both loops at every worker count, ``ROUNDS`` times; the fastest run of each counts."""
    results: dict[str, dict[str, Any]] = {}
    for round_ in range(ROUNDS):
        for workers in settings:
            candidates = {
                f"tinyseg/{workers}": lambda w=workers: run_tinyseg(
                    manifest, manifest.parent / f"run-{w}", patch, w, warmup, steps
                ),
                f"hand/{workers}": lambda w=workers: run_hand(patch, manifest, w, warmup, steps),
            }
            # alternated (AB, then BA) so drifts in machine load hit both alike
            for key in sorted(candidates, reverse=round_ % 2 == 1):
                result = candidates[key]()
                if key not in results or result["images_per_s"] > results[key]["images_per_s"]:
                    results[key] = result
    return results


def results_table(
    results: dict[str, dict[str, Any]], settings: list[int], patch: int, warmup: int, steps: int
) -> Table:
    """One row per loop and worker count."""
    table = Table(
        title=f"train — smp Unet-mobilenet_v2, {patch}² patches, batch {BATCH}, ce, Adam, "
        f"{steps} steps after {warmup} warm-up, {DEVICE}, best of {ROUNDS}",
        title_justify="left",
    )
    for header in ("loop", "workers", "images/s", "median step", "slowest step", "loader share"):
        table.add_column(header, justify="left" if header == "loop" else "right")
    for workers in settings:
        for loop, name in (("tinyseg", "tinyseg Trainer"), ("hand", "hand-written smp loop")):
            r = results[f"{loop}/{workers}"]
            table.add_row(
                name,
                str(workers),
                f"{r['images_per_s']:.2f}",
                f"{r['median_step_s'] * 1e3:.0f} ms",
                f"{r['max_step_s'] * 1e3:.0f} ms",
                f"{r['loader_share']:.1%}",
            )
    return table


def run(quick: bool = False) -> Section:
    """tinyseg's training loop vs a hand-written smp loop, at cores − 1 and at 0 workers."""
    section = Section("train")
    patch, warmup, steps = (128, 2, 8) if quick else (256, 3, 20)
    settings = sorted({max(0, cores() - 1), 0}, reverse=True)
    with tempfile.TemporaryDirectory(prefix="tinyseg-bench-") as tmp:
        manifest = make_data(Path(tmp))
        section.raw["cpu_busy_before"] = warn_if_busy("the train timings")
        results = measure(manifest, patch, settings, warmup, steps)
    console.print(results_table(results, settings, patch, warmup, steps))
    for workers in settings:
        ours, hand = results[f"tinyseg/{workers}"], results[f"hand/{workers}"]
        note = f"{patch}² patches, {workers} workers"
        section.ratios += [
            (
                f"tinyseg / hand loop images/s ({workers} workers)",
                ours["images_per_s"] / hand["images_per_s"],
                note,
            ),
            (f"tinyseg images/s ({workers} workers)", ours["images_per_s"], note),
            (f"tinyseg loader share ({workers} workers)", ours["loader_share"], note),
        ]
    main = settings[0]  # the default of `tinyseg train`: cores − 1 workers
    ours, hand = results[f"tinyseg/{main}"], results[f"hand/{main}"]
    section.targets += [
        Target(
            f"train: tinyseg / hand smp loop images/s ({main} workers)",
            ours["images_per_s"] / hand["images_per_s"],
            0.9,
            ">=",
            "SPEC §8: <= 10 % overhead",
        ),
        Target(
            f"train: loader share of step time ({main} workers, {DEVICE})",
            ours["loader_share"],
            0.1,
            "<=",
            "SPEC §8: < 10 % on CPU",
        ),
    ]
    section.raw.update(
        {"patch": patch, "batch": BATCH, "warmup": warmup, "steps": steps, "rounds": ROUNDS}
    )
    section.raw["results"] = results
    return section


if __name__ == "__main__":
    if "--device" in sys.argv:
        DEVICE = sys.argv[sys.argv.index("--device") + 1]
    run(quick="--quick" in sys.argv)

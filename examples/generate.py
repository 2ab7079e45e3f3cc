"""Generate the bundled example dataset: small inspection images with tiny, rare defects.

Everything is synthetic and seeded, so the same command always writes the same files.
Classes: 0 background, 1 crack (thin strokes, about 1 pixel in 100), 2 pore (a few pixels,
about 1 in 1,500). Each object is photographed from several views (``group`` column), and
every mask is also written as an RGB annotation with ``palette.json``.

Two simulated "models" predict on every image, so ``tinyseg score`` has something to
score before any training: ``pred_a`` misses most pores and blurs cracks, ``pred_b``
over-segments. Run ``python examples/generate.py --help`` for the options.

Layout written under OUT (default ``examples/data``)::

    images/<id>.png   masks/<id>.png   masks_rgb/<id>.png   pred_a/<id>.png  pred_b/<id>.png
    manifest.parquet  classes.json  palette.json  LICENSE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

CLASSES = ["background", "crack", "pore"]
PALETTE = {"#000000": 0, "#ff0000": 1, "#00ff00": 2}
COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], dtype=np.uint8)


def crack(mask: np.ndarray, rng: np.random.Generator) -> None:
    """Draw one crack: a random walk of about a hundred steps, one or two pixels wide."""
    h, w = mask.shape
    y, x = rng.uniform(0, h), rng.uniform(0, w)
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(60, 140))):
        angle += rng.normal(0, 0.25)
        y, x = y + np.sin(angle), x + np.cos(angle)
        yi, xi = int(y) % h, int(x) % w
        mask[yi, xi] = 1
        if rng.random() < 0.3:
            mask[yi, (xi + 1) % w] = 1


def pores(mask: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Scatter ``count`` pores of 1 to 9 pixels."""
    h, w = mask.shape
    for _ in range(count):
        y, x = int(rng.integers(1, h - 2)), int(rng.integers(1, w - 2))
        size = int(rng.integers(1, 3))
        mask[y : y + size, x : x + size] = 2
        if rng.random() < 0.5:
            mask[y - 1, x] = 2


def make_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        crack(mask, rng)
    pores(mask, rng, int(rng.integers(1, 5)))
    return mask


def make_image(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A textured grey surface; cracks are dark, pores darker, with noise."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = 150 + 20 * np.sin(xx / rng.uniform(10, 30)) * np.cos(yy / rng.uniform(10, 30))
    base = base + rng.normal(0, 6, size=(h, w))
    base[mask == 1] -= 60
    base[mask == 2] -= 90
    grey = np.clip(base, 0, 255).astype(np.uint8)
    tint = np.array([1.0, 0.97, 0.92])
    return np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)


def shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return np.roll(np.roll(mask, dy, axis=0), dx, axis=1)


def prediction_a(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cautious model: cracks found with a one-pixel offset, most pores missed."""
    pred = np.zeros_like(mask)
    pred[shifted(mask, 0, 1) == 1] = 1
    pred[mask == 1] = np.where(rng.random(int((mask == 1).sum())) < 0.7, 1, 0)
    pore_pixels = np.flatnonzero(mask == 2)
    kept = pore_pixels[rng.random(pore_pixels.size) < 0.3]
    pred.reshape(-1)[kept] = 2
    return pred


def prediction_b(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An eager model: cracks widened, pores found, false alarms scattered."""
    pred = mask.copy()
    widened = (shifted(mask, 1, 0) == 1) | (shifted(mask, 0, -1) == 1)
    pred[widened & (pred == 0)] = 1
    h, w = mask.shape
    for _ in range(int(rng.integers(2, 6))):
        y, x = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        pred[y : y + 2, x : x + 2] = 2
    return pred


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, optimize=False, compress_level=6)


def generate(out: Path, objects: int, views: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for obj in range(objects):
        for view in range(views):
            sample_id = f"obj{obj:02d}_view{view}"
            mask = make_mask(size, rng)
            save_png(out / "images" / f"{sample_id}.png", make_image(mask, rng))
            save_png(out / "masks" / f"{sample_id}.png", mask)
            save_png(out / "masks_rgb" / f"{sample_id}.png", COLOURS[mask])
            save_png(out / "pred_a" / f"{sample_id}.png", prediction_a(mask, rng))
            save_png(out / "pred_b" / f"{sample_id}.png", prediction_b(mask, rng))
            rows.append(
                {
                    "sample_id": sample_id,
                    "image": f"images/{sample_id}.png",
                    "mask": f"masks/{sample_id}.png",
                    "group": f"obj{obj:02d}",
                }
            )
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {"tinyseg.classes": json.dumps(CLASSES)}
    )
    pq.write_table(table, out / "manifest.parquet")
    (out / "classes.json").write_text(json.dumps(CLASSES) + "\n")
    (out / "palette.json").write_text(json.dumps(PALETTE, indent=2) + "\n")
    (out / "LICENSE").write_text(
        "Synthetic data generated by examples/generate.py; public domain (CC0 1.0).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--objects", type=int, default=12, help="distinct objects (groups)")
    parser.add_argument("--views", type=int, default=3, help="images per object")
    parser.add_argument("--size", type=int, default=256, help="image height and width")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generate(args.out, args.objects, args.views, args.size, args.seed)
    print(f"wrote {args.objects * args.views} samples to {args.out}")


if __name__ == "__main__":
    main()

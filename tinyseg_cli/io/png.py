"""PNG pictures written atomically (``tinyseg overlay``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyseg_cli.io.atomic import atomic_path


def write_png(path: str | Path, pixels: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array as a PNG, through a temporary file and a rename."""
    from PIL import Image

    with atomic_path(path) as temporary:
        Image.fromarray(np.ascontiguousarray(pixels, np.uint8), "RGB").save(temporary, "PNG")

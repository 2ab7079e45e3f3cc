"""The decode-only program the ``score`` end-to-end benchmark compares with.

``python decode_only.py JOBS DIR...`` decodes every file of the folders as a reader would
(tifffile for TIFF, Pillow for PNG) over JOBS worker processes, and prints the pixel count.
It imports only what decoding needs, so its start-up is the least any Python program that
reads these files pays: this is "the time needed just to decode the files" of SPEC §8, run
the same way as ``tinyseg score`` (a fresh process started from the shell).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def decode(path: str) -> int:
    """Decode one file; returns its pixel count."""
    if path.endswith(".tif"):
        return int(tifffile.imread(path).size)
    with Image.open(path) as image:
        return int(np.asarray(image).size)


def decode_all(paths: list[str], jobs: int, pool: ProcessPoolExecutor | None = None) -> int:
    """Decode every file over ``jobs`` processes (in ``pool`` when one is given, else a new
    one), chunked as ``tinyseg score`` chunks pairs."""
    if jobs <= 1:
        return sum(map(decode, paths))
    chunksize = max(1, min(16, len(paths) // (jobs * 4)))
    if pool is not None:
        return sum(pool.map(decode, paths, chunksize=chunksize))
    with ProcessPoolExecutor(max_workers=jobs) as own:
        return sum(own.map(decode, paths, chunksize=chunksize))


if __name__ == "__main__":
    jobs, folders = int(sys.argv[1]), sys.argv[2:]
    files = sorted(str(path) for folder in folders for path in Path(folder).iterdir())
    print(decode_all(files, jobs))

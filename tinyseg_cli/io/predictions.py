"""Prediction rasters of ``infer`` (SPEC §3, §4.6): TIFF label maps and float16 probabilities,
each carrying a record of how it was made (JSON in the TIFF description), and the staging
of a large image's finished rows on disk so that an interrupted run resumes mid-image.

Predictions larger than 2048² pixels are tiled (256²) and deflate-compressed, written tile
by tile from rows read on demand, so no full-size array is needed; smaller ones are plain
TIFFs, which readers memory-map. Probabilities are C×H×W, one plane per class.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from tinyseg_cli.io.atomic import atomic_path

TIFF_TILE = 256
TILED_ABOVE = 2048 * 2048  # pixels; larger predictions are tiled + deflate (SPEC §3)
RECORD_KEY = "tinyseg"

RowReader = Callable[[int, int], np.ndarray]  # rows a:b of one plane -> (b - a, W)


def _tiles(planes: Sequence[RowReader], height: int, width: int) -> Iterator[np.ndarray]:
    """Tiles in TIFF order: plane by plane, rows of tiles top to bottom, left to right."""
    for plane in planes:
        for y in range(0, height, TIFF_TILE):
            band = plane(y, min(height, y + TIFF_TILE))
            for x in range(0, width, TIFF_TILE):
                yield band[:, x : x + TIFF_TILE]


def write_prediction(
    path: Path,
    planes: Sequence[RowReader],
    height: int,
    width: int,
    dtype: np.dtype,
    record: dict[str, Any],
) -> None:
    """Write one prediction TIFF atomically: one plane is an H×W map, several are C×H×W."""
    shape = (height, width) if len(planes) == 1 else (len(planes), height, width)
    options: dict[str, Any] = {"photometric": "minisblack", "metadata": {RECORD_KEY: record}}
    if len(planes) > 1:
        options["planarconfig"] = "separate"
    with atomic_path(path) as temporary:
        if height * width > TILED_ABOVE:
            tifffile.imwrite(
                temporary,
                _tiles(planes, height, width),
                shape=shape,
                dtype=dtype,
                tile=(TIFF_TILE, TIFF_TILE),
                compression="zlib",
                **options,
            )
        else:
            data = np.stack([plane(0, height) for plane in planes]).reshape(shape)
            tifffile.imwrite(temporary, data.astype(dtype, copy=False), **options)


def read_record(path: Path) -> dict[str, Any] | None:
    """The record of a prediction TIFF; ``{}`` for a TIFF without one; None when the file is
    unreadable or shorter than its own tile table says (a half-written file)."""
    quiet = logging.getLogger("tifffile")  # it logs each bad tag of a broken file
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            counts = page.databytecounts
            end = max(o + c for o, c in zip(page.dataoffsets, counts, strict=True))
            if not all(counts) or end > path.stat().st_size:
                return None
            metadata = tiff.shaped_metadata
    except Exception:  # any parse failure means the file cannot be one of ours, complete
        return None
    finally:
        quiet.setLevel(level)
    record = metadata[0].get(RECORD_KEY) if metadata else None
    return record if isinstance(record, dict) else {}


def remove_temporaries(target: Path) -> None:
    """Remove the temporary files a killed writer of ``target`` left (``atomic_path`` names)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _row_reader(path: Path, width: int, dtype: np.dtype) -> RowReader:
    def rows(start: int, stop: int) -> np.ndarray:
        with open(path, "rb") as handle:
            handle.seek(start * width * dtype.itemsize)
            data = np.fromfile(handle, dtype, count=(stop - start) * width)
        return data.reshape(stop - start, width)

    return rows


class Staging:
    """Finished rows of one image's labels (and probability planes) in raw files, appended
    band by band, until the image is done and its TIFFs are written from them.

    ``state.json`` holds the record of the run; a later run with the same record resumes
    after the last complete row found in every file.
    """

    def __init__(
        self,
        folder: Path,
        record: dict[str, Any],
        shape: tuple[int, int],
        dtype: np.dtype,
        planes: int,
    ) -> None:
        self.folder, self.record = folder, record
        self.height, self.width = shape
        self.dtype, self.planes = np.dtype(dtype), planes
        self.rows = 0

    def _files(self) -> list[tuple[Path, np.dtype]]:
        probs = [(self.folder / f"probs-{c}.bin", np.dtype(np.float16)) for c in range(self.planes)]
        return [(self.folder / "labels.bin", self.dtype), *probs]

    def _state(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "shape": [self.height, self.width],
            "dtype": self.dtype.str,
            "planes": self.planes,
        }

    def start(self) -> int:
        """Rows already done by an interrupted run of the same record (0 for a fresh start)."""
        state_path = self.folder / "state.json"
        try:
            same = json.loads(state_path.read_text()) == json.loads(json.dumps(self._state()))
        except (OSError, ValueError):
            same = False
        if same:
            files = self._files()
            row_bytes = [self.width * dtype.itemsize for _, dtype in files]
            sizes = [path.stat().st_size if path.is_file() else 0 for path, _ in files]
            self.rows = min(size // step for size, step in zip(sizes, row_bytes, strict=True))
            for (path, _), step in zip(files, row_bytes, strict=True):
                with open(path, "ab") as handle:
                    handle.truncate(self.rows * step)
            return self.rows
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        for path, _ in self._files():
            path.touch()
        with atomic_path(state_path) as temporary:
            temporary.write_text(json.dumps(self._state()))
        self.rows = 0
        return 0

    def append(self, y0: int, y1: int, labels: np.ndarray, probs: np.ndarray | None) -> None:
        """Append rows ``y0:y1`` (``y0`` must be the first row not yet done)."""
        if y0 != self.rows:
            raise ValueError(f"staging expected row {self.rows}, got {y0}")
        arrays = [labels.astype(self.dtype, copy=False)]
        if self.planes:
            assert probs is not None
            arrays += [plane.astype(np.float16, copy=False) for plane in probs]
        for (path, _), array in zip(self._files(), arrays, strict=True):
            with open(path, "ab") as handle:
                np.ascontiguousarray(array).tofile(handle)
        self.rows = y1

    def label_rows(self) -> RowReader:
        """Reader of the staged label rows."""
        return _row_reader(self.folder / "labels.bin", self.width, self.dtype)

    def prob_rows(self) -> list[RowReader]:
        """Readers of the staged probability planes, one per class."""
        return [_row_reader(path, self.width, dtype) for path, dtype in self._files()[1:]]

    def remove(self) -> None:
        """Delete the staged rows (and ``.partial`` when it is left empty)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        parent = self.folder.parent
        if parent.is_dir() and not any(parent.iterdir()):
            os.rmdir(parent)

"""The first pass's on-disk partitions: each chunk's (point, tile) records appended to one raw
file per tile, so the second pass can aggregate a whole tile while holding only that tile.

LAS files are not spatially sorted: a tile's points come from every chunk. Records are
buffered in memory up to a byte budget and appended with ``ndarray.tofile`` (no header, read
back with ``np.fromfile``), the cheapest exact round trip numpy offers.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

BUFFERED_CHUNKS = 2  # chunks' worth of records held before they are appended to disk


def record_dtype(n_features: int) -> np.dtype:
    """One (point, tile) membership: source point, packed voxel key, label, mean-able
    features."""
    return np.dtype(
        [
            ("point", "<i8"),
            ("key", "<i8"),
            ("label", "<i2"),
            ("features", "<f4", (n_features,)),
        ]
    )


class TileSpill:
    """Per-tile append-only record files in ``folder`` (one per (scene, tile)); records are
    held in memory up to ``buffer_bytes``, so memory follows the chunk size, not the file."""

    def __init__(self, folder: Path, dtype: np.dtype, buffer_bytes: int):
        self.folder = folder
        self.dtype = dtype
        self.buffer_bytes = buffer_bytes
        self.counts: dict[tuple[int, int], int] = defaultdict(int)
        self._pending: dict[tuple[int, int], list[np.ndarray]] = defaultdict(list)
        self._pending_bytes = 0

    def _path(self, key: tuple[int, int]) -> Path:
        return self.folder / f"{key[0]}-{key[1]}.rec"

    def add(self, scene: int, tiles: np.ndarray, records: np.ndarray) -> None:
        """Append ``records`` (sorted by ``tiles``) to the partition of each tile."""
        cuts = np.flatnonzero(np.diff(tiles)) + 1
        starts = np.concatenate(([0], cuts)).tolist()
        ends = [*cuts.tolist(), len(tiles)]
        for tile, start, end in zip(tiles[starts].tolist(), starts, ends, strict=True):
            key = (scene, tile)
            self._pending[key].append(records[start:end])
            self.counts[key] += end - start
        self._pending_bytes += records.nbytes
        if self._pending_bytes >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        """Append every buffered record to its tile's file."""
        for key, parts in self._pending.items():
            with open(self._path(key), "ab") as handle:
                for part in parts:
                    part.tofile(handle)
        self._pending.clear()
        self._pending_bytes = 0

    def take(self, scene: int, tile: int) -> np.ndarray:
        """Every record of one tile, in spill order; its file is deleted (disk freed early)."""
        key = (scene, tile)
        path = self._path(key)
        records = np.fromfile(path, self.dtype) if path.exists() else np.empty(0, self.dtype)
        path.unlink(missing_ok=True)
        return records

    def discard(self, scene: int, tile: int) -> None:
        self._path((scene, tile)).unlink(missing_ok=True)

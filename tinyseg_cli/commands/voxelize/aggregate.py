"""Second pass of ``voxelize``: one tile's records -> one row per occupied voxel (SPEC §4.4).

The recipe of shared/notes/sparse-3d-measurements.md: a packed int64 key (voxel, then the
class's rank in the low bits), one sort, then runs of equal keys. numpy sorts: faster than
``torch.sort`` here, and importing torch would add seconds to every call. Within a voxel the
records sort by class rank, rarest first, so rare-first is the voxel's first run; majority is
its longest run (ties: the rarer class).
Points labelled -100 never vote unless a voxel holds nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyseg_cli.commands.voxelize.labels import ClassRanks
from tinyseg_cli.commands.voxelize.tiles import VoxelKeys


@dataclass(frozen=True)
class TileVoxels:
    """The voxels of one tile, in key order (vx, then vy, then vz), and each record's voxel."""

    voxel: np.ndarray  # (V, 3) int32
    features: np.ndarray  # (V, k) float32, means
    label: np.ndarray  # (V,) int16
    n_points: np.ndarray  # (V,) int32
    record_voxel: np.ndarray  # (n,) int64: the voxel of each record, in spill order


def _sorted_runs(key: np.ndarray, slots: np.ndarray, key_bits: int, slot_bits: int):
    """(key << slot_bits | slot) sorted, and the permutation a stable sort of it gives.

    With the record number in the low bits every value is unique, so numpy's plain sort
    (SIMD on x86, about 4x its argsort and 10x its stable sort) gives that permutation, on
    every machine: the sums within a voxel, hence the output bytes, do not depend on the
    sort algorithm. Keys too wide for that take the stable argsort.
    """
    n = len(key)
    index_bits = max(1, (n - 1).bit_length())
    if key_bits + slot_bits + index_bits <= 63:
        packed = key << (slot_bits + index_bits)
        packed |= slots << index_bits
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        order = packed & ((1 << index_bits) - 1)
        packed >>= index_bits
        return packed, order
    packed = key << slot_bits
    packed |= slots
    order = np.argsort(packed, kind="stable")
    return packed[order], order


def _starts(change: np.ndarray) -> np.ndarray:
    """Start of each run, from ``change[i]``: whether element i + 1 differs from element i."""
    return np.concatenate(([0], np.flatnonzero(change) + 1))


def aggregate_tile(
    key: np.ndarray,
    labels: np.ndarray,
    features: np.ndarray,
    ranks: ClassRanks,
    rule: str,
    keys: VoxelKeys,
) -> TileVoxels:
    """Mean features, point count and label of every occupied voxel of one tile, from each
    record's packed voxel ``key`` (:class:`VoxelKeys`)."""
    bits = max(1, (ranks.slots - 1).bit_length())
    sorted_key, order = _sorted_runs(key, ranks.slot(labels), keys.bits, bits)
    cell = sorted_key >> bits
    new_voxel = cell[1:] != cell[:-1]
    voxel_starts = _starts(new_voxel)
    run_starts = _starts(sorted_key[1:] != sorted_key[:-1])  # (voxel, class) runs
    run_slot = sorted_key[run_starts] & ((1 << bits) - 1)
    first_run = _starts(new_voxel[run_starts[1:] - 1])  # the runs that open a voxel
    winner = run_slot[first_run]  # rare-first: the first run is the rarest class present
    if rule == "majority":
        winner = _majority(run_starts, run_slot, first_run, len(key), ranks.slots)
    n_points = np.diff(np.append(voxel_starts, len(key)))
    record_voxel = np.empty(len(key), np.int64)
    record_voxel[order] = np.cumsum(np.concatenate(([0], new_voxel)))
    return TileVoxels(
        keys.unpack(cell[voxel_starts]),
        _means(features, record_voxel, n_points),
        ranks.label(winner),
        n_points.astype(np.int32),
        record_voxel,
    )


def _means(features: np.ndarray, record_voxel: np.ndarray, n_points: np.ndarray) -> np.ndarray:
    """Per-voxel means, summed in float64 in record order (``bincount`` with weights: about
    1.5x ``np.add.reduceat`` over rows sorted by voxel, and no gather of the features)."""
    means = np.empty((len(n_points), features.shape[1]), np.float32)
    for k in range(features.shape[1]):
        sums = np.bincount(record_voxel, weights=features[:, k], minlength=len(n_points))
        means[:, k] = sums / n_points
    return means


def _majority(
    run_starts: np.ndarray, run_slot: np.ndarray, first_run: np.ndarray, n: int, slots: int
) -> np.ndarray:
    """The slot of each voxel's longest run; ties go to the rarer class (smaller slot), and
    ignored points (the last slot) win only a voxel that holds nothing else."""
    ignore = slots - 1
    run_length = np.diff(np.append(run_starts, n))
    score = np.where(run_slot == ignore, 0, run_length * slots + (ignore - run_slot))
    best = np.maximum.reduceat(score, first_run)
    return np.where(best == 0, ignore, ignore - best % slots)

"""Class counts of the whole input and the class ranks ``voxelize``'s label rules pack into
keys (SPEC §4.4: rare-first)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyseg_cli.io.label_map import IGNORE, INT16

SLOTS = 1 << 16  # one counter per int16 label value


def label_counts(labels: np.ndarray) -> np.ndarray:
    """Points per int16 label value, as a (65536,) vector indexed by label + 32768."""
    return np.bincount(labels.astype(np.int64) - INT16[0], minlength=SLOTS)


@dataclass(frozen=True)
class ClassRanks:
    """Classes present in the input, rarest first (ties: smaller label), then the ignore slot.

    ``rank_of[label + 32768]`` is a label's slot; slot ``len(labels)`` holds ignored points.
    """

    labels: np.ndarray  # (R - 1,) int16, rarest first
    rank_of: np.ndarray  # (65536,) int64

    @property
    def slots(self) -> int:
        return len(self.labels) + 1

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> ClassRanks:
        present = np.flatnonzero(counts)
        present = present[present != IGNORE - INT16[0]]
        order = present[np.lexsort((present, counts[present]))]
        rank_of = np.full(SLOTS, len(order), np.int64)
        rank_of[order] = np.arange(len(order))
        return cls((order + INT16[0]).astype(np.int16), rank_of)

    def slot(self, labels: np.ndarray) -> np.ndarray:
        return self.rank_of[labels.astype(np.int64) - INT16[0]]

    def label(self, slots: np.ndarray) -> np.ndarray:
        table = np.append(self.labels, np.int16(IGNORE))
        return table[slots]

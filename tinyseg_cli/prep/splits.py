"""Leak-free splits as pure functions over groups (SPEC §4.1).

Assignments are made to groups, numbered 0..G-1 in sorted key order, and only then copied
to rows, so two rows of one group can never land in different splits or folds. Sorting
the keys first makes the result independent of the row order of the manifest; a seeded
permutation of the groups makes it depend on ``seed`` alone.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from tinyseg_cli.errors import TinysegError

SPLITS = ("train", "val", "test")
SIDES = ("top", "bottom", "left", "right")
RATIO_TOLERANCE = 1e-6

Roi = tuple[int, int, int, int]  # y0, x0, y1, x1


def parse_ratios(text: str) -> tuple[float, ...]:
    """``0.7,0.15,0.15`` -> train, val(, test) fractions; ValueError when they are unusable."""
    try:
        ratios = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{text!r} is not a list of numbers") from None
    if len(ratios) not in (2, 3):
        raise ValueError(f"{text!r}: give 2 (train,val) or 3 (train,val,test) ratios")
    if any(not math.isfinite(r) or r < 0 for r in ratios):
        raise ValueError(f"{text!r}: ratios must be finite and >= 0")
    if abs(sum(ratios) - 1) > RATIO_TOLERANCE:
        raise ValueError(f"{text!r}: ratios must sum to 1, they sum to {sum(ratios):g}")
    if ratios[0] == 0:
        raise ValueError(f"{text!r}: the train ratio must be > 0")
    return ratios


def parse_region(text: str) -> tuple[str, float]:
    """``top:0.33`` -> (side, fraction of the rows or columns that become validation)."""
    side, _, value = text.partition(":")
    if side not in SIDES:
        raise ValueError(f"{text!r}: expected SIDE:FRACTION with SIDE one of {', '.join(SIDES)}")
    try:
        fraction = float(value)
    except ValueError:
        raise ValueError(f"{text!r}: {value!r} is not a number") from None
    if not 0 < fraction < 1:
        raise ValueError(f"{text!r}: the fraction must lie strictly between 0 and 1")
    return side, fraction


def group_codes(keys: Sequence[Hashable]) -> tuple[list[Hashable], np.ndarray]:
    """The distinct keys in sorted order, and each row's index into them."""
    distinct = sorted(set(keys))
    index = {key: i for i, key in enumerate(distinct)}
    return distinct, np.array([index[key] for key in keys], dtype=np.int64)


def split_sizes(n_groups: int, ratios: Sequence[float]) -> np.ndarray:
    """Groups per split: ratio × G by largest remainder, and at least one group in every
    split whose ratio is positive (TinysegError when there are too few groups)."""
    shares = np.asarray(ratios, dtype=np.float64)
    positive = shares > 0
    if n_groups < positive.sum():
        raise TinysegError(
            f"{n_groups} group(s) cannot fill {int(positive.sum())} non-empty splits "
            "(every split with a positive ratio needs a group)"
        )
    exact = shares * n_groups
    sizes = np.floor(exact + RATIO_TOLERANCE).astype(np.int64)
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[: n_groups - int(sizes.sum())]] += 1
    for empty in np.flatnonzero(positive & (sizes == 0)):
        sizes[int(np.argmax(sizes))] -= 1  # the largest split has >= 2 groups here
        sizes[empty] = 1
    return sizes


def assign_ratios(n_groups: int, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Split index (position in ``ratios``) of each group, in a seeded random order."""
    sizes = split_sizes(n_groups, ratios)
    order = np.random.default_rng(seed).permutation(n_groups)
    split = np.empty(n_groups, dtype=np.int64)
    split[order] = np.repeat(np.arange(len(sizes)), sizes)
    return split


def assign_folds(n_groups: int, k: int, seed: int) -> np.ndarray:
    """Fold 0..k-1 of each group; fold sizes differ by at most one group."""
    if k > n_groups:
        raise TinysegError(f"--folds {k} needs at least {k} groups, found {n_groups}")
    order = np.random.default_rng(seed).permutation(n_groups)
    fold = np.empty(n_groups, dtype=np.int64)
    fold[order] = np.arange(n_groups) % k
    return fold


def assign_stratified(presence: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Split index of each group so that every class is present in every split if it can be.

    ``presence`` is (groups, classes), true where a group holds pixels of a class. Iterative
    stratification (Sechidis et al., 2011), rarest class first: each group of that class
    goes to a split that still has room, preferring one without the class yet, then the
    split that lacks the most of its share of the class. Split sizes are those of
    :func:`split_sizes`, exactly.
    """
    n_groups = presence.shape[0]
    shares = np.asarray(ratios, dtype=np.float64)
    room = split_sizes(n_groups, shares).astype(np.float64)
    demand = shares[:, None] * presence.sum(axis=0)[None, :]
    held = np.zeros_like(demand)
    order = np.random.default_rng(seed).permutation(n_groups)
    split = np.full(n_groups, -1, dtype=np.int64)
    first = -np.arange(shares.size)  # full ties: the first split
    for c in np.argsort(presence.sum(axis=0), kind="stable"):
        for g in order[presence[order, c] & (split[order] < 0)]:
            keys = np.lexsort((first, room, demand[:, c], held[:, c] == 0, room > 0))
            s = int(keys[-1])  # lexsort sorts by the last key first, ascending
            split[g] = s
            demand[s] -= presence[g]
            held[s] += presence[g]
            room[s] -= 1
    for g in order[split[order] < 0]:  # groups without any counted class
        s = int(np.argmax(room))
        split[g] = s
        room[s] -= 1
    return split


def assign_stratified_folds(presence: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold of each group, stratified as :func:`assign_stratified` with k equal shares."""
    if k > presence.shape[0]:
        raise TinysegError(f"--folds {k} needs at least {k} groups, found {presence.shape[0]}")
    return assign_stratified(presence, [1 / k] * k, seed)


def carve_validation(
    fold: np.ndarray, k: int, fraction: float, seed: int, presence: np.ndarray | None = None
) -> np.ndarray:
    """``val_fold`` of each group: the fold whose validation part it is, or -1.

    For fold n, round(fraction × T_n) groups (at least one) of its training part (the T_n
    groups with a fold other than n; fold -1 is held out) become validation. A group
    validates one fold at most, so fractions above about 1/(k-1) run out of groups. Each
    pick keeps the rest possible (:func:`_can_fill`); among those, with ``presence``, groups
    holding classes the validation part lacks go first, rarest class first; then groups of
    the fold with the most groups left.
    """
    n_groups = fold.size
    rank = np.empty(n_groups, dtype=np.int64)
    rank[np.random.default_rng([seed, 1]).permutation(n_groups)] = np.arange(n_groups)
    if presence is None:
        presence = np.zeros((n_groups, 0), dtype=bool)
    rarity = 1.0 / np.maximum(presence.sum(axis=0), 1)
    sizes = np.bincount(fold[fold >= 0], minlength=k)
    need = np.maximum(1, np.floor(fraction * (sizes.sum() - sizes) + 0.5)).astype(np.int64)
    starved = np.flatnonzero(need >= sizes.sum() - sizes)
    if starved.size:
        n = int(starved[0])
        raise TinysegError(
            f"--val-fraction {fraction:g} leaves fold {n} no training group "
            f"({sizes.sum() - sizes[n]} group(s) outside the fold)"
        )
    if not _can_fill(sizes, need):
        raise TinysegError(
            f"--val-fraction {fraction:g}: too few groups for a validation part in every fold "
            f"(a group validates one fold only: keep the fraction at or below about "
            f"1/(K-1) = {1 / (k - 1):.3g})"
        )
    val = np.full(n_groups, -1, dtype=np.int64)
    left = sizes.copy()
    for n in range(k):
        covered = np.zeros(presence.shape[1], dtype=bool)
        while need[n] > 0:
            need[n] -= 1
            allowed = _usable_folds(left, need, n)
            candidates = np.flatnonzero((val < 0) & (fold >= 0) & allowed[np.maximum(fold, 0)])
            gain = presence[candidates][:, ~covered] @ rarity[~covered]
            best = np.lexsort((-rank[candidates], left[fold[candidates]], gain))[-1]
            g = candidates[best]
            val[g] = n
            left[fold[g]] -= 1
            covered |= presence[g]
    return val


def _usable_folds(left: np.ndarray, need: np.ndarray, n: int) -> np.ndarray:
    """Folds whose group may validate fold ``n`` now, leaving ``need`` still fillable."""
    folds = np.arange(left.size)
    return np.array(
        [m != n and left[m] > 0 and _can_fill(left - (folds == m), need) for m in folds]
    )


def _can_fill(left: np.ndarray, need: np.ndarray) -> bool:
    """Whether ``left`` groups per fold can still fill the validation parts ``need`` per
    fold, a group never validating its own fold: Hall's condition, which for this
    structure is the total, and each fold's need from the other folds."""
    total = int(left.sum())
    return int(need.sum()) <= total and bool((need <= total - left).all())


def region_rois(roi: Roi, side: str, fraction: float) -> tuple[Roi, Roi]:
    """The ``side`` region of ``roi`` holding round(fraction × its extent) rows (top,
    bottom) or columns (left, right), and the rest of ``roi``; ValueError when one of the
    two would be empty."""
    y0, x0, y1, x1 = roi
    extent = (y1 - y0) if side in ("top", "bottom") else (x1 - x0)
    n = math.floor(fraction * extent + 0.5)
    if not 0 < n < extent:
        raise ValueError(
            f"{side}:{fraction:g} of {extent} {'rows' if side in ('top', 'bottom') else 'columns'}"
            f" leaves an empty {'region' if n <= 0 else 'rest'}"
        )
    if side == "top":
        return (y0, x0, y0 + n, x1), (y0 + n, x0, y1, x1)
    if side == "bottom":
        return (y1 - n, x0, y1, x1), (y0, x0, y1 - n, x1)
    if side == "left":
        return (y0, x0, y1, x0 + n), (y0, x0 + n, y1, x1)
    return (y0, x1 - n, y1, x1), (y0, x0, y1, x1 - n)


def _overlap(a: Roi | None, b: Roi | None) -> bool:
    """Whether two windows of one image share a pixel (None: the whole image)."""
    if a is None or b is None:
        return True
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def find_leak(
    sample_ids: Sequence[str],
    parts: Sequence[str],
    groups: Sequence[Hashable] | None = None,
    sources: Sequence[str | None] | None = None,
    rois: Sequence[Roi | None] | None = None,
) -> str | None:
    """The first leak of a split table, described in words, or None.

    ``parts`` names each row's split/fold assignment. A leak is a sample id twice, one image
    (``sources``) with the same ROI twice, a group in two parts, or overlapping windows of
    one image in two parts.
    """
    first: dict[Hashable, int] = {}
    for row, sample_id in enumerate(sample_ids):
        seen = first.setdefault(sample_id, row)
        if seen != row:
            return f"sample {sample_id!r} appears twice (rows {seen} and {row})"
    if groups is not None:
        first = {}
        for row, group in enumerate(groups):
            seen = first.setdefault(group, row)
            if parts[seen] != parts[row]:
                return (
                    f"group {group!r} crosses splits: {parts[seen]} (row {seen}) and "
                    f"{parts[row]} (row {row})"
                )
    if sources is None:
        return None
    windows = list(rois) if rois is not None else [None] * len(sources)
    by_source: dict[str, list[int]] = {}
    for row, source in enumerate(sources):
        if source is not None:
            by_source.setdefault(source, []).append(row)
    for source, rows in by_source.items():
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if windows[a] == windows[b]:
                    return f"rows {a} and {b} are the same image and ROI ({source})"
                if parts[a] != parts[b] and _overlap(windows[a], windows[b]):
                    return (
                        f"rows {a} ({parts[a]}) and {b} ({parts[b]}) overlap in one image "
                        f"({source})"
                    )
    return None

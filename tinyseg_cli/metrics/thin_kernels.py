"""The compiled loops of the thinning (:mod:`tinyseg_cli.metrics.thinning`) and of relaxed
counting after it. Numba, because a sweep thins once per threshold and a thinning is hundreds
of tiny steps: written with NumPy calls it took 0.89 ms a threshold on CrackForest-sized maps,
mostly the calls' overhead, and 70 % of a relaxed sweep; compiled, 0.20 ms. Imported only by
what thins (numba's import and the cached kernels' load cost ~0.3 s once per process, the
first compilation ~1 s); compiled code is cached beside this file (or in numba's user cache
when that folder is read-only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit


def _compiled(function: Callable) -> Callable:
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba finds no writable folder for its cache: compile every run
        return njit(nogil=True)(function)


@_compiled
def set_pixels(image: np.ndarray, code: np.ndarray, pixels: np.ndarray, steps: np.ndarray) -> None:
    """Set new foreground pixels (flat indices of a padded image) and tell their
    neighbours: the neighbour at +steps[bit] sees the new pixel in direction bit + 4."""
    for p in pixels:
        image[p] = True
        for bit in range(8):
            code[p + steps[bit]] |= np.uint8(1 << ((bit + 4) % 8))


@_compiled
def thin_in_place(
    image: np.ndarray,
    code: np.ndarray,
    pixels: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    steps: np.ndarray,
    is_candidate: np.ndarray,
) -> None:
    """Repeat both subiterations of the thinning on ``image`` (and its neighbourhood codes)
    until two in a row delete nothing. ``pixels``: all its foreground; ``is_candidate``: all
    False, and left so. Candidates are the pixels with a background 4-neighbour, renewed
    around each deletion; every candidate's fate in a subiteration is decided before any
    is deleted (the algorithm is parallel)."""
    candidates = np.empty(pixels.size, np.int64)
    deleted = np.empty(pixels.size, np.int64)
    count = 0
    for p in pixels:
        if (code[p] & 0x55) != 0x55:  # x1, x3, x5, x7 (E, N, W, S) not all set
            candidates[count] = p
            is_candidate[p] = True
            count += 1
    idle = 0
    subiteration = 0
    while idle < 2 and count > 0:
        table = first if subiteration % 2 == 0 else second
        subiteration += 1
        n_deleted = 0
        for i in range(count):
            if table[code[candidates[i]]]:
                deleted[n_deleted] = candidates[i]
                n_deleted += 1
        if n_deleted == 0:
            idle += 1
            continue
        idle = 0
        for j in range(n_deleted):
            p = deleted[j]
            image[p] = False
            is_candidate[p] = False
            for bit in range(8):
                code[p + steps[bit]] &= np.uint8(~(1 << ((bit + 4) % 8)) & 0xFF)
        kept = 0
        for i in range(count):
            if image[candidates[i]]:
                candidates[kept] = candidates[i]
                kept += 1
        # a 4-neighbour of a deleted pixel now has a background 4-neighbour; no other
        # pixel's 4-neighbours changed, so the candidates stay exactly the foreground
        # pixels with a background 4-neighbour
        for j in range(n_deleted):
            for bit in range(0, 8, 2):
                q = deleted[j] + steps[bit]
                if image[q] and not is_candidate[q]:
                    is_candidate[q] = True
                    candidates[kept] = q
                    kept += 1
        count = kept
    for i in range(count):
        is_candidate[candidates[i]] = False


@_compiled
def relaxed_counts(
    pixels: np.ndarray,
    width: int,
    close: np.ndarray,
    index: np.ndarray,
    reach: int,
    dy: np.ndarray,
    dx: np.ndarray,
    hit: np.ndarray,
    stamp: int,
) -> tuple[int, int]:
    """(predicted pixels with a truth pixel within the radius, truth pixels with a predicted
    pixel within it) for predicted ``pixels`` (flat indices of an image padded by 1 and
    ``width`` wide). ``close``: pixels within the radius of the truth; ``index``: the truth
    pixels' numbers on the image padded by ``reach`` (-1 elsewhere); ``hit``: per truth
    pixel, the last ``stamp`` that found it (so it is never cleared)."""
    correct = 0
    found = 0
    for p in pixels:
        y = p // width - 1
        x = p % width - 1
        if not close[y, x]:
            continue
        correct += 1
        for k in range(dy.size):
            t = index[y + reach + dy[k], x + reach + dx[k]]
            if t >= 0 and hit[t] != stamp:
                hit[t] = stamp
                found += 1
    return correct, found

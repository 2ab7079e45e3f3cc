"""The compiled loops of counting within a tolerance (:mod:`tinyseg_cli.metrics.tolerance`):
the thinning (:mod:`tinyseg_cli.metrics.thinning`), relaxed counting and the maximum
matching. Numba, because a sweep thins and counts once per threshold and each is hundreds of
tiny steps: the thinning written with NumPy calls took 0.89 ms a threshold on
CrackForest-sized maps, mostly the calls' overhead, and 70 % of a relaxed sweep; compiled,
0.20 ms. Imported only by what counts within a tolerance (numba's import and the cached
kernels' load cost ~0.3 s once per process, the first compilation a few seconds); compiled
code is cached beside this file (or in numba's user cache when that folder is read-only)."""

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
    pixel within it) for predicted ``pixels`` (flat indices of the image, ``width`` wide).
    ``close``: pixels within the radius of the truth; ``index``: the truth pixels' numbers on
    the image padded by ``reach`` (-1 elsewhere); ``hit``: per truth pixel, the last
    ``stamp`` that found it (so it is never cleared)."""
    correct = 0
    found = 0
    for p in pixels:
        y = p // width
        x = p % width
        if not close[y, x]:
            continue
        correct += 1
        for k in range(dy.size):
            t = index[y + reach + dy[k], x + reach + dx[k]]
            if t >= 0 and hit[t] != stamp:
                hit[t] = stamp
                found += 1
    return correct, found


@_compiled
def maximum_matching(
    pixels: np.ndarray,
    width: int,
    index: np.ndarray,
    reach: int,
    dy: np.ndarray,
    dx: np.ndarray,
    partner: np.ndarray,
    slot: np.ndarray,
) -> int:
    """The size of a maximum one-to-one matching of predicted ``pixels`` (flat indices of
    the unpadded image, ``width`` wide) to the truth pixels within the radius (``index``:
    their numbers on the image padded by ``reach``, -1 elsewhere; ``dy``, ``dx``: the disk).

    Hopcroft–Karp, started from the matching of the last call: ``partner`` holds, per truth
    pixel, the predicted pixel it was matched to (-1: none) and is updated; its pairs whose
    predicted pixel is still here are kept (any matching is a valid start, and a sweep's
    next threshold keeps most pairs), so a phase or two completes it. A vertex whose search
    fails is marked dead for the phase, so a phase is linear in the edges (scipy's
    ``maximum_bipartite_matching`` does not, scipy issue #26147). ``slot``: -1 per pixel of
    the image, and left so."""
    n = pixels.size
    m = partner.size
    for i in range(n):
        slot[pixels[i]] = i
    # the edges, in CSR rows: each predicted pixel's truth pixels within the radius
    starts = np.zeros(n + 1, np.int64)
    ends = np.empty(n * dy.size, np.int64)
    count = 0
    for i in range(n):
        y = pixels[i] // width
        x = pixels[i] % width
        for k in range(dy.size):
            t = index[y + reach + dy[k], x + reach + dx[k]]
            if t >= 0:
                ends[count] = t
                count += 1
        starts[i + 1] = count
    left = np.full(n, -1, np.int64)  # the truth pixel each predicted pixel is matched to
    right = np.full(m, -1, np.int64)  # the predicted pixel (its row) each truth pixel is
    matched = 0
    for t in range(m):
        p = partner[t]
        if p >= 0 and slot[p] >= 0:
            left[slot[p]] = t
            right[t] = slot[p]
            matched += 1
    unreached = n + 1
    layer = np.empty(n, np.int64)
    queue = np.empty(n, np.int64)
    cursor = np.empty(n, np.int64)
    stack = np.empty(n, np.int64)
    via = np.empty(n, np.int64)
    while True:
        # breadth first from the free predicted pixels, through matched pairs
        tail = 0
        for i in range(n):
            if left[i] < 0 and starts[i + 1] > starts[i]:
                layer[i] = 0
                queue[tail] = i
                tail += 1
            else:
                layer[i] = unreached
        head = 0
        free_reached = False
        while head < tail:
            u = queue[head]
            head += 1
            for e in range(starts[u], starts[u + 1]):
                w = right[ends[e]]
                if w < 0:
                    free_reached = True
                elif layer[w] == unreached:
                    layer[w] = layer[u] + 1
                    queue[tail] = w
                    tail += 1
        if not free_reached:
            break
        # depth first along the layers from each free predicted pixel; augment on reaching a
        # free truth pixel, mark a pixel dead when its edges are spent
        for i in range(n):
            cursor[i] = starts[i]
        for root in range(n):
            if left[root] >= 0 or layer[root] != 0:
                continue
            depth = 0
            stack[0] = root
            while depth >= 0:
                u = stack[depth]
                advanced = False
                while cursor[u] < starts[u + 1]:
                    t = ends[cursor[u]]
                    cursor[u] += 1
                    w = right[t]
                    if w < 0:
                        via[depth] = t
                        for level in range(depth + 1):
                            left[stack[level]] = via[level]
                            right[via[level]] = stack[level]
                        matched += 1
                        depth = -1
                        advanced = True
                        break
                    if layer[w] == layer[u] + 1:
                        via[depth] = t
                        depth += 1
                        stack[depth] = w
                        advanced = True
                        break
                if not advanced:
                    layer[u] = unreached  # dead for this phase
                    depth -= 1
    for t in range(m):
        partner[t] = pixels[right[t]] if right[t] >= 0 else -1
    for i in range(n):
        slot[pixels[i]] = -1
    return matched

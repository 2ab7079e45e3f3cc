"""Class weights from class pixel counts (SPEC §6.2): pure functions, no I/O.

A class with no pixels gets weight 0 and is left out of every normalisation sum, so the
weights of the other classes are those of the class map without it; whether an absent
class is allowed at all is the caller's decision (``classweights --allow-missing``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCHEMES = ("icf", "iscf", "max-ratio", "uniform")


def _check(pixels: Sequence[int] | np.ndarray, scheme: str) -> np.ndarray:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")
    counts = np.asarray(pixels, dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError("pixel counts must be a 1D array of non-negative integers")
    if not counts.any():
        raise ValueError("no class has any pixel")
    return counts


def frequency_terms(pixels: Sequence[int] | np.ndarray, scheme: str) -> np.ndarray:
    """f_c of SPEC §6.2: 1/n_c (icf), 1/√n_c (iscf), 1 (uniform); 0 where n_c = 0."""
    counts = _check(pixels, scheme).astype(np.float64)
    present = counts > 0
    terms = np.zeros_like(counts)
    if scheme == "icf":
        terms[present] = 1.0 / counts[present]
    elif scheme == "iscf":
        terms[present] = 1.0 / np.sqrt(counts[present])
    elif scheme == "uniform":
        terms[present] = 1.0
    else:
        raise ValueError(f"scheme {scheme!r} has no frequency term")
    return terms


def max_ratio(pixels: Sequence[int] | np.ndarray) -> np.ndarray:
    """w_c = max_k n_k / n_c (the largest class gets 1; SPEC §6.2); 0 where n_c = 0."""
    counts = _check(pixels, "max-ratio")
    weights = np.zeros(counts.shape, dtype=np.float64)
    present = counts > 0
    weights[present] = counts.max() / counts[present]
    return weights


def class_weights(pixels: Sequence[int] | np.ndarray, scheme: str) -> np.ndarray:
    """Weights of every class (SPEC §6.2).

    icf, iscf and uniform are normalised, α_c = C·f_c / Σ_k f_k, so that they sum to C, the
    number of classes with pixels; max-ratio is not normalised.
    """
    if scheme == "max-ratio":
        return max_ratio(pixels)
    terms = frequency_terms(pixels, scheme)
    return np.count_nonzero(terms) * terms / terms.sum()


def binary_weights(positive: int, negative: int, scheme: str) -> tuple[float, float]:
    """One-vs-rest weights ``(α_neg, α_pos)`` of a class with ``positive`` pixels against
    the ``negative`` pixels of all other classes (SPEC §6.2 ``--binary``).

    icf, iscf, uniform: α_pos = f_pos / (f_pos + f_neg), α_neg = 1 − α_pos (uniform gives
    0.5, 0.5). max-ratio: the ratio rule on the two counts, unnormalised, so the larger
    side gets 1 and the smaller one n_larger / n_smaller (normalising it would give icf).
    """
    if scheme == "max-ratio":
        w_neg, w_pos = max_ratio([negative, positive])
        return float(w_neg), float(w_pos)
    f_neg, f_pos = frequency_terms([negative, positive], scheme)
    alpha_pos = float(f_pos / (f_pos + f_neg))
    return 1.0 - alpha_pos, alpha_pos

"""Defect-level scoring: connected components of truth and prediction per class, matched one
to one, and the object counts they give (SPEC §4.7, ``score --objects``).

Labelling is connected-components-3d's multi-label pass: one call labels the components of
every class at once (a component never crosses a class boundary), 9× faster than
``scipy.ndimage.label`` called once per class on 3-class 1024² maps (0.63 ms against 6.9 ms,
measured with both installed). Everything after the labelling works on the foreground pixels
only, which are a small share of an imbalanced map.

Matching rules (``--match``): ``overlap`` pairs a true and a predicted object of one class
that share a pixel; ``iou:T`` needs their IoU ≥ T; ``cover:T`` needs ≥ T of the true object
covered by the prediction. Each object is matched at most once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyseg_cli.errors import UsageError

RuleKind = Literal["overlap", "iou", "cover"]
DEFAULT_SIZE_BINS = (4, 16, 64, 256)


@dataclass(frozen=True)
class MatchRule:
    """When a true and a predicted object of one class may be matched."""

    kind: RuleKind = "overlap"
    threshold: float = 0.0

    def __str__(self) -> str:
        return "overlap" if self.kind == "overlap" else f"{self.kind}:{self.threshold:g}"


@dataclass(frozen=True)
class ObjectOptions:
    """How components are found, matched and binned by size."""

    connectivity: int = 8
    rule: MatchRule = MatchRule()
    size_bins: tuple[int, ...] = DEFAULT_SIZE_BINS


def parse_match(text: str) -> MatchRule:
    """``overlap``, ``iou:T`` or ``cover:T`` with 0 < T ≤ 1."""
    kind, sep, value = text.partition(":")
    if kind == "overlap" and not sep:
        return MatchRule()
    if kind in ("iou", "cover") and sep:
        try:
            threshold = float(value)
        except ValueError:
            threshold = float("nan")
        if 0 < threshold <= 1:
            return MatchRule(kind, threshold)  # type: ignore[arg-type]
        raise UsageError(f"--match {text}: T must be a number in (0, 1]")
    raise UsageError(f"--match {text}: expected overlap, iou:T or cover:T")


def parse_size_bins(text: str) -> tuple[int, ...]:
    """Increasing positive areas in pixels, e.g. ``4,16,64,256``."""
    try:
        edges = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--size-bins {text}: expected increasing integers such as 4,16,64"
        ) from None
    if not edges or edges[0] < 1 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise UsageError(f"--size-bins {text}: expected increasing integers ≥ 1 such as 4,16,64")
    return edges


def size_bin_names(edges: tuple[int, ...]) -> list[str]:
    """``le4``, ``le16``, …, ``gt256``: the bins' names in tables and JSON."""
    return [f"le{edge}" for edge in edges] + [f"gt{edges[-1]}"]


@dataclass
class Components:
    """The connected components of one label map (ids 1..n; 0 is no object)."""

    labels: np.ndarray  # H×W component ids
    class_index: np.ndarray  # (n + 1,) class of each id
    area: np.ndarray  # (n + 1,) pixels
    bbox: np.ndarray  # (n + 1, 4) y0, x0, y1, x1 (exclusive ends)
    centroid: np.ndarray  # (n + 1, 2) y, x
    pixels: np.ndarray  # flat indices of the object pixels

    @property
    def count(self) -> int:
        return len(self.area) - 1


def sparse_nonzero(values: np.ndarray) -> np.ndarray:
    """Flat indices of the non-zero entries of a C-contiguous array, as ``np.flatnonzero``.

    For 8-bit maps it scans 8 bytes at a time and then only the non-zero words: object
    pixels are sparse (1 in 100–2,000), so this is about 3× faster than ``np.flatnonzero``
    on a 1024² mask (0.5 ms against 1.5). Dense maps take ``np.flatnonzero`` directly.
    """
    flat = values.reshape(-1)
    if flat.dtype.itemsize != 1 or flat.size < 64:
        return np.flatnonzero(flat)
    whole = flat.size - flat.size % 8
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    if words.size > whole // 64:  # dense: the candidates would outgrow the saving
        return np.flatnonzero(flat)
    candidates = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    found = candidates[flat[candidates] != 0]
    tail = np.flatnonzero(flat[whole:])
    return np.concatenate([found, tail + whole]) if tail.size else found


def components(classes: np.ndarray, connectivity: int) -> Components:
    """Components of every non-zero class of ``classes`` (H×W integer labels)."""
    import cc3d  # imported here: only ``score --objects`` and ``overlay`` need it

    if not (classes.flags.writeable and classes.flags.c_contiguous):
        classes = np.array(classes, order="C")  # cc3d's Cython buffers need a writable array
    labels = cc3d.connected_components(classes, connectivity=connectivity)
    # The few object pixels, found on the 8-bit class map (4× less to scan than the ids).
    pixels = sparse_nonzero(classes)
    ids = labels.reshape(-1)[pixels].astype(np.int64)
    n = int(ids.max()) if ids.size else 0
    class_index = np.zeros(n + 1, dtype=np.int64)
    class_index[ids] = classes.reshape(-1)[pixels]
    area = np.bincount(ids, minlength=n + 1)
    ys, xs = np.divmod(pixels, classes.shape[1])
    bbox = np.zeros((n + 1, 4), dtype=np.int64)
    centroid = np.zeros((n + 1, 2), dtype=np.float64)
    if n:
        order = np.argsort(ids, kind="stable")
        starts = np.searchsorted(ids[order], np.arange(1, n + 1))
        sorted_y, sorted_x = ys[order], xs[order]
        bbox[1:, 0] = np.minimum.reduceat(sorted_y, starts)
        bbox[1:, 1] = np.minimum.reduceat(sorted_x, starts)
        bbox[1:, 2] = np.maximum.reduceat(sorted_y, starts) + 1
        bbox[1:, 3] = np.maximum.reduceat(sorted_x, starts) + 1
        centroid[1:, 0] = np.bincount(ids, ys, minlength=n + 1)[1:] / area[1:]
        centroid[1:, 1] = np.bincount(ids, xs, minlength=n + 1)[1:] / area[1:]
    return Components(labels, class_index, area, bbox, centroid, pixels)


@dataclass
class Matching:
    """One sample's objects and their one-to-one matches."""

    truth: Components
    pred: Components
    truth_match: np.ndarray  # (n_truth + 1,) matched predicted id, 0 when missed
    pred_match: np.ndarray  # (n_pred + 1,) matched true id, 0 when false
    truth_iou: np.ndarray  # (n_truth + 1,) IoU with its match (0 when missed)
    pred_iou: np.ndarray


def match_objects(
    truth: np.ndarray,
    pred: np.ndarray,
    options: ObjectOptions,
    ignore_index: int | None = None,
) -> Matching:
    """Components of ``truth`` and ``pred`` (H×W class labels; class 0 is background) and
    their one-to-one matching under ``options.rule``. Pixels whose truth is ``ignore_index``
    belong to no object, in either map."""
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if ignore_index is not None and (truth == ignore_index).any():
        ignored = truth == ignore_index
        truth = np.where(ignored, 0, truth)
        pred = np.where(ignored, 0, pred)
    true_objects = components(truth, options.connectivity)
    pred_objects = components(pred, options.connectivity)
    pairs, inter = _overlaps(true_objects, pred_objects, truth, pred)
    t_ids, p_ids = pairs
    union = true_objects.area[t_ids] + pred_objects.area[p_ids] - inter
    iou = inter / np.maximum(union, 1)
    eligible = _eligible(options.rule, inter, iou, true_objects.area[t_ids])
    t_ids, p_ids, iou = t_ids[eligible], p_ids[eligible], iou[eligible]
    chosen = _assign(t_ids, p_ids, iou)
    truth_match = np.zeros(true_objects.count + 1, dtype=np.int64)
    pred_match = np.zeros(pred_objects.count + 1, dtype=np.int64)
    truth_iou = np.zeros(true_objects.count + 1, dtype=np.float64)
    pred_iou = np.zeros(pred_objects.count + 1, dtype=np.float64)
    truth_match[t_ids[chosen]] = p_ids[chosen]
    pred_match[p_ids[chosen]] = t_ids[chosen]
    truth_iou[t_ids[chosen]] = iou[chosen]
    pred_iou[p_ids[chosen]] = iou[chosen]
    return Matching(true_objects, pred_objects, truth_match, pred_match, truth_iou, pred_iou)


def _overlaps(
    true_objects: Components, pred_objects: Components, truth: np.ndarray, pred: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Pairs (true id, predicted id) of one class sharing pixels, and the shared pixel count."""
    t_flat = true_objects.labels.reshape(-1)
    p_flat = pred_objects.labels.reshape(-1)
    pixels = true_objects.pixels
    pixels = pixels[(p_flat[pixels] != 0) & (truth.reshape(-1)[pixels] == pred.reshape(-1)[pixels])]
    stride = pred_objects.count + 1
    codes = t_flat[pixels].astype(np.int64) * stride + p_flat[pixels]
    unique, inter = np.unique(codes, return_counts=True)
    return np.divmod(unique, stride), inter


def _eligible(
    rule: MatchRule, inter: np.ndarray, iou: np.ndarray, true_area: np.ndarray
) -> np.ndarray:
    if rule.kind == "iou":
        return iou >= rule.threshold
    if rule.kind == "cover":
        return inter / true_area >= rule.threshold
    return inter > 0


def _assign(t_ids: np.ndarray, p_ids: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Indices of the chosen candidate pairs: the most matches, then the largest summed IoU.

    Most objects have one candidate, taken as is. Where candidates compete (a split or merged
    defect) the pairs go to scipy's ``linear_sum_assignment`` (a Jonker–Volgenant solver,
    exact and O(n³) on the small competing block) with weight ``M + IoU``, ``M`` larger
    than the number of possible matches: a matching with one more pair always weighs more,
    so the assignment maximises the number of matched objects first and their IoU second.
    """
    if t_ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    t_count = np.bincount(t_ids)[t_ids]
    p_count = np.bincount(p_ids)[p_ids]
    alone = (t_count == 1) & (p_count == 1)
    chosen = [np.flatnonzero(alone)]
    contested = np.flatnonzero(~alone)
    if contested.size:
        from scipy.optimize import linear_sum_assignment

        rows, t_index = np.unique(t_ids[contested], return_inverse=True)
        cols, p_index = np.unique(p_ids[contested], return_inverse=True)
        big = min(len(rows), len(cols)) + 1.0
        weight = np.zeros((len(rows), len(cols)))
        weight[t_index, p_index] = big + iou[contested]
        pair_of = np.full((len(rows), len(cols)), -1, dtype=np.int64)
        pair_of[t_index, p_index] = contested
        row_pick, col_pick = linear_sum_assignment(weight, maximize=True)
        picked = pair_of[row_pick, col_pick]
        chosen.append(picked[picked >= 0])
    return np.sort(np.concatenate(chosen))


@dataclass
class ObjectCounts:
    """Additive object counts of one sample per class (arrays indexed by class)."""

    true: np.ndarray  # true objects
    pred: np.ndarray  # predicted objects
    matched: np.ndarray  # matched pairs (= detected true objects = true predictions)
    iou_sum: np.ndarray  # summed IoU of the matched pairs (float)
    true_by_size: np.ndarray  # (classes, bins) true objects per size bin
    matched_by_size: np.ndarray  # (classes, bins) detected true objects per size bin


def object_counts(matching: Matching, n_classes: int, size_bins: tuple[int, ...]) -> ObjectCounts:
    """The per-class counts of one sample's matching; true objects are binned by area
    (``size_bins`` 4,16 → ≤ 4, 5–16, > 16 pixels)."""
    truth, pred = matching.truth, matching.pred
    t_class, p_class = truth.class_index[1:], pred.class_index[1:]
    detected = matching.truth_match[1:] > 0
    n_bins = len(size_bins) + 1
    size = np.searchsorted(np.asarray(size_bins), truth.area[1:], side="left")
    cell = t_class * n_bins + size
    return ObjectCounts(
        true=np.bincount(t_class, minlength=n_classes),
        pred=np.bincount(p_class, minlength=n_classes),
        matched=np.bincount(t_class[detected], minlength=n_classes),
        iou_sum=np.bincount(t_class, matching.truth_iou[1:], minlength=n_classes),
        true_by_size=np.bincount(cell, minlength=n_classes * n_bins).reshape(n_classes, n_bins),
        matched_by_size=np.bincount(cell[detected], minlength=n_classes * n_bins).reshape(
            n_classes, n_bins
        ),
    )


def object_records(matching: Matching) -> dict[str, np.ndarray]:
    """One row per true and per predicted object: class, id, kind, area, bbox, centroid,
    matched id (0: none) and IoU with it (the ``--objects-out`` table, SPEC §4.7)."""
    parts = [
        (matching.truth, "truth", matching.truth_match, matching.truth_iou),
        (matching.pred, "pred", matching.pred_match, matching.pred_iou),
    ]
    columns: dict[str, list[np.ndarray]] = {}
    for objects, kind, match, iou in parts:
        values = {
            "class_index": objects.class_index[1:],
            "object_id": np.arange(1, objects.count + 1),
            "kind": np.full(objects.count, kind),
            "area": objects.area[1:],
            "y0": objects.bbox[1:, 0],
            "x0": objects.bbox[1:, 1],
            "y1": objects.bbox[1:, 2],
            "x1": objects.bbox[1:, 3],
            "centroid_y": objects.centroid[1:, 0],
            "centroid_x": objects.centroid[1:, 1],
            "matched_id": match[1:],
            "iou": iou[1:],
        }
        for name, array in values.items():
            columns.setdefault(name, []).append(array)
    return {name: np.concatenate(arrays) for name, arrays in columns.items()}

"""Metric formulas of SPEC §5 against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyseg_cli.metrics import functional as F
from tinyseg_cli.metrics.summary import across_runs, summarize


def one(fn, tp, fp, fn_, tn=0, **kwargs) -> float:
    return float(fn(np.array(tp), np.array(fp), np.array(fn_), np.array(tn), **kwargs))


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "expected"),
    [(2, 1, 1, 0.126), (2, 3, 3, 0.344), (2, 4, 2, -0.563)],  # SPEC §5 worked values
)
def test_oii_worked_values(tp, fp, fn, expected):
    assert one(F.oii, tp, fp, fn) == pytest.approx(expected, abs=5e-4)


def test_oii_closed_form_by_hand():
    # TP:FP:FN = 2:1:1 -> x = 1, k = 1 - (2/pi) atan(0.2), OII = 1 - k/1
    k = 1 - 2 / math.pi * math.atan(2 / 10)
    assert one(F.oii, 2, 1, 1) == pytest.approx(1 - k, rel=1e-12)
    # 10:1:4 -> x = 0.25 <= 1: shape = 0.25 + 4 - 1 = 3.25, k = 1 - (2/pi) atan(5/50)
    k = 1 - 2 / math.pi * math.atan(5 / 50)
    assert one(F.oii, 10, 1, 4) == pytest.approx(1 - k / 3.25, rel=1e-12)
    # 10:4:1 -> x = 4 > 1: same shape and k, OII = k/3.25 - 1 (mirror image, negative)
    assert one(F.oii, 10, 4, 1) == pytest.approx(k / 3.25 - 1, rel=1e-12)


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "expected"),
    [
        (5, 3, 0, -1.0),  # FN = 0 < FP
        (5, 0, 3, 1.0),  # FP = 0 < FN
        (5, 0, 0, 0.0),  # FP = FN = 0
        (0, 3, 0, 1.0),  # TP = 0 with FP + FN > 0: 1 by convention
        (0, 0, 3, 1.0),
        (0, 2, 5, 1.0),
    ],
)
def test_oii_limits(tp, fp, fn, expected):
    assert one(F.oii, tp, fp, fn) == expected


def test_oii_nothing_to_measure_is_null_or_empty_policy():
    assert math.isnan(one(F.oii, 0, 0, 0))
    assert one(F.oii, 0, 0, 0, empty=1.0) == 1.0


def test_oii_sign_and_range():
    rng = np.random.default_rng(0)
    tp, fp, fn = (rng.integers(1, 1000, 5000) for _ in range(3))
    values = F.oii(tp, fp, fn, 0)
    assert np.all((values >= -1) & (values <= 1))
    assert np.all(values[fp > fn] < 0) and np.all(values[fp < fn] > 0)


def test_basic_ratios_by_hand():
    # TP 3, FP 1, FN 2, TN 14
    assert one(F.recall, 3, 1, 2, 14) == pytest.approx(3 / 5)
    assert one(F.precision, 3, 1, 2, 14) == pytest.approx(3 / 4)
    assert one(F.fpr, 3, 1, 2, 14) == pytest.approx(1 / 15)
    assert one(F.iou, 3, 1, 2, 14) == pytest.approx(3 / 6)
    assert one(F.f1, 3, 1, 2, 14) == pytest.approx(6 / 9)
    assert one(F.f2, 3, 1, 2, 14) == pytest.approx(15 / (15 + 8 + 1))
    assert float(F.fbeta(3, 1, 2, 0.5)) == pytest.approx(3.75 / (3.75 + 0.5 + 1))


def test_fbeta_count_form_equals_ratio_form_when_defined():
    p, r = 3 / 4, 3 / 5
    for beta in (0.5, 1, 2, 3):
        b2 = beta**2
        assert float(F.fbeta(3, 1, 2, beta)) == pytest.approx((1 + b2) * p * r / (b2 * p + r))


def test_fbeta_is_zero_not_null_when_tp_is_zero():
    assert float(F.fbeta(0, 4, 2, 2.0)) == 0.0
    assert math.isnan(float(F.fbeta(0, 0, 0, 2.0)))


def test_recall_weighted_examples_of_the_spec():
    # recall 1, precision 0.25 -> r.w. F1 0.4; recall 0.4, precision 0.4 -> 0.16
    assert one(F.rw_f1, 1, 3, 0) == pytest.approx(0.4)
    assert one(F.rw_f1, 2, 3, 3) == pytest.approx(0.16)
    assert one(F.rw_iou, 2, 3, 3) == pytest.approx(2 / 8 * 0.4)


def test_zero_over_zero_is_null_never_zero():
    assert math.isnan(one(F.recall, 0, 5, 0, 10))
    assert math.isnan(one(F.precision, 0, 0, 5, 10))
    assert math.isnan(one(F.iou, 0, 0, 0, 10))
    assert one(F.recall, 0, 5, 0, 10, empty=0.0) == 0.0
    assert one(F.precision, 0, 0, 5, 10, empty=1.0) == 1.0


def hand_counts():
    # Confusion matrix of tests/test_counts.py::test_confusion_by_hand: classes 0, 1, 2.
    return {
        "tp": np.array([1, 1, 1]),
        "fp": np.array([1, 0, 1]),
        "fn": np.array([1, 1, 0]),
        "tn": np.array([2, 3, 3]),
    }


def test_summary_micro_macro_oa_miou_by_hand():
    s = summarize(hand_counts(), averaged=[1, 2], n_samples=1)
    # micro over classes 1 and 2: TP 2, FP 1, FN 1, TN 6
    assert s.micro["recall"] == pytest.approx(2 / 3)
    assert s.micro["iou"] == pytest.approx(0.5)
    assert s.micro["f2"] == pytest.approx(10 / 15)
    assert s.micro["oii"] == pytest.approx(0.126, abs=5e-4)  # same ratio as 2:1:1
    # macro: class 1 (recall 1/2, precision 1, f2 5/9, oii 1), class 2 (1, 1/2, 5/6, -1)
    assert s.macro["recall"] == pytest.approx(0.75)
    assert s.macro["precision"] == pytest.approx(0.75)
    assert s.macro["f2"] == pytest.approx((5 / 9 + 5 / 6) / 2)
    assert s.macro["oii"] == pytest.approx(0.0)
    assert s.oa == pytest.approx(3 / 5)
    assert s.miou == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)


def test_macro_skips_null_and_counts_defined_classes():
    counts = {
        "tp": np.array([5, 2, 0]),
        "fp": np.array([0, 2, 0]),
        "fn": np.array([0, 0, 3]),
        "tn": np.array([5, 6, 7]),
    }
    s = summarize(counts, averaged=[1, 2], n_samples=1)
    # class 2 never predicted: precision 0/0 -> null, left out of the macro mean
    assert s.macro["precision"] == pytest.approx(0.5)
    assert s.macro_defined["precision"] == 1
    assert s.macro["recall"] == pytest.approx((1.0 + 0.0) / 2)
    assert s.macro_defined["recall"] == 2


def test_across_runs_mean_and_sample_std():
    mean, std = across_runs([{"a": 0.2, "b": math.nan}, {"a": 0.4, "b": 0.5}, {"a": 0.9}])
    assert mean["a"] == pytest.approx(0.5)
    assert std["a"] == pytest.approx(math.sqrt(((0.3**2) + (0.1**2) + (0.4**2)) / 2))
    assert mean["b"] == 0.5 and math.isnan(std["b"])

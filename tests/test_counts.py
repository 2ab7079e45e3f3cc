"""The counting kernel against hand-computed matrices and the field's libraries."""

from __future__ import annotations

import numpy as np
import pytest

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.metrics.counts import (
    LabelOutOfRange,
    confusion_block,
    confusion_matrix,
    one_vs_rest,
)

TRUTH = np.array([[0, 1, 1], [2, 0, 255]], dtype=np.uint8)
PRED = np.array([[0, 1, 0], [2, 2, 1]], dtype=np.uint8)


def test_confusion_by_hand():
    matrix = confusion_matrix(TRUTH, PRED, n_classes=3, ignore_index=255)
    # pixels (t, p): (0,0) (1,1) (1,0) (2,2) (0,2); (255, 1) is ignored
    assert matrix.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 1]]
    tp, fp, fn, tn = one_vs_rest(matrix)
    assert tp.tolist() == [1, 1, 1]
    assert fp.tolist() == [1, 0, 1]
    assert fn.tolist() == [1, 1, 0]
    assert tn.tolist() == [2, 3, 3]


def test_class_count_inferred_without_class_map():
    matrix = confusion_matrix(TRUTH, PRED, ignore_index=255)
    assert matrix.shape == (3, 3)
    assert matrix.sum() == 5


@pytest.mark.parametrize("block_pixels", [1, 2, 3, 5, 7, 1 << 20])
def test_block_size_does_not_change_counts(block_pixels):
    rng = np.random.default_rng(block_pixels)
    truth = rng.integers(0, 4, (37, 23)).astype(np.uint8)
    pred = rng.integers(0, 4, (37, 23)).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.1] = 255
    expected = np.zeros((4, 4), np.int64)
    keep = truth != 255
    np.add.at(expected, (truth[keep], pred[keep]), 1)
    got = confusion_matrix(truth, pred, n_classes=4, ignore_index=255, block_pixels=block_pixels)
    assert np.array_equal(got, expected)


def test_work_buffers_reused_across_sizes_and_types():
    # A large block, then smaller ones of other types and class counts: each count must see
    # only its own pixels, whatever the reused work buffers held before.
    big = np.ones(3000, np.uint8)
    assert confusion_matrix(big, big, n_classes=2)[1, 1] == 3000
    truth = np.array([0, 1, 1, 2], np.uint8)
    pred = np.array([0, 1, 2, 2], np.uint8)
    assert confusion_matrix(truth, pred, n_classes=3).tolist() == [
        [1, 0, 0],
        [0, 1, 1],
        [0, 0, 1],
    ]
    wide_truth = np.array([0, 20, 20], np.uint16)  # 21 classes: the int64 index path
    wide_pred = np.array([20, 20, 0], np.uint16)
    wide = confusion_matrix(wide_truth, wide_pred, n_classes=21)
    assert wide.sum() == 3 and wide[0, 20] == wide[20, 20] == wide[20, 0] == 1
    assert confusion_matrix(big[:5], big[:5], n_classes=2).tolist() == [[0, 0], [0, 5]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_dtypes_and_many_classes(dtype):
    rng = np.random.default_rng(3)
    n = 40 if dtype == np.uint8 else 300
    truth = rng.integers(0, n, 5000).astype(dtype)
    pred = rng.integers(0, n, 5000).astype(dtype)
    expected = np.zeros((n, n), np.int64)
    np.add.at(expected, (truth.astype(int), pred.astype(int)), 1)
    assert np.array_equal(confusion_matrix(truth, pred, n_classes=n, ignore_index=None), expected)


def test_ignore_index_inside_the_class_range():
    truth = np.array([0, 1, 1, 2], np.uint8)
    pred = np.array([0, 1, 2, 2], np.uint8)
    matrix = confusion_matrix(truth, pred, n_classes=3, ignore_index=1)
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]


def test_eight_bit_maps_with_ignored_pixels():
    # 255 in the truth is ignored (whatever the prediction there); counted by the byte-pair
    # table of 8-bit maps.
    truth = np.array([0, 255, 1, 1, 255, 2, 0], np.uint8)
    pred = np.array([0, 9, 1, 0, 255, 2, 1], np.uint8)
    expected = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert confusion_matrix(truth, pred, n_classes=3, ignore_index=255).tolist() == expected
    assert confusion_matrix(truth, pred, ignore_index=255).tolist() == expected  # K inferred
    wide = confusion_matrix(truth, pred, n_classes=300, ignore_index=255)  # K beyond a byte
    assert wide.shape == (300, 300) and wide[:3, :3].tolist() == expected and wide.sum() == 5
    everything_ignored = np.full(4, 255, np.uint8)
    assert confusion_matrix(everything_ignored, pred[:4], n_classes=2, ignore_index=255).sum() == 0
    bad_pred = np.array([0, 7, 1, 0, 7, 3, 1], np.uint8)  # 7s are ignored, the 3 is not
    with pytest.raises(LabelOutOfRange) as info:
        confusion_block(truth, bad_pred, n_classes=3, ignore_index=255, offset=4)
    assert (info.value.role, info.value.flat_index, info.value.value) == ("prediction", 9, 3)


def test_negative_ignore_index_for_point_labels():
    truth = np.array([0, -100, 1, 1], np.int16)
    pred = np.array([0, 1, 1, 0], np.int16)
    assert confusion_matrix(truth, pred, n_classes=2, ignore_index=-100).tolist() == [
        [1, 0],
        [1, 1],
    ]


def test_label_outside_class_map_names_position():
    truth = np.array([0, 1, 3, 1], np.uint8)
    with pytest.raises(LabelOutOfRange) as info:
        confusion_block(truth, np.zeros(4, np.uint8), n_classes=3, ignore_index=255, offset=10)
    assert (info.value.role, info.value.flat_index, info.value.value) == ("truth", 12, 3)
    pred = np.array([0, 7, 0, 0], np.uint8)
    with pytest.raises(LabelOutOfRange) as info:
        confusion_block(np.zeros(4, np.uint8), pred, n_classes=3, ignore_index=255)
    assert (info.value.role, info.value.flat_index) == ("prediction", 1)


def test_prediction_at_ignored_pixel_is_not_checked():
    truth = np.array([255, 0], np.uint8)
    pred = np.array([9, 0], np.uint8)
    assert confusion_matrix(truth, pred, n_classes=2, ignore_index=255).tolist() == [[1, 0], [0, 0]]


def test_shape_mismatch():
    with pytest.raises(TinysegError, match="shape mismatch"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))


def test_exact_beyond_float32_range():
    """More than 2**24 pixels of one class: float32 histograms lose counts, int64 does not."""
    side = 4200  # 17,640,000 pixels > 2**24 = 16,777,216
    truth = np.ones((side, side), np.uint8)
    pred = np.ones((side, side), np.uint8)
    truth[0, :3] = 0
    pred[1, :4] = 0
    matrix = confusion_matrix(truth, pred, n_classes=2, ignore_index=255)
    assert matrix.tolist() == [[0, 3], [4, side * side - 7]]
    assert float(np.float32(side * side - 7)) != side * side - 7  # float32 cannot hold it


def test_agrees_with_sklearn_and_smp():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    torch = pytest.importorskip("torch")
    smp_metrics = pytest.importorskip("segmentation_models_pytorch.metrics")
    rng = np.random.default_rng(11)
    truth = rng.choice(5, size=(3, 64, 80), p=[0.9, 0.04, 0.03, 0.02, 0.01]).astype(np.uint8)
    pred = np.where(rng.random(truth.shape) < 0.1, rng.integers(0, 5, truth.shape), truth)
    pred = pred.astype(np.uint8)
    ours = sum(confusion_matrix(t, p, n_classes=5) for t, p in zip(truth, pred, strict=True))
    reference = sklearn_metrics.confusion_matrix(truth.ravel(), pred.ravel(), labels=range(5))
    assert np.array_equal(ours, reference)
    tp, fp, fn, tn = smp_metrics.get_stats(
        torch.from_numpy(pred.astype(np.int64)),
        torch.from_numpy(truth.astype(np.int64)),
        mode="multiclass",
        num_classes=5,
    )
    for ours_c, theirs in zip(one_vs_rest(ours), (tp, fp, fn, tn), strict=True):
        assert np.array_equal(ours_c, theirs.sum(dim=0).numpy())
    # micro F1 / IoU over all classes, as smp reduces them
    from tinyseg_cli.metrics.functional import fbeta, iou

    o_tp, o_fp, o_fn, o_tn = (c.sum() for c in one_vs_rest(ours))
    assert float(fbeta(o_tp, o_fp, o_fn, 1.0)) == pytest.approx(
        float(smp_metrics.f1_score(tp, fp, fn, tn, reduction="micro"))
    )
    assert float(iou(o_tp, o_fp, o_fn, o_tn)) == pytest.approx(
        float(smp_metrics.iou_score(tp, fp, fn, tn, reduction="micro"))
    )


def test_files_counted_in_small_row_blocks_with_roi(tmp_path):
    """A memory-mapped map read a few rows at a time, inside an ROI, counts exactly."""
    from conftest import write_map

    from tinyseg_cli.io.sources import MapRef
    from tinyseg_cli.scoring.pairs import CountOptions, Pair, count_pair

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, (30, 20)).astype(np.uint8)
    pred = rng.integers(0, 3, (30, 20)).astype(np.uint8)
    roi = (4, 3, 27, 18)
    pair = Pair(
        "a",
        MapRef("a", write_map(tmp_path / "t.npy", truth), roi),
        MapRef("a", write_map(tmp_path / "p.tif", pred)),  # full-size: cropped to the ROI
    )
    _, matrix = count_pair(pair, CountOptions(n_classes=3, block_pixels=16))
    expected = np.zeros((3, 3), np.int64)
    window = np.s_[4:27, 3:18]
    np.add.at(expected, (truth[window].ravel(), pred[window].ravel()), 1)
    assert np.array_equal(matrix, expected)

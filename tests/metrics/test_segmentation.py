"""Segmentation metrics on hand-computed examples."""

import numpy as np
import pytest
import torch

from microtune.metrics.segmentation import ConfusionMatrix, confusion_matrix, segmentation_scores


def test_hand_computed_example():
    target = np.array([[0, 0, 1], [1, 1, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 2]])
    m = confusion_matrix(target, pred, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 1], [0, 0, 1]])
    s = segmentation_scores(m, ["ferrite", "martensite", "other"])
    assert s["seg_acc"] == pytest.approx(4 / 6)
    # IoU: class 0: 1/(2+1-1)=1/2; class 1: 2/(3+3-2)=1/2; class 2: 1/(1+2-1)=1/2
    assert s["seg_iou_ferrite"] == pytest.approx(0.5)
    assert s["seg_iou_martensite"] == pytest.approx(0.5)
    assert s["seg_iou_other"] == pytest.approx(0.5)
    assert s["seg_miou"] == pytest.approx(0.5)


def test_absent_class_is_nan_and_left_out_of_the_mean():
    s = segmentation_scores(confusion_matrix([0, 0, 1], [0, 0, 1], 3))
    assert s["seg_acc"] == 1.0 and s["seg_miou"] == 1.0
    assert np.isnan(s["seg_iou_2"])


def test_streaming_equals_one_shot_and_accepts_tensors_and_ignore_index():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, (8, 16, 16)), rng.integers(0, 4, (8, 16, 16))
    acc = ConfusionMatrix(4)
    for i in range(8):
        acc.update(torch.from_numpy(t[i]), torch.from_numpy(p[i]))
    np.testing.assert_array_equal(acc.matrix, confusion_matrix(t, p, 4))
    t2 = t.copy()
    t2[0] = 255
    assert confusion_matrix(t2, p, 4, ignore_index=255).sum() == 7 * 256


def test_out_of_range_ids_are_refused():
    with pytest.raises(ValueError):
        confusion_matrix([0, 5], [0, 1], 3)

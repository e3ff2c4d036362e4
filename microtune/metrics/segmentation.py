"""Semantic-segmentation metrics from a confusion matrix.

Definitions follow Long, Shelhamer & Darrell 2015 ("Fully convolutional networks for semantic
segmentation", CVPR, sec. 5), with n_ij the number of pixels of true class i predicted as j and
t_i = Σ_j n_ij:

* pixel accuracy  = Σ_i n_ii / Σ_i t_i            (the HPTL study's "acc")
* IoU of class i  = n_ii / (t_i + Σ_j n_ji - n_ii)
* mean IoU        = mean of IoU over classes present in the target or the prediction
  (a class absent from both has an undefined IoU, reported as NaN and left out of the mean).

The confusion matrix is accumulated with ``bincount`` over batches, so evaluation streams.

Pixel accuracy alone flatters a model on unbalanced micrographs: predicting the most frequent
class everywhere scores that class's share of the pixels. So the scores also carry

* majority rate   = max_i t_i / Σ_i t_i        (the accuracy of that constant prediction), and
* near-majority   = 1 when pixel accuracy ≤ majority rate + 0.01 (MAJORITY_MARGIN: not a point
  better than the constant prediction), else 0: a flag that the accuracy is no result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from microtune.tracking import schema

__all__ = ["MAJORITY_MARGIN", "ConfusionMatrix", "confusion_matrix", "segmentation_scores"]

MAJORITY_MARGIN = 0.01   # "within a point" of the majority rate: accuracy no better than a constant


def confusion_matrix(target, prediction, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = pixels of true class ``i`` predicted as ``j`` (int64).

    Parameters
    ----------
    target, prediction : array-like of int, same shape
        Class ids per pixel (numpy arrays or torch tensors).
    num_classes : int
        Number of classes; ids must lie in ``[0, num_classes)``.
    ignore_index : int, optional
        Target value whose pixels are not counted (e.g. 255 for "unlabelled").
    """
    t = np.asarray(target.cpu() if hasattr(target, "cpu") else target).reshape(-1).astype(np.int64)
    p = np.asarray(prediction.cpu() if hasattr(prediction, "cpu") else prediction).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"target and prediction differ in size: {t.size} vs {p.size}")
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    for name, ids in (("target", t), ("prediction", p)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name} has class ids outside [0, {num_classes}): {ids.min()}..{ids.max()}")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_scores(matrix: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, float]:
    """Pixel accuracy, per-class IoU and mean IoU from a confusion matrix.

    Returns
    -------
    dict
        ``seg_acc``, ``seg_miou``, ``seg_iou_<name>`` per class (name = ``class_names[i]`` or
        the class id; undefined IoUs are NaN), ``seg_majority`` (share of the most frequent true
        class) and ``seg_near_majority`` (1.0 when ``seg_acc`` ≤ ``seg_majority`` + 0.01, else 0.0).
    """
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum()
    tp = np.diag(m)
    union = m.sum(axis=1) + m.sum(axis=0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    names = list(class_names) if class_names is not None else [str(i) for i in range(m.shape[0])]
    if len(names) != m.shape[0]:
        raise ValueError(f"{len(names)} class names for {m.shape[0]} classes")
    acc = float(tp.sum() / total) if total > 0 else float("nan")
    majority = float(m.sum(axis=1).max() / total) if total > 0 else float("nan")
    scores = {
        schema.SEG_ACC: acc,
        schema.SEG_MIOU: float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        schema.SEG_MAJORITY: majority,
        schema.SEG_NEAR_MAJORITY: float(acc <= majority + MAJORITY_MARGIN) if total > 0 else float("nan"),
    }
    scores.update({f"{schema.SEG_IOU_PREFIX}{name}": float(v) for name, v in zip(names, iou)})
    return scores


class ConfusionMatrix:
    """Accumulates a confusion matrix over batches; ``scores()`` gives :func:`segmentation_scores`.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    class_names : sequence of str, optional
        Names used in the per-class IoU keys.
    ignore_index : int, optional
        Target value to skip.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int | None = None):
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names is not None else None
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, target, prediction) -> None:
        """Add a batch of targets and predictions (class ids, same shape)."""
        self.matrix += confusion_matrix(target, prediction, self.num_classes, self.ignore_index)

    def scores(self) -> dict[str, float]:
        """Pixel accuracy, mean IoU and per-class IoU so far."""
        return segmentation_scores(self.matrix, self.class_names)

"""Baselines of the HPTL study (paper sec. 4.2, Table 2): Otsu, SVM, FCN from scratch, DeepLab.

* ``otsu``: multi-level Otsu thresholds (``skimage.filters.threshold_multiotsu``, classes − 1
  thresholds) computed on the pooled training pixels; Otsu itself is unsupervised, so each
  intensity band is given the training class most frequent in it. No losses (Table 2's "—").
* ``svm``: an RBF-kernel SVM (``sklearn.svm.SVC``) on per-pixel features: intensity, Gaussian
  smoothings (σ 1, 2, 4), gradient magnitude at those scales, local mean and standard deviation
  (5x5 and 11x11 windows). It is trained on a class-balanced random sample of training pixels.
  Its l1/l2 are the multi-class hinge losses (``sklearn.metrics.hinge_loss``) on training and test
  pixel samples.
* FCN-32s/16s/8s from random initialisation: :func:`microtune.seg.run.run_segmentation`
  with ``method="fcn8s-scratch"`` etc. (no transfer; the same loop as HPTL).
* ``deeplab``: DeepLabV3+ (Chen et al., ECCV 2018), our implementation in
  :mod:`microtune.seg.deeplab` on a torchvision backbone (``deeplab_backbone``: ResNet-50 by
  default, ResNet-18 or MobileNetV3-Large; output stride 16, ASPP rates 6/12/18 + image pooling,
  stride-4 decoder), labelled ``DeepLabV3+``. ``width`` scales its head's channels (256/48 at 1).
  The encoder is randomly initialised unless ``deeplab_weights`` names a torchvision ImageNet
  state-dict file or ``"imagenet"`` (torch hub cache, else a download through torchvision).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy import ndimage

from microtune.errors import MicrotuneError
from microtune.metrics.segmentation import ConfusionMatrix
from microtune.seg.options import DEEPLAB_BACKBONES as _DEEPLAB_BACKBONES
from microtune.tracking import schema

SIGMAS = (1.0, 2.0, 4.0)
WINDOWS = (5, 11)


def _scores(masks: np.ndarray, predictions: list[np.ndarray], class_names, ms: float) -> dict[str, float]:
    cm = ConfusionMatrix(len(class_names), class_names)
    for y, p in zip(masks, predictions):
        cm.update(y, p)
    out = cm.scores()
    out[schema.SEG_INFER_MS] = ms / max(len(predictions), 1)
    return out


# -- Otsu -------------------------------------------------------------------------------------------
def fit_otsu(images: np.ndarray, masks: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Multi-Otsu thresholds on the training pixels and the class of each intensity band."""
    from skimage.filters import threshold_multiotsu

    pixels = np.asarray(images).reshape(-1)
    thresholds = threshold_multiotsu(pixels, classes=num_classes)
    bands = np.digitize(pixels, thresholds)
    labels = np.asarray(masks).reshape(-1)
    table = np.zeros(num_classes, dtype=np.int64)
    for b in range(num_classes):
        counts = np.bincount(labels[bands == b], minlength=num_classes)
        table[b] = int(counts.argmax()) if counts.sum() else 0
    return thresholds, table


def run_otsu(train_images, train_masks, test_images, test_masks, class_names) -> dict[str, float]:
    """Fit on the training split, score on the test split (seg_acc, seg_miou, IoUs, ms/image)."""
    thresholds, table = fit_otsu(train_images, train_masks, len(class_names))
    preds, t0 = [], time.perf_counter()
    for image in test_images:
        preds.append(table[np.digitize(np.asarray(image), thresholds)])
    return _scores(np.asarray(test_masks), preds, class_names, (time.perf_counter() - t0) * 1000)


# -- SVM --------------------------------------------------------------------------------------------
def pixel_features(image: np.ndarray) -> np.ndarray:
    """(H·W, F) per-pixel features: intensity, smoothings, gradient magnitudes, local mean/std."""
    x = np.asarray(image, dtype=np.float32) / 255.0
    feats = [x]
    for s in SIGMAS:
        feats.append(ndimage.gaussian_filter(x, s))
        feats.append(ndimage.gaussian_gradient_magnitude(x, s))
    for w in WINDOWS:
        mean = ndimage.uniform_filter(x, w)
        feats.append(mean)
        feats.append(np.sqrt(np.maximum(ndimage.uniform_filter(x * x, w) - mean * mean, 0)))
    return np.stack(feats, -1).reshape(-1, len(feats))


def _balanced_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    classes = np.unique(labels)
    per = max(1, n // len(classes))
    picks = [rng.choice(np.flatnonzero(labels == c), min(per, int((labels == c).sum())), replace=False) for c in classes]
    return np.concatenate(picks)


def run_svm(train_images, train_masks, test_images, test_masks, class_names, *, samples: int = 4000,
            test_loss_samples: int = 4000, C: float = 10.0, seed: int = 0) -> dict[str, float]:
    """Train the RBF SVM on a balanced pixel sample; score whole test images."""
    from sklearn.metrics import hinge_loss
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(seed)
    feats = np.concatenate([pixel_features(im) for im in train_images])
    labels = np.asarray(train_masks).reshape(-1).astype(np.int64)
    idx = _balanced_sample(labels, samples, rng)
    scaler = StandardScaler().fit(feats[idx])
    svm = SVC(C=C, kernel="rbf", gamma="scale", decision_function_shape="ovr", random_state=seed)
    svm.fit(scaler.transform(feats[idx]), labels[idx])
    if len(svm.classes_) < 2:
        raise MicrotuneError("--data: the training masks contain a single class; an SVM needs two.")
    all_labels = list(range(len(class_names)))

    def hinge(x, y):
        if len(svm.classes_) < len(all_labels):  # hinge_loss needs every class among the decision columns
            return float("nan")
        return float(hinge_loss(y, svm.decision_function(scaler.transform(x)), labels=all_labels))

    preds, t0 = [], time.perf_counter()
    for image in test_images:
        preds.append(svm.predict(scaler.transform(pixel_features(image))).reshape(np.asarray(image).shape))
    ms = (time.perf_counter() - t0) * 1000
    out = _scores(np.asarray(test_masks), preds, class_names, ms)
    test_feats = np.concatenate([pixel_features(im) for im in test_images])
    test_labels = np.asarray(test_masks).reshape(-1).astype(np.int64)
    pick = rng.choice(test_labels.size, min(test_loss_samples, test_labels.size), replace=False)
    out[schema.SEG_TRAIN_LOSS] = hinge(feats[idx], labels[idx])
    out[schema.SEG_TEST_LOSS] = hinge(test_feats[pick], test_labels[pick])
    return out


# -- DeepLabV3+ -------------------------------------------------------------------------------------
DEEPLAB_BACKBONES = _DEEPLAB_BACKBONES


def build_deeplab(options, num_classes: int, *, log=None) -> torch.nn.Module:
    """The DeepLabV3+ of ``options`` (a SegOptions): backbone, head width, input channels, encoder weights."""
    from microtune.seg.deeplab import DeepLabV3Plus

    model = DeepLabV3Plus(num_classes, in_channels=options.channels, backbone=options.deeplab_backbone,
                          width=options.width, weights=options.deeplab_weights or None)
    if log:
        log(f"DeepLabV3+ ({options.deeplab_backbone}, head width {options.width:g}): encoder weights "
            f"{model.weights_origin}")
    return model

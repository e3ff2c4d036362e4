"""One segmentation configuration end to end: the entry point of `microtune segment` and of a sweep trainable.

:func:`run_segmentation` opens the dataset, splits it, runs one method and returns the final
metrics; it calls ``report(step, metrics)`` after every epoch of every trained network (step =
training crops seen) and honours ``should_stop()``. It imports neither ray nor mlflow.

Methods (labels as in the paper's Tables 2-3, the ``method`` param the HPTL tables group by):

=================== =========== =======================================================
method              label       what
=================== =========== =======================================================
hptl                HPTL        VGG-19 → FCN-32s → FCN-16s → FCN-8s, depths t1,t2,t3
hptl-r              HPTL-R      HPTL with the L2 penalty (λ = 0.5 unless --l2 is given)
hptl-2h             HPTL-2H     VGG-19 → FCN-32s → FCN-8s (two transfers)
fcn32s-scratch ...  FCN-32s     FCN from random initialisation (also fcn16s-, fcn8s-)
otsu                OTSU        multi-level Otsu thresholds
svm                 SVM         RBF SVM on per-pixel features
deeplab             DeepLabV3+  DeepLabV3+ (ResNet or MobileNetV3 encoder; microtune.seg.deeplab)
=================== =========== =======================================================

Splits: ``"specimens"`` holds out every 4th specimen (sorted ids; at least one) as the test set;
``"lists:TRAIN.txt,TEST.txt"`` takes the images whose manifest ``source`` file (by file stem) is
listed in each file (one name per line), e.g. UHCS's ``train16A.txt`` / ``test4A.txt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from microtune.device import select_device
from microtune.errors import MicrotuneError
from microtune.seg.loop import Report, SegData, StageOptions, train_stage
from microtune.tracking import schema
from microtune.seg.options import (
    METHODS,
    SegOptions,
    options_from_dict,
    parse_depths,
    validate,
)

__all__ = ["METHODS", "SegOptions", "check_sources", "load_split", "options_from_dict", "run_segmentation",
           "split_indices", "stage_options", "validate"]


def stage_options(options: SegOptions) -> StageOptions:
    """The per-network training options of ``options`` (the device resolved)."""
    return StageOptions(epochs=options.epochs, batch=options.batch, crop=options.crop, lr=options.lr,
                        samples_per_epoch=options.samples_per_epoch or None, l2=options.l2,
                        l2_mode=options.l2_mode, seed=options.seed, device=str(select_device(options.device)))


def split_indices(dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Training and test image indices of ``dataset`` (see the module docstring)."""
    if split == "specimens":
        specimens = dataset.specimens
        ids = sorted(set(specimens))
        if len(ids) < 2:
            raise MicrotuneError(f"--split specimens needs at least 2 specimens in --data {dataset.path}, found {len(ids)}.")
        held = set(ids[3::4]) or {ids[-1]}
        test = np.array([s in held for s in specimens])
        return np.flatnonzero(~test), np.flatnonzero(test)
    files = split.split(":", 1)[1].split(",")
    if len(files) != 2:
        raise MicrotuneError(f"--split lists: needs two files TRAIN,TEST, got {split!r}.")
    stems = np.array([Path(rec["source"]).stem for rec in dataset.manifest["images"]])
    out = []
    for f in files:
        try:
            names = {Path(line.strip()).stem for line in Path(f).read_text().splitlines() if line.strip()}
        except OSError as exc:
            raise MicrotuneError(f"--split: cannot read {f} ({exc.strerror}).") from None
        idx = np.flatnonzero(np.isin(stems, list(names)))
        if idx.size == 0:
            raise MicrotuneError(f"--split: no image of --data {dataset.path} is listed in {f}.")
        out.append(idx)
    both = np.intersect1d(out[0], out[1])
    if both.size:
        raise MicrotuneError(f"--split: {both.size} images of --data {dataset.path} are listed both in {files[0]} "
                             f"and in {files[1]} (e.g. {stems[both[0]]}); a test image must not be trained on.")
    return out[0], out[1]


def load_split(options: SegOptions):
    """(train arrays, test arrays, class names) as uint8 images and masks; refuses (MicrotuneError)
    a dataset without masks, a split that leaves a side empty and a --subset larger than the
    training side, so a command can call it before it creates anything."""
    from microtune.data.dataset import Dataset, subset_problem

    dataset = Dataset.open(options.data)
    if dataset.masks is None:
        raise MicrotuneError(f"--data {options.data}: the dataset has no masks (prepare it with --masks).")
    train, test = split_indices(dataset, options.split)
    if options.subset:
        if problem := subset_problem(options.subset, train.size, "the {} training images"):
            raise MicrotuneError(f"--subset: {problem} of --data {options.data} (--split {options.split}).")
        train = train[np.random.default_rng(options.seed).permutation(train.size)[:options.subset]]
        train.sort()
    images, masks = np.asarray(dataset.images), np.asarray(dataset.masks)
    return (images[train], masks[train]), (images[test], masks[test]), dataset.class_names


def check_sources(options: SegOptions) -> None:
    """Refuse, before any work, a stage-1 source that cannot be had: ``--source imagenet`` without
    a VGG-19 ImageNet file found (a missing ``--source-weights`` file, a width or batch norm that
    ImageNet weights cannot fill are refused by :func:`validate`)."""
    if not options.method.startswith("hptl") or parse_depths(options.depths)[0] == 0:
        return
    from microtune.seg.source import find_imagenet_weights

    if options.source == "imagenet":
        if not options.source_weights and find_imagenet_weights() is None:
            raise MicrotuneError("--source imagenet: no VGG-19 ImageNet file found (give --source-weights "
                                 "or fill the torch hub cache).")


def run_segmentation(options: SegOptions, *, report: Report | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     log: Callable[[str], None] | None = None, split=None) -> dict[str, float]:
    """Run one configuration; returns the final metrics (``seg_acc``, ``seg_miou``, losses, ms...).

    This is the function a sweep trainable calls: ``report(step, metrics)`` gets every epoch's
    metrics (keys of :mod:`microtune.tracking.schema`, per-class IoU as ``seg_iou_<class>``);
    ``should_stop()`` ends training after the current epoch.
    ``split``: what :func:`load_split` returned, when the caller loaded it already (to validate
    before writing anything); loaded here otherwise.
    """
    validate(options)
    select_device(options.device)  # refuse a missing GPU before any work
    check_sources(options)
    torch.manual_seed(options.seed)
    (tr_x, tr_y), (te_x, te_y), names = split if split is not None else load_split(options)
    t0 = time.perf_counter()
    if options.method == "otsu":
        from microtune.seg.baselines import run_otsu

        metrics = run_otsu(tr_x, tr_y, te_x, te_y, names)
    elif options.method == "svm":
        from microtune.seg.baselines import run_svm

        metrics = run_svm(tr_x, tr_y, te_x, te_y, names, samples=options.svm_samples, seed=options.seed)
    else:
        train = SegData.from_arrays(tr_x, tr_y, names, channels=options.channels)
        test = SegData.from_arrays(te_x, te_y, names, channels=options.channels)
        metrics = _run_network(options, train, test, report, should_stop, log)
    metrics = {**metrics, schema.SEG_SECONDS: time.perf_counter() - t0}
    if options.method in ("otsu", "svm") and report is not None:
        report(len(tr_x), dict(metrics))
    return metrics


def _run_network(options, train, test, report, should_stop, log) -> dict[str, float]:
    from microtune.seg.baselines import build_deeplab
    from microtune.seg.hptl import run_hptl
    from microtune.seg.networks import FCN, VGG19
    from microtune.seg.source import source_vgg

    stage = stage_options(options)
    if options.method.startswith("hptl"):
        depths = parse_depths(options.depths)
        if depths[0] == 0:  # t1 = 0: nothing comes from the source; skip stage 1
            vgg, origin = VGG19(2, in_channels=options.channels, width=options.width,
                                batch_norm=options.batch_norm), "none (t1 = 0)"
        else:
            vgg, origin = source_vgg(width=options.width, in_channels=options.channels,
                                     weights=options.source_weights or None, source=options.source,
                                     steps=options.source_steps, seed=options.seed, optimizer=options.source_optimizer,
                                     batch_norm=options.batch_norm, cache_dir=options.cache_dir or None, log=log)
        if log:
            log(f"stage 1: source VGG-19 from {origin}")
        _, metrics = run_hptl(vgg, train, test, depths=depths, variant=options.method,
                              freeze_transferred=options.freeze, stage=stage, report=report,
                              dropout=options.dropout, should_stop=should_stop, log=log)
        return metrics
    if options.method == "deeplab":
        model = build_deeplab(options, train.num_classes, log=log)
    else:
        model = FCN(train.num_classes, options.method[3:].split("-")[0], in_channels=options.channels, width=options.width,
                    dropout=options.dropout, batch_norm=options.batch_norm)
    metrics, _ = train_stage(model, train, test, stage, report=report, should_stop=should_stop)
    return metrics

"""One segmentation configuration end to end: the entry point of `microtune segment` and of a sweep trainable.

:func:`run_segmentation` opens the dataset, splits it, runs one method and returns the final
metrics; it calls ``report(step, metrics)`` after every epoch of every trained network (step =
training crops seen) and honours ``should_stop()``. It imports neither ray nor mlflow.

Methods (labels as in the paper's Tables 2-3, the ``method`` param the HPTL tables group by):

=================== ========== ========================================================
method              label      what
=================== ========== ========================================================
hptl                HPTL       VGG-19 → FCN-32s → FCN-16s → FCN-8s, depths t1,t2,t3
hptl-r              HPTL-R     HPTL with the L2 penalty (λ = 0.5 unless --l2 is given)
hptl-2h             HPTL-2H    VGG-19 → FCN-32s → FCN-8s (two transfers)
fcn32s-scratch ...  FCN-32s    FCN from random initialisation (also fcn16s-, fcn8s-)
otsu                OTSU       multi-level Otsu thresholds
svm                 SVM        RBF SVM on per-pixel features
deeplab             DeepLabV3  torchvision DeepLabV3, random init (stand-in for V3+)
=================== ========== ========================================================

Splits: ``"specimens"`` holds out every 4th specimen (sorted ids; at least one) as the test set;
``"lists:TRAIN.txt,TEST.txt"`` takes the images whose manifest ``source`` file (by file stem) is
listed in each file (one name per line), e.g. UHCS's ``train16A.txt`` / ``test4A.txt``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from microtune.errors import MicrotuneError
from microtune.seg.loop import Report, SegData, StageOptions, train_stage

METHODS = {"hptl": "HPTL", "hptl-r": "HPTL-R", "hptl-2h": "HPTL-2H", "fcn32s-scratch": "FCN-32s",
           "fcn16s-scratch": "FCN-16s", "fcn8s-scratch": "FCN-8s", "otsu": "OTSU", "svm": "SVM",
           "deeplab": "DeepLabV3"}


@dataclass(frozen=True)
class SegOptions:
    """A resolved segmentation configuration (flat: it is logged as MLflow params)."""

    data: str                           # dataset directory with masks
    method: str = "hptl"                # see METHODS
    depths: str = "2,8,9"               # t1,t2,t3 (numbers or unit names; paper: 2,8,9)
    freeze: bool = False                # freeze transferred units (default: retrain them)
    epochs: int = 10                    # epochs per trained network (each HPTL stage)
    batch: int = 16                     # crops per step (paper 16)
    crop: int = 224                     # training crop side, pixels (paper 224)
    lr: float = 1e-4                    # Adam learning rate (paper γ2 = 1e-4)
    samples_per_epoch: int = 0          # crops per epoch (0: 8 × training images)
    l2: float = 0.0                     # L2 λ (HPTL-R default 0.5 when 0)
    l2_mode: str = "decay"              # decay (paper) | transfer (toward transferred weights)
    width: float = 1.0                  # channel multiplier of VGG-19/FCN (CPU runs: 1/16, 1/8)
    channels: int = 1                   # network input channels (1 or 3; gray replicated)
    batch_norm: bool = False            # VGG-19-BN convs (not in the paper; for tiny CPU nets)
    dropout: float = 0.5                # dropout after fc6/fc7 (VGG/FCN value; 0 helps tiny CPU nets)
    split: str = "specimens"            # specimens | lists:TRAIN,TEST
    subset: int = 0                     # training images used (0: all)
    source: str = "auto"                # stage-1 source: auto | imagenet | textures
    source_weights: str = ""            # torchvision VGG-19 ImageNet file
    source_steps: int = 300             # texture-task training steps of the source VGG-19
    source_optimizer: str = "adam"      # adam | sgd (paper) for the texture source
    cache_dir: str = ""                 # cache of trained source networks
    deeplab_backbone: str = "mobilenet_v3_large"
    svm_samples: int = 4000             # training pixels for the SVM
    seed: int = 0

    @property
    def label(self) -> str:
        return METHODS[self.method]

    def stage_options(self) -> StageOptions:
        return StageOptions(epochs=self.epochs, batch=self.batch, crop=self.crop, lr=self.lr,
                            samples_per_epoch=self.samples_per_epoch or None, l2=self.l2,
                            l2_mode=self.l2_mode, seed=self.seed)


def validate(options: SegOptions) -> SegOptions:
    """Check every option before any work; raise MicrotuneError naming the option."""
    from microtune.seg.hptl import parse_depths

    if options.method not in METHODS:
        raise MicrotuneError(f"--method must be one of {', '.join(METHODS)}, got {options.method!r}.")
    parse_depths(options.depths)
    for name in ("epochs", "batch", "crop"):
        if int(getattr(options, name)) < 1:
            raise MicrotuneError(f"--{name} must be at least 1, got {getattr(options, name)}.")
    if options.crop < 32:
        raise MicrotuneError(f"--crop must be at least 32 pixels (five 2x poolings), got {options.crop}.")
    if not options.lr > 0:
        raise MicrotuneError(f"--lr must be positive, got {options.lr}.")
    if options.l2 < 0:
        raise MicrotuneError(f"--l2 must be non-negative, got {options.l2}.")
    if options.l2_mode not in ("decay", "transfer"):
        raise MicrotuneError(f"--l2-mode must be decay or transfer, got {options.l2_mode!r}.")
    if not 0 < options.width <= 1:
        raise MicrotuneError(f"--width must be in (0, 1], got {options.width}.")
    if options.channels not in (1, 3):
        raise MicrotuneError(f"--channels must be 1 or 3, got {options.channels}.")
    if not 0 <= options.dropout < 1:
        raise MicrotuneError(f"--dropout must be in [0, 1), got {options.dropout}.")
    if options.subset < 0:
        raise MicrotuneError(f"--subset must be non-negative, got {options.subset}.")
    if not (options.split == "specimens" or options.split.startswith("lists:")):
        raise MicrotuneError(f"--split must be 'specimens' or 'lists:TRAIN.txt,TEST.txt', got {options.split!r}.")
    return options


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
    return out[0], out[1]


def load_split(options: SegOptions):
    """(train arrays, test arrays, class names) as uint8 images and masks."""
    from microtune.data.dataset import Dataset

    dataset = Dataset.open(options.data)
    if dataset.masks is None:
        raise MicrotuneError(f"--data {options.data}: the dataset has no masks (prepare it with --masks).")
    train, test = split_indices(dataset, options.split)
    if options.subset:
        train = train[np.random.default_rng(options.seed).permutation(train.size)[:options.subset]]
        train.sort()
    images, masks = np.asarray(dataset.images), np.asarray(dataset.masks)
    return (images[train], masks[train]), (images[test], masks[test]), dataset.class_names


def run_segmentation(options: SegOptions, *, report: Report | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     log: Callable[[str], None] | None = None) -> dict[str, float]:
    """Run one configuration; returns the final metrics (``seg_acc``, ``seg_miou``, losses, ms...).

    This is the function a sweep trainable calls: ``report(step, metrics)`` gets every epoch's
    metrics (keys of :mod:`microtune.tracking.schema` plus ``seg_loss_gap``, ``seg_iou_<class>``,
    ``seg_epoch``, ``seg_stage``); ``should_stop()`` ends training after the current epoch.
    """
    validate(options)
    torch.manual_seed(options.seed)
    (tr_x, tr_y), (te_x, te_y), names = load_split(options)
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
    metrics = {**metrics, "seg_seconds": time.perf_counter() - t0}
    if options.method in ("otsu", "svm") and report is not None:
        report(len(tr_x), dict(metrics))
    return metrics


def _run_network(options, train, test, report, should_stop, log) -> dict[str, float]:
    from microtune.seg.baselines import DeepLab
    from microtune.seg.hptl import parse_depths, run_hptl
    from microtune.seg.networks import FCN
    from microtune.seg.source import source_vgg

    stage = options.stage_options()
    if options.method.startswith("hptl"):
        vgg, origin = source_vgg(width=options.width, in_channels=options.channels,
                                 weights=options.source_weights or None, source=options.source,
                                 steps=options.source_steps, seed=options.seed,
                                 optimizer=options.source_optimizer, batch_norm=options.batch_norm, cache_dir=options.cache_dir or None, log=log)
        if log:
            log(f"stage 1: source VGG-19 from {origin}")
        _, metrics = run_hptl(vgg, train, test, depths=parse_depths(options.depths), variant=options.method,
                              freeze_transferred=options.freeze, stage=stage, report=report,
                              dropout=options.dropout, should_stop=should_stop, log=log)
        return metrics
    if options.method == "deeplab":
        model = DeepLab(train.num_classes, in_channels=options.channels, backbone=options.deeplab_backbone)
    else:
        model = FCN(train.num_classes, options.method[3:].split("-")[0], in_channels=options.channels, width=options.width,
                    dropout=options.dropout, batch_norm=options.batch_norm)
    metrics, _ = train_stage(model, train, test, stage, report=report, should_stop=should_stop)
    return metrics


def options_from_dict(values: dict) -> SegOptions:
    """SegOptions from a flat dict (a sweep's config), ignoring unknown keys."""
    fields = {f.name for f in dataclasses.fields(SegOptions)}
    return SegOptions(**{k: v for k, v in values.items() if k in fields})

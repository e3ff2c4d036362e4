"""Segmentation options without torch: methods, :class:`SegOptions`, validation, transfer depths.

:mod:`microtune.sweep.spec` validates HPTL sweep specs with this module, so it imports neither torch
nor ray; :mod:`microtune.seg.run` runs the options. Depth limits and the paper's depths are
explained in :mod:`microtune.seg.hptl`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from microtune.errors import MicrotuneError

# Transferable units, in order: transfer depths count them (see microtune.seg.networks).
UNITS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "score_fr", "upscore2", "score_pool4")
PAPER_DEPTHS = (2, 8, 9)                                   # sec. 3.3.3
MAX_DEPTH = {"t1": 7, "t2": 8, "t3": 10}                   # see the module docstring


def parse_depth(value: int | str, name: str) -> int:
    """A depth from a number or a unit name (the last unit transferred), checked against its limit."""
    limit = MAX_DEPTH[name]
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        elif text in UNITS:
            value = UNITS.index(text) + 1
        else:
            raise MicrotuneError(f"--depths: {name}={value!r} is neither a number nor a unit name ({', '.join(UNITS[:limit])}).")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise MicrotuneError(f"--depths: {name} must be between 0 and {limit} ({', '.join(UNITS[:limit])}), got {value!r}.")
    return value


def parse_depths(value: str | Sequence) -> tuple[int, int, int]:
    """``"2,8,9"``, ``"conv2,score_fr,upscore2"`` or a sequence of three → (t1, t2, t3)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != 3:
        raise MicrotuneError(f"--depths needs three values t1,t2,t3, got {value!r}.")
    return tuple(parse_depth(p, n) for p, n in zip(parts, ("t1", "t2", "t3")))  # type: ignore[return-value]

METHODS = {"hptl": "HPTL", "hptl-r": "HPTL-R", "hptl-2h": "HPTL-2H", "fcn32s-scratch": "FCN-32s",
           "fcn16s-scratch": "FCN-16s", "fcn8s-scratch": "FCN-8s", "otsu": "OTSU", "svm": "SVM",
           "deeplab": "DeepLabV3+"}
DEEPLAB_BACKBONES = ("resnet50", "resnet18", "mobilenet_v3_large")   # see microtune.seg.deeplab


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
    deeplab_backbone: str = "resnet50"  # DeepLabV3+ encoder: see DEEPLAB_BACKBONES
    deeplab_weights: str = ""           # DeepLabV3+ encoder: "" random | imagenet (cache/download) | FILE
    svm_samples: int = 4000             # training pixels for the SVM
    device: str = "auto"                # auto (cuda when available) | cpu | cuda | cuda:N
    seed: int = 0

    @property
    def label(self) -> str:
        return METHODS[self.method]


def validate(options: SegOptions) -> SegOptions:
    """Check every option before any work; raise MicrotuneError naming the option."""
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
    if options.deeplab_backbone not in DEEPLAB_BACKBONES:
        raise MicrotuneError(f"--deeplab-backbone must be one of {', '.join(DEEPLAB_BACKBONES)}, "
                             f"got {options.deeplab_backbone!r}.")
    weights = options.deeplab_weights
    if not isinstance(weights, str) or (weights not in ("", "imagenet") and not Path(weights).is_file()):
        raise MicrotuneError(f"--deeplab-weights must be empty (random init), 'imagenet' or an existing "
                             f"torchvision state-dict file, got {weights!r}.")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", options.device):
        raise MicrotuneError(f"--device must be auto, cpu, cuda or cuda:N, got {options.device!r}.")
    return options


def options_from_dict(values: dict) -> SegOptions:
    """SegOptions from a flat dict (a sweep's config), ignoring unknown keys."""
    fields = {f.name for f in dataclasses.fields(SegOptions)}
    return SegOptions(**{k: v for k, v in values.items() if k in fields})

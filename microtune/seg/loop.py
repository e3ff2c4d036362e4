"""Segmentation training and evaluation loop with a ``report(step, metrics)`` callback.

One call of :func:`train_stage` trains one network (an HPTL stage, or a baseline FCN) with Adam
(HPTL paper sec. 3.3.4: Adam, τ2 = 0.9, τ3 = 0.999, γ2 = 1e-4, batch 16 of 224x224 crops) on
random crops with random flips and 90° rotations, and evaluates on the *full* test images after
every epoch. It reports, per epoch:

``seg_train_loss`` (mean cross-entropy of the epoch's training batches, penalty excluded: the
paper's l1), ``seg_test_loss`` (cross-entropy on the full test images: l2), ``seg_loss_gap``
(l2 − l1: l_d), ``seg_acc``, ``seg_miou``, ``seg_iou_<class>`` (from
:mod:`microtune.metrics.segmentation`), ``seg_infer_ms`` (forward pass, milliseconds per full test
image, batch 1) and ``seg_epoch``. The step is the number of training crops seen so far (continued
across stages by ``step0``).

An *epoch* is ``samples_per_epoch`` training crops (default: 8 × the number of training images; the
paper augments its 50 training micrographs to 1500).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from microtune.metrics.segmentation import ConfusionMatrix
from microtune.tracking import schema

Report = Callable[[int, dict], None]
GRAY_MEAN, GRAY_STD = 0.449, 0.226   # ImageNet channel means/stds averaged: grayscale normalisation
SEG_LOSS_GAP = schema.SEG_LOSS_GAP
SEG_EPOCH = schema.SEG_EPOCH


@dataclass
class SegData:
    """Images and masks of one split as tensors: images (N, C, H, W) float normalised, masks (N, H, W) int64."""

    images: torch.Tensor
    masks: torch.Tensor
    class_names: list[str]

    @classmethod
    def from_arrays(cls, images: np.ndarray, masks: np.ndarray, class_names, *, channels: int = 1) -> SegData:
        """From uint8 (N, H, W) images and (N, H, W) class-id masks."""
        x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)
        x = ((x - GRAY_MEAN) / GRAY_STD).unsqueeze(1)
        if channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        return cls(x, torch.from_numpy(np.asarray(masks, dtype=np.int64)), list(class_names))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class StageOptions:
    """Training options of one stage (units: epochs, crops, pixels)."""

    epochs: int = 10                     # epochs of samples_per_epoch crops
    batch: int = 16                      # crops per step (paper: 16)
    crop: int = 224                      # crop side in pixels (paper: 224); clipped to the image size
    lr: float = 1e-4                     # Adam learning rate (paper γ2 = 1e-4)
    betas: tuple[float, float] = (0.9, 0.999)   # Adam τ2, τ3 (paper)
    samples_per_epoch: int | None = None  # crops per epoch (default 8 × training images)
    l2: float = 0.0                      # λ of the L2 penalty (0: none); see penalty()
    l2_mode: str = "decay"               # "decay": Σ w² (paper); "transfer": Σ (w − w_transferred)²
    seed: int = 0
    device: str = "cpu"                  # torch device the network trains and is evaluated on


def augment_batch(data: SegData, batch: int, crop: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random crops with random horizontal/vertical flips and 90° rotations."""
    n, _, h, w = data.images.shape
    ch, cw = min(crop, h), min(crop, w)
    xs, ys = [], []
    for _ in range(batch):
        i = int(torch.randint(n, (1,), generator=gen))
        top = int(torch.randint(h - ch + 1, (1,), generator=gen))
        left = int(torch.randint(w - cw + 1, (1,), generator=gen))
        x = data.images[i, :, top:top + ch, left:left + cw]
        y = data.masks[i, top:top + ch, left:left + cw]
        flips = torch.randint(2, (2,), generator=gen)
        if flips[0]:
            x, y = x.flip(-1), y.flip(-1)
        if flips[1]:
            x, y = x.flip(-2), y.flip(-2)
        if ch == cw:
            k = int(torch.randint(4, (1,), generator=gen))
            x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


def penalty(model: torch.nn.Module, l2: float, mode: str, reference: dict[str, torch.Tensor] | None) -> torch.Tensor:
    """L2 penalty λ · mean over trainable weights of w² (or (w − w_ref)² for transferred ones).

    The HPTL paper (sec. 3.3.4) penalises "the squared magnitude of all parameters directly in the
    objective" with λ = 0.5: plain weight decay, mode ``"decay"``. It does not give the
    normalisation; we divide by the number of parameters so that λ is independent of the network
    size. Mode ``"transfer"`` (L2-SP, our extension) pulls transferred weights toward their
    transferred values and the others toward zero.
    """
    total, count = None, 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        target = reference.get(name) if (mode == "transfer" and reference) else None
        term = ((p - target) ** 2).sum() if target is not None else (p ** 2).sum()
        total = term if total is None else total + term
        count += p.numel()
    if total is None:
        return torch.zeros(())
    return l2 * total / max(count, 1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: SegData, *, predict: Callable | None = None) -> dict[str, float]:
    """Full-image evaluation: test loss, pixel accuracy, IoUs, inference ms per image (batch 1)."""
    model.eval()
    device = next(model.parameters()).device
    cm = ConfusionMatrix(data.num_classes, data.class_names)
    loss_sum, ms = 0.0, 0.0
    for i in range(len(data)):
        x, y = data.images[i:i + 1].to(device), data.masks[i:i + 1].to(device)
        _synchronize(device)
        t0 = time.perf_counter()
        logits = (predict or model)(x)
        _synchronize(device)  # CUDA runs asynchronously: time the finished forward pass
        ms += (time.perf_counter() - t0) * 1000.0
        loss_sum += float(F.cross_entropy(logits, y))
        cm.update(y, logits.argmax(1))
    out = cm.scores()
    out[schema.SEG_TEST_LOSS] = loss_sum / max(len(data), 1)
    out[schema.SEG_INFER_MS] = ms / max(len(data), 1)
    return out


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_stage(model: torch.nn.Module, train: SegData, test: SegData, options: StageOptions, *,
                report: Report | None = None, should_stop: Callable[[], bool] | None = None, step0: int = 0,
                reference: dict[str, torch.Tensor] | None = None, extra: dict | None = None,
                forward: Callable | None = None) -> tuple[dict[str, float], int]:
    """Train ``model`` for ``options.epochs`` epochs; evaluate and report after each.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, C, h, w) images to (N, classes, h, w) logits (``forward`` overrides the call).
    train, test : SegData
        Training images (cropped and augmented) and test images (evaluated whole).
    options : StageOptions
        Epochs, batch, crop, learning rate, L2 penalty, device (the model is moved there).
    report : callable, optional
        ``report(step, metrics)`` after every epoch; step = training crops seen (from ``step0``).
    should_stop : callable, optional
        Checked after every epoch; True ends training early (e.g. an ASHA stop).
    reference : dict, optional
        Transferred weights by parameter name, for ``l2_mode="transfer"``.
    extra : dict, optional
        Constant entries added to every report (e.g. the stage name).

    Returns
    -------
    (metrics, step)
        The last epoch's metrics and the step reached.
    """
    device = torch.device(options.device)
    model.to(device)
    if reference:
        reference = {name: value.to(device) for name, value in reference.items()}
    gen = torch.Generator().manual_seed(options.seed)  # crops are drawn on the CPU: same crops on every device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=options.lr, betas=options.betas)
    per_epoch = options.samples_per_epoch or 8 * len(train)
    steps = max(1, math.ceil(per_epoch / options.batch))
    call = forward or model
    step, metrics = step0, {}
    for epoch in range(1, options.epochs + 1):
        model.train()
        loss_sum = 0.0
        for _ in range(steps):
            x, y = augment_batch(train, options.batch, options.crop, gen)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(call(x), y)
            total = loss + penalty(model, options.l2, options.l2_mode, reference) if options.l2 else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            loss_sum += float(loss.detach())
            step += x.shape[0]
        metrics = evaluate(model, test, predict=forward)
        metrics[schema.SEG_TRAIN_LOSS] = loss_sum / steps
        metrics[SEG_LOSS_GAP] = metrics[schema.SEG_TEST_LOSS] - metrics[schema.SEG_TRAIN_LOSS]
        metrics[SEG_EPOCH] = epoch
        if extra:
            metrics.update(extra)
        if report is not None:
            report(step, dict(metrics))
        if should_stop is not None and should_stop():
            break
    return metrics, step

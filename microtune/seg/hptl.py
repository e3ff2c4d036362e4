"""Hierarchical parameter transfer (HPTL): VGG-19 → FCN-32s → FCN-16s → FCN-8s.

Following the HPTL paper (sec. 3.3, Fig. 3 and the pseudocode): Step 1 trains VGG-19 on the source
domain (:mod:`microtune.seg.source`); Step 2 transfers the first t1 units into FCN-32s and trains it
on the target data; Step 3 transfers the first t2 units of that FCN-32s into FCN-16s and trains
it; Step 4 transfers the first t3 units of FCN-16s into FCN-8s, trains it, and outputs it.

Transfer depths count units of :data:`microtune.seg.networks.UNITS` (a depth may be given as a
number or as the name of the last transferred unit). The paper's depths (sec. 3.3.3) are
t1 = 2 ("four convolutional and two pooling layers": conv1, conv2), t2 = 8 (sixteen conv, five
pooling, three fully convolutional: conv1..conv5, fc6, fc7, score_fr) and t3 = 9 (those plus
"one deconvolutional layer": upscore2). Limits: t1 ≤ 7 (VGG's fc8 scores the source classes),
t2 ≤ 8 (FCN-32s has no skip units), t3 ≤ 10 (FCN-16s → FCN-8s shares upscore2 and score_pool4).

Transferred units are retrained by default; ``freeze`` keeps them fixed (requires_grad False).
HPTL-R adds the L2 penalty of the paper (λ · Σ w², plain weight decay on all trainable
parameters: "penalizing the squared magnitude of all parameters directly in the objective",
λ = 0.5); see :func:`microtune.seg.loop.penalty`. HPTL-2H ("two parameter transfer processes",
the red box of Fig. 3) is read here as VGG-19 → FCN-32s → FCN-8s: t1 into FCN-32s, then t2 from
FCN-32s straight into FCN-8s (t3 unused).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from microtune.errors import MicrotuneError
from microtune.seg.loop import Report, SegData, StageOptions, train_stage
from microtune.seg.networks import FCN, VGG19, unit_buffers, unit_parameters
from microtune.tracking import schema
from microtune.seg.options import (  # noqa: F401 (re-exported)
    MAX_DEPTH,
    PAPER_DEPTHS,
    UNITS,
    parse_depth,
    parse_depths,
)

SEG_STAGE = schema.SEG_STAGE                                  # 2: FCN-32s, 3: FCN-16s, 4: FCN-8s


@torch.no_grad()
def transfer(source: nn.Module, target: nn.Module, depth: int) -> list[str]:
    """Copy the parameters of the first ``depth`` units from ``source`` into ``target``.

    VGG-19's Linear fc6/fc7 become FCN convolutions by reshaping (fc6 = 7x7 conv on pool5, as in
    FCN). Returns the target parameter names copied; raises when a unit is missing or its shapes
    differ (different width, channels or classes).
    """
    copied = []
    for unit in UNITS[:depth]:
        src, dst = unit_parameters(source, unit), unit_parameters(target, unit)
        if not dst or set(src) != set(dst):
            raise MicrotuneError(f"--depths: unit {unit} cannot be transferred from "
                                 f"{type(source).__name__} to {type(target).__name__} ({_kind(target)}).")
        for name, p in dst.items():
            q = src[name]
            if q.numel() != p.numel():
                raise MicrotuneError(f"--depths: unit {unit} differs in size between the networks ({name}).")
            p.copy_(q.reshape(p.shape))
            copied.append(name)
        src_buf = unit_buffers(source, unit)
        for name, b in unit_buffers(target, unit).items():
            if name not in src_buf or src_buf[name].shape != b.shape:
                raise MicrotuneError(f"--depths: unit {unit} differs in batch norm between the networks ({name}).")
            b.copy_(src_buf[name])
    return copied


def freeze(model: nn.Module, names: Sequence[str]) -> None:
    """Set ``requires_grad=False`` on the named parameters."""
    named = dict(model.named_parameters())
    for name in names:
        named[name].requires_grad_(False)


def _kind(model: nn.Module) -> str:
    return f"FCN-{model.variant}" if isinstance(model, FCN) else "VGG-19"


def run_hptl(source: VGG19, train: SegData, test: SegData, *, depths: Sequence[int] = PAPER_DEPTHS,
             variant: str = "hptl", freeze_transferred: bool = False, stage: StageOptions = StageOptions(),
             dropout: float = 0.5, report: Report | None = None, should_stop: Callable[[], bool] | None = None,
             log: Callable[[str], None] | None = None) -> tuple[FCN, dict[str, float]]:
    """Stages 2–4 of HPTL (or HPTL-2H) from a trained source VGG-19; returns the FCN-8s and its metrics.

    Parameters
    ----------
    source : VGG19
        Stage-1 network (its width and input channels fix those of the FCNs).
    train, test : SegData
        Target-domain training and test data.
    depths : (t1, t2, t3)
        Transfer depths in units (:func:`parse_depths`).
    variant : {"hptl", "hptl-r", "hptl-2h"}
        HPTL-R uses ``stage.l2`` (paper λ = 0.5 when the caller leaves it 0).
    freeze_transferred : bool
        Freeze the transferred units instead of retraining them.
    dropout : float
        Dropout after fc6/fc7 of the FCNs (paper: dropout used; 0.5 as in VGG/FCN).
    stage : StageOptions
        Training options of every stage.
    report, should_stop : callable
        Passed to :func:`microtune.seg.loop.train_stage`; reports carry ``seg_stage``.
    """
    t1, t2, t3 = (parse_depth(d, n) for d, n in zip(depths, ("t1", "t2", "t3")))
    if variant not in ("hptl", "hptl-r", "hptl-2h"):
        raise MicrotuneError(f"--method must be hptl, hptl-r or hptl-2h for HPTL, got {variant!r}.")
    if variant == "hptl-r" and not stage.l2:
        stage = StageOptions(**{**stage.__dict__, "l2": 0.5})
    chain = ("32s", "8s") if variant == "hptl-2h" else ("32s", "16s", "8s")
    stage_depths = (t1, t2) if variant == "hptl-2h" else (t1, t2, t3)
    previous: nn.Module = source
    step, metrics = 0, {}
    for number, (kind, depth) in enumerate(zip(chain, stage_depths), start=2):
        model = FCN(train.num_classes, kind, in_channels=source.in_channels, width=source.width, dropout=dropout,
                    batch_norm=source.batch_norm)
        copied = transfer(previous, model, depth)
        reference = {n: p.detach().clone() for n, p in model.named_parameters() if n in set(copied)}
        if freeze_transferred:
            freeze(model, copied)
        if log:
            log(f"stage {number}: {_kind(previous)} → FCN-{kind}, {depth} unit(s) "
                f"({len(copied)} tensors) transferred{' and frozen' if freeze_transferred else ''}")
        torch.manual_seed(stage.seed + number)
        metrics, step = train_stage(model, train, test, stage, report=report, should_stop=should_stop, step0=step,
                                    reference=reference, extra={SEG_STAGE: number if kind != "8s" else 4})
        previous = model
        if should_stop is not None and should_stop():
            break
    return previous, metrics  # type: ignore[return-value]

"""GAN training options (one frozen dataclass) and the named ``cfg`` presets.

References
----------
[ADA]  Karras et al. 2020, "Training GANs with limited data", App. D (configurations ``paper256``,
       ``paper512``, ``stylegan2`` = StyleGAN2 config F, and the ``auto`` heuristics).
[SG2]  Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN".
[DC]   Mishra & Pathak 2021, DCGAN for Al-Si micrographs (Adam beta1 0.5, lr 2e-4..5e-4).

Resolution order: preset (by ``cfg``, some entries depend on the resolution) -> model defaults
(``dcgan`` replaces the StyleGAN2 optimiser and regularisers) -> explicit overrides.
Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from microtune.errors import MicrotuneError

CFG_NAMES = ("paper256", "paper512", "stylegan2", "auto", "tiny", "demo")
MODEL_NAMES = ("stylegan2", "dcgan")
AUGPIPE_NAMES = ("none", "blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc")


@dataclass(frozen=True)
class TrainOptions:
    """Every knob of one GAN training run. Units: kimg = thousands of real images shown to D."""

    model: str = "stylegan2"            # "stylegan2" or "dcgan"
    cfg: str = "auto"                   # preset the values below came from
    resolution: int = 0                 # image side in pixels (power of two); 0 = from the dataset
    img_channels: int = 1               # 1 (grayscale) or 3
    # Architecture (StyleGAN2; DCGAN uses z_dim, dcgan_ngf, dcgan_ndf).
    z_dim: int = 512                    # latent z width
    w_dim: int = 512                    # intermediate latent w width
    mapping_layers: int = 2             # mapping-network depth (8 in [SG2], 2 in [ADA] auto)
    channel_base: int = 16384           # feature maps at resolution r = min(channel_base / r, channel_max)
    channel_max: int = 512              # cap on feature maps
    mbstd_group: int = 4                # minibatch-stddev group size
    fused_modconv: bool = False         # grouped-conv modulation (same map; speed differs by device)
    dcgan_ngf: int = 64                 # DCGAN generator width at the last layer [DC]
    dcgan_ndf: int = 64                 # DCGAN discriminator width at the first layer [DC]
    # Optimisation.
    batch: int = 16                     # minibatch size (images per step)
    lr_g: float = 0.0025                # generator Adam learning rate
    lr_d: float = 0.0025                # discriminator Adam learning rate
    beta1: float = 0.0                  # Adam beta1 ([SG2]: 0)
    beta2: float = 0.99                 # Adam beta2 ([SG2]: 0.99)
    gamma: float = 1.0                  # R1 weight ([SG2] App. B; Mescheder et al. 2018)
    r1_interval: int = 16               # lazy R1 every this many D steps ([SG2] Sec. 3.1)
    pl_weight: float = 2.0              # path-length regularisation weight ([SG2] Sec. 3.2)
    pl_interval: int = 4                # lazy path length every this many G steps ([SG2] Sec. 3.1)
    style_mixing: float = 0.9           # fraction of images made from two latents (StyleGAN Sec. 3.1)
    ema_kimg: float = 10.0              # G_ema half-life in kimg (0 = no averaging)
    ema_rampup: float | None = 0.05     # half-life <= rampup * images seen so far (None = off)
    # Adaptive discriminator augmentation [ADA].
    augpipe: str = "bg"                 # augmentation preset (see augment.AUGPIPE_PRESETS)
    ada_target: float | None = 0.6      # target r_t for adaptive p; None = fixed p
    p: float = 0.0                      # initial (adaptive) or fixed (ada_target None) probability
    ada_kimg: float = 500.0             # p can go from 0 to 1 in this many kimg [ADA] Sec. 3
    ada_interval: int = 4               # adjust p every this many minibatches [ADA] Sec. 3
    lumaflip: bool | None = None        # None: off on 1 channel (SEM study), on for RGB
    # Schedule.
    kimg: float = 25000.0               # training length
    tick_kimg: float = 4.0              # progress report interval
    eval_every_kimg: float = 50.0       # evaluation-callback interval
    snapshot_every_kimg: float = 50.0   # sample grid + checkpoint interval
    subset: int | None = None           # train on a nested subset of this many images
    seed: int = 0                       # global seed (subset choice, init, sampling)
    device: str = "auto"                # "auto", "cpu" or "cuda"
    compile: bool = False               # torch.compile the unregularised passes
    precision: str = "fp32"             # "fp32" or "bf16" (autocast of the unregularised passes)
    num_threads: int = 0                # CPU threads for torch (0 = leave torch's default)

    def to_dict(self) -> dict:
        """Flat dict of JSON-safe values (also what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainOptions":
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise MicrotuneError(f"unknown training option(s) {', '.join(unknown)}.")
        return cls(**values)


def _tiny(res: int) -> dict:
    """The issue's CPU-sized config: exactly these numbers (64x64 benchmark: ~112 s/kimg officially)."""
    return dict(
        channel_base=2048, channel_max=512, mapping_layers=2, z_dim=512, w_dim=512, batch=16,
        gamma=0.0002 * res**2 / 16, ema_kimg=5.0, ema_rampup=0.05, lr_g=0.0025, lr_d=0.0025,
        beta1=0.0, beta2=0.99, mbstd_group=4, tick_kimg=1.0, eval_every_kimg=10.0, snapshot_every_kimg=10.0,
    )


def _demo(res: int) -> dict:
    """Smaller than tiny so a whole demo study fits minutes on 2 CPU cores (same formulas)."""
    return dict(
        channel_base=1024, channel_max=128, mapping_layers=2, z_dim=128, w_dim=128, batch=16,
        gamma=0.0002 * res**2 / 16, ema_kimg=2.0, ema_rampup=0.05, lr_g=0.0025, lr_d=0.0025,
        beta1=0.0, beta2=0.99, mbstd_group=4, tick_kimg=0.5, eval_every_kimg=5.0, snapshot_every_kimg=5.0,
    )


def _auto(res: int, gpus: int = 1) -> dict:
    """[ADA] App. D "auto": batch, gamma, EMA and width from the resolution and the GPU count."""
    batch = max(min(gpus * min(4096 // res, 32), 64), gpus)
    return dict(
        batch=batch, mbstd_group=min(batch // gpus, 4), channel_base=int((1 if res >= 512 else 0.5) * 32768),
        channel_max=512, lr_g=0.002 if res >= 1024 else 0.0025, lr_d=0.002 if res >= 1024 else 0.0025,
        gamma=0.0002 * res**2 / batch, ema_kimg=batch * 10 / 32, ema_rampup=0.05, mapping_layers=2,
    )


def _fixed(batch, mbstd, fmaps, lr, gamma, ema, mapping_layers) -> dict:
    return dict(
        batch=batch, mbstd_group=mbstd, channel_base=int(fmaps * 32768), channel_max=512, lr_g=lr, lr_d=lr,
        gamma=gamma, ema_kimg=ema, ema_rampup=None, mapping_layers=mapping_layers,
    )


PRESETS = {  # cfg -> function(resolution) -> values ([ADA] App. D table)
    "paper256": lambda res: _fixed(64, 8, 0.5, 0.0025, 1.0, 20.0, 8),
    "paper512": lambda res: _fixed(64, 8, 1.0, 0.0025, 0.5, 20.0, 8),
    "stylegan2": lambda res: _fixed(32, 4, 1.0, 0.002, 10.0, 10.0, 8),
    "auto": _auto,
    "tiny": _tiny,
    "demo": _demo,
}

MODEL_DEFAULTS = {
    "stylegan2": {},
    # [DC]: Adam beta1 0.5, lr 5e-4 (the paper's final choice in 2e-4..5e-4), no EMA or regularisers;
    # z of 100 as in Radford et al. (the study's summary shows 1000; set z_dim to match it).
    "dcgan": dict(
        lr_g=5e-4, lr_d=5e-4, beta1=0.5, beta2=0.999, gamma=0.0, pl_weight=0.0, style_mixing=0.0,
        ema_kimg=0.0, ema_rampup=None, augpipe="none", ada_target=None, p=0.0, z_dim=100,
    ),
}


def make_options(*, cfg: str = "auto", model: str = "stylegan2", resolution: int, **overrides) -> TrainOptions:
    """Resolve ``cfg`` and ``model`` presets at ``resolution`` (pixels), then apply ``overrides``.

    Pass in ``overrides`` only the options the user actually set (None is a real value for
    ``ada_target``, ``lumaflip`` and ``subset``).
    """
    if cfg not in PRESETS:
        raise MicrotuneError(f"--cfg must be one of {', '.join(CFG_NAMES)}, got {cfg!r}.")
    if model not in MODEL_DEFAULTS:
        raise MicrotuneError(f"--model must be one of {', '.join(MODEL_NAMES)}, got {model!r}.")
    check_resolution(resolution, model)
    values = dict(PRESETS[cfg](resolution))
    values.update(MODEL_DEFAULTS[model])
    values.update(overrides)
    options = TrainOptions.from_dict(dict(values, cfg=cfg, model=model, resolution=resolution))
    validate_options(options)
    return options


def check_resolution(resolution: int, model: str = "stylegan2") -> None:
    """Refuse resolutions the networks cannot build (power of two, 16..1024; DCGAN from 32)."""
    low = 32 if model == "dcgan" else 16
    if resolution < low or resolution > 1024 or 2 ** int(round(math.log2(resolution))) != resolution:
        raise MicrotuneError(
            f"dataset resolution {resolution} is not supported by --model {model}: it must be a power of two from {low} to 1024."
        )


def validate_options(o: TrainOptions) -> None:
    """Raise MicrotuneError naming the first bad option."""
    if o.augpipe not in AUGPIPE_NAMES:
        raise MicrotuneError(f"--augpipe must be one of {', '.join(AUGPIPE_NAMES)}, got {o.augpipe!r}.")
    if o.ada_target is not None and not 0.0 <= o.ada_target <= 1.0:
        raise MicrotuneError(f"--target must be in [0, 1], got {o.ada_target}.")
    if not 0.0 <= o.p <= 1.0:
        raise MicrotuneError(f"--p must be in [0, 1], got {o.p}.")
    if o.batch < 1 or (o.model == "stylegan2" and o.batch % min(o.mbstd_group, o.batch)):
        raise MicrotuneError(f"--batch {o.batch} must be positive and divisible by the minibatch-stddev group {o.mbstd_group}.")
    if o.kimg <= 0:
        raise MicrotuneError(f"--kimg must be positive, got {o.kimg}.")
    for name in ("tick_kimg", "eval_every_kimg", "snapshot_every_kimg"):
        if getattr(o, name) <= 0:
            raise MicrotuneError(f"--{name.replace('_', '-')} must be positive, got {getattr(o, name)}.")
    if o.subset is not None and o.subset < 1:
        raise MicrotuneError(f"--subset must be a positive number of images, got {o.subset}.")
    if o.precision not in ("fp32", "bf16"):
        raise MicrotuneError(f"--precision must be fp32 or bf16, got {o.precision!r}.")
    if o.device not in ("auto", "cpu", "cuda"):
        raise MicrotuneError(f"--device must be auto, cpu or cuda, got {o.device!r}.")
    if o.img_channels not in (1, 3):
        raise MicrotuneError(f"images must have 1 or 3 channels, got {o.img_channels}.")

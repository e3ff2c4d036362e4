"""GAN training options (one typed, frozen model) and the named ``cfg`` presets.

References
----------
[ADA]  Karras et al. 2020, "Training GANs with limited data", App. D (configurations ``paper256``,
       ``paper512``, ``stylegan2`` = StyleGAN2 config F, and the ``auto`` heuristics).
[SG2]  Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN".
[DC]   Mishra & Pathak 2021, DCGAN for Al-Si micrographs (Adam beta1 0.5, lr 2e-4..5e-4).
[SEM]  The StyleGAN2-ADA SEM study (/work/shared/papers/stylegan2-ada-sem-study.txt): r_t in 0.3..0.9.

Resolution order: preset (by ``cfg``, some entries depend on the resolution) -> model defaults
(``dcgan`` replaces the StyleGAN2 optimiser and regularisers) -> a study's fixed options -> explicit
overrides. Every value is checked by :class:`TrainOptions` (types and one range rule per field);
messages name the option through a ``label`` function: the CLI flag (``--gamma``) by default, the YAML
path (``train.gamma``) when a study spec is validated; the sentences are :mod:`microtune.typed`'s
(shared with the segmentation options and the study spec). Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Callable, Literal, get_args

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from microtune import typed
from microtune.errors import MicrotuneError

Cfg = Literal["paper256", "paper512", "stylegan2", "auto", "tiny", "demo"]
Model = Literal["stylegan2", "dcgan"]
Augpipe = Literal["none", "blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"]
CFG_NAMES = get_args(Cfg)
MODEL_NAMES = get_args(Model)
AUGPIPE_NAMES = get_args(Augpipe)

# One range rule per option (the only place it is written). The ADA target: r_t = E[sign(D(x_real))]
# ([ADA] Eq. 1, [SEM] Eq. 4) and p moves by sign(r_t - target) ([ADA] Sec. 3), so every target in
# [0, 1] is well defined: at 0, p rises whenever D leans "real" (our loop tests use it to exercise the
# controller quickly); at 1, p can never rise. The study scans 0.3..0.9 ([SEM] Fig. 2); [ADA] uses 0.6.
Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
AdamBeta = Annotated[float, Field(ge=0, lt=1)]
Target = Annotated[float, Field(ge=0, le=1)]


def _doc(text: str):
    """An option's help text (``microtune train --help`` shows it with the range and the default)."""
    return Field(description=text)


@dataclass(frozen=True, config=ConfigDict(strict=True, extra="forbid"))
class TrainOptions:
    """Every knob of one GAN training run. Units: kimg = thousands of real images shown to D.

    A typed model (pydantic, strict: no string-to-number coercion): constructing it checks every
    field's type and range; :func:`make_options` adds the rules that involve two fields.
    """

    model: Annotated[Model, _doc('"stylegan2" or "dcgan"')] = "stylegan2"
    cfg: Annotated[Cfg, _doc("preset the values below came from")] = "auto"
    resolution: Annotated[int, Field(ge=0), _doc("image side in pixels (power of two); 0 = from the dataset")] = 0
    img_channels: Annotated[Literal[1, 3], _doc("1 (grayscale) or 3")] = 1
    # Architecture (StyleGAN2; DCGAN uses z_dim, dcgan_ngf, dcgan_ndf).
    z_dim: Annotated[PositiveInt, _doc("latent z width")] = 512
    w_dim: Annotated[PositiveInt, _doc("intermediate latent w width")] = 512
    mapping_layers: Annotated[PositiveInt, _doc("mapping-network depth (8 in [SG2], 2 in [ADA] auto)")] = 2
    channel_base: Annotated[PositiveInt,
                            _doc("feature maps at resolution r: min(channel_base / r, channel_max)")] = 16384
    channel_max: Annotated[PositiveInt, _doc("cap on feature maps")] = 512
    mbstd_group: Annotated[PositiveInt, _doc("minibatch-stddev group size")] = 4
    fused_modconv: Annotated[bool, _doc("grouped-conv modulation (same map; speed differs by device)")] = False
    dcgan_ngf: Annotated[PositiveInt, _doc("DCGAN generator width at the last layer [DC]")] = 64
    dcgan_ndf: Annotated[PositiveInt, _doc("DCGAN discriminator width at the first layer [DC]")] = 64
    # Optimisation.
    batch: Annotated[PositiveInt, _doc("minibatch size (images per step)")] = 16
    lr_g: Annotated[Positive, _doc("generator Adam learning rate")] = 0.0025
    lr_d: Annotated[Positive, _doc("discriminator Adam learning rate")] = 0.0025
    beta1: Annotated[AdamBeta, _doc("Adam beta1 ([SG2]: 0)")] = 0.0
    beta2: Annotated[AdamBeta, _doc("Adam beta2 ([SG2]: 0.99)")] = 0.99
    gamma: Annotated[NonNegative, _doc("R1 weight ([SG2] App. B; Mescheder et al. 2018)")] = 1.0
    r1_interval: Annotated[PositiveInt, _doc("lazy R1 every this many D steps ([SG2] Sec. 3.1)")] = 16
    pl_weight: Annotated[NonNegative, _doc("path-length regularisation weight ([SG2] Sec. 3.2)")] = 2.0
    pl_interval: Annotated[PositiveInt, _doc("lazy path length every this many G steps ([SG2] Sec. 3.1)")] = 4
    style_mixing: Annotated[Probability, _doc("fraction of images made from two latents (StyleGAN Sec. 3.1)")] = 0.9
    ema_kimg: Annotated[NonNegative, _doc("G_ema half-life in kimg (0 = no averaging)")] = 10.0
    ema_rampup: Annotated[Positive | None, _doc("half-life <= rampup * images seen so far (none = off)")] = 0.05
    # Adaptive discriminator augmentation [ADA].
    augpipe: Annotated[Augpipe, _doc("augmentation preset (see augment.AUGPIPE_PRESETS)")] = "bg"
    ada_target: Annotated[Target | None, _doc("target r_t for adaptive p; None = fixed p")] = 0.6
    p: Annotated[Probability, _doc("initial (adaptive) or fixed (ada_target None) probability")] = 0.0
    ada_kimg: Annotated[Positive, _doc("p can go from 0 to 1 in this many kimg [ADA] Sec. 3")] = 500.0
    ada_interval: Annotated[PositiveInt, _doc("adjust p every this many minibatches [ADA] Sec. 3")] = 4
    lumaflip: Annotated[bool | None, _doc("None: off on 1 channel (SEM study), on for RGB")] = None
    # Schedule.
    kimg: Annotated[Positive, _doc("training length")] = 25000.0
    tick_kimg: Annotated[Positive, _doc("progress report interval")] = 4.0
    eval_every_kimg: Annotated[Positive, _doc("evaluation-callback interval")] = 50.0
    snapshot_every_kimg: Annotated[Positive, _doc("sample grid + checkpoint interval")] = 50.0
    subset: Annotated[PositiveInt | None, _doc("train on a nested subset of this many images")] = None
    seed: Annotated[int, Field(ge=0), _doc("global seed (subset choice, init, sampling)")] = 0
    device: Annotated[Literal["auto", "cpu", "cuda"], _doc('"auto", "cpu" or "cuda"')] = "auto"
    compile: Annotated[bool, _doc("torch.compile the unregularised passes")] = False
    precision: Annotated[Literal["fp32", "bf16"], _doc("autocast of the unregularised passes")] = "fp32"
    num_threads: Annotated[int, Field(ge=0), _doc("CPU threads for torch (0 = leave torch's default)")] = 0

    def to_dict(self) -> dict:
        """Flat dict of JSON-safe values (also what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, label: Callable[[str], str] | None = None) -> "TrainOptions":
        """Inverse of :meth:`to_dict`; unknown keys and bad values raise :class:`OptionsError`."""
        try:  # numpy scalars (e.g. from a sampler) count as the Python numbers they hold; strings never do
            return cls(**typed.plain(values))
        except ValidationError as exc:
            raise OptionsError.from_validation(exc, label or option_label) from None


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


# The ``microtune train`` flag of each option: these are written by hand (short names, on/off words,
# the --target/--p pair); every other option but the two read from the dataset gets ``--`` + its name
# with dashes, generated from its field (its default is then the value --cfg and --model give).
NAMED_FLAGS = {
    "cfg": "--cfg", "model": "--model", "augpipe": "--augpipe", "ada_target": "--target", "p": "--p",
    "lumaflip": "--lumaflip", "kimg": "--kimg", "tick_kimg": "--tick-kimg", "eval_every_kimg": "--eval-every-kimg",
    "snapshot_every_kimg": "--snapshot-every-kimg", "batch": "--batch", "gamma": "--gamma", "subset": "--subset",
    "seed": "--seed", "device": "--device", "num_threads": "--threads", "compile": "--compile",
    "precision": "--precision",
}
FROM_DATASET = ("resolution", "img_channels")
GENERATED_FLAGS = {f.name: "--" + f.name.replace("_", "-") for f in dataclasses.fields(TrainOptions)
                   if f.name not in NAMED_FLAGS and f.name not in FROM_DATASET}
CLI_FLAGS = NAMED_FLAGS | GENERATED_FLAGS


def option_label(name: str) -> str:
    """How ``microtune train`` names an option in messages: its flag, else the option name."""
    if name in CLI_FLAGS:
        return CLI_FLAGS[name]
    return f"option {name} (from --data)" if name in FROM_DATASET else name


class OptionsError(MicrotuneError):
    """A training option is invalid. ``field`` is the option, ``problem`` the rest of the sentence."""

    def __init__(self, field: str, problem: str, label: Callable[[str], str] = option_label) -> None:
        self.field, self.problem = field, problem.rstrip(".")
        super().__init__(f"{label(field)}: {self.problem}.")

    @classmethod
    def from_validation(cls, exc: ValidationError, label: Callable[[str], str]) -> "OptionsError":
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "options"
        return cls(field, _problem(error, field), label)


def _problem(error: dict, field: str) -> str:
    return typed.problem(error, TrainOptions.__pydantic_fields__.get(field), unknown="is not a training option")


def check_value(name: str, value, label: Callable[[str], str] = option_label) -> None:
    """Refuse one option value on its own (type and range), e.g. one value of a sweep axis."""
    if name in ("model", "resolution"):
        return
    TrainOptions.from_dict({name: value}, label)


def make_options(*, cfg: str = "auto", model: str = "stylegan2", resolution: int, study: dict | None = None,
                 crossed: frozenset[str] | set[str] = frozenset(), label: Callable[[str], str] = option_label,
                 **overrides) -> TrainOptions:
    """Resolve ``cfg`` and ``model`` presets at ``resolution`` (pixels), then ``study``, then ``overrides``.

    Pass only the options the user actually set (None is a real value for ``ada_target``, ``lumaflip``
    and ``subset``): ``study`` holds a sweep's fixed ``train`` options, ``overrides`` the trial's own (or
    the CLI flags). ``crossed``: override keys that come from separate grid axes. ``label`` names an
    option in messages (CLI flag or YAML path).

    ADA target without augmentation: an ``ada_target`` given where ``augpipe`` is ``none`` (same place,
    or the target more specific than the ``none``, e.g. ``--target`` with ``--model dcgan``) is refused;
    when ``none`` is the more specific choice (a grid axis or arm crossed with ``train.ada_target``, or
    the ``ada_target`` and ``augpipe`` axes of a grid), the trial has no augmentation and its resolved
    ``ada_target`` is None (logged as such).
    """
    if cfg not in PRESETS:
        raise OptionsError("cfg", f"must be one of {', '.join(CFG_NAMES)}, got {cfg!r}", label)
    if model not in MODEL_DEFAULTS:
        raise OptionsError("model", f"must be one of {', '.join(MODEL_NAMES)}, got {model!r}", label)
    check_resolution(resolution, model)
    study = dict(study or {})
    values = dict(PRESETS[cfg](resolution))
    values.update(MODEL_DEFAULTS[model])
    values.update(study)
    values.update(overrides)

    def level(key: str) -> int:
        return 2 if key in overrides else 1 if key in study else 0

    default = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    if values.get("augpipe", default["augpipe"]) == "none" and values.get("ada_target", default["ada_target"]) is not None:
        t, a = level("ada_target"), level("augpipe")
        together = {"ada_target", "augpipe"} <= set(crossed) and t == a == 2
        if t > a or (t == a and t > 0 and not together):
            raise OptionsError("ada_target", f"{values.get('ada_target')} is given but augpipe is none, so there is no "
                               "augmentation probability to adapt; remove the target or choose an augpipe", label)
        values["ada_target"] = None
    options = TrainOptions.from_dict(dict(values, cfg=cfg, model=model, resolution=resolution), label)
    validate_options(options, label)
    return options


def option_kind(name: str) -> type:
    """The Python type of option ``name``'s values (``X | None``: X)."""
    return typed.unwrap(TrainOptions.__pydantic_fields__[name].annotation)[0]


def option_help(name: str) -> str:
    """Option ``name``'s help text with its range rule, e.g. "generator Adam learning rate; > 0"."""
    info = TrainOptions.__pydantic_fields__[name]
    rule = typed.range_text(typed.constraints(info))
    return f"{info.description}; {rule}" if rule else info.description


def check_resolution(resolution: int, model: str = "stylegan2") -> None:
    """Refuse resolutions the networks cannot build (power of two, 16..1024; DCGAN from 32)."""
    low = 32 if model == "dcgan" else 16
    if resolution < low or resolution > 1024 or 2 ** int(round(math.log2(resolution))) != resolution:
        raise MicrotuneError(
            f"dataset resolution {resolution} is not supported by --model {model}: it must be a power of two from {low} to 1024."
        )


def validate_options(o: TrainOptions, label: Callable[[str], str] = option_label) -> None:
    """The rules that involve two options (each option's own type and range are checked by the model)."""
    if o.model == "stylegan2" and o.batch % min(o.mbstd_group, o.batch):
        raise OptionsError("batch", f"{o.batch} must be divisible by the minibatch-stddev group {o.mbstd_group}", label)

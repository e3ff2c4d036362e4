"""Segmentation options without torch: methods, :class:`SegOptions` (one typed model), transfer depths.

:class:`SegOptions` is a pydantic v2 dataclass (frozen, strict: no string-to-number coercion; unknown
keys, infinities and NaN refused). Each option's type, range rule and help text are written once, in
its annotation (``microtune segment``'s flags are generated from them); the rule that involves two
options is :func:`_check_together`; what must exist on this machine (weight and split-list files) is
:func:`check_files`. Messages name an option through a ``label``
function: the ``microtune segment`` flag by default (``--epochs: must be >= 1, got 0.``), the YAML
path when a study spec is validated (``search.params.lr[1]: must be > 0, got 0.``). The sentences are
:mod:`microtune.typed`'s, shared with the GAN options and the study spec.

Entry points
------------
:func:`make_seg_options` (a flat dict, unknown keys refused; every rule), :func:`check_value` (one
value on its own: type and range), :func:`options_from_dict` + :func:`validate` (older callers:
unknown keys ignored, then the two-option rule and the files). Errors are :class:`SegOptionsError`
(a :class:`MicrotuneError` with ``field`` and ``problem``).

:mod:`microtune.sweep.spec` validates HPTL sweep specs with this module, so it imports neither torch
nor ray; :mod:`microtune.seg.run` runs the options. Depth limits and the paper's depths are
explained in :mod:`microtune.seg.hptl`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from microtune import typed
from microtune.errors import MicrotuneError

# Transferable units, in order: transfer depths count them (see microtune.seg.networks).
UNITS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "score_fr", "upscore2", "score_pool4")
PAPER_DEPTHS = (2, 8, 9)                                   # sec. 3.3.3
MAX_DEPTH = {"t1": 7, "t2": 8, "t3": 10}                   # see microtune.seg.hptl

METHODS = {"hptl": "HPTL", "hptl-r": "HPTL-R", "hptl-2h": "HPTL-2H", "fcn32s-scratch": "FCN-32s",
           "fcn16s-scratch": "FCN-16s", "fcn8s-scratch": "FCN-8s", "otsu": "OTSU", "svm": "SVM",
           "deeplab": "DeepLabV3+"}                          # method -> table label (the paper's Tables 2-3)
Method = Literal[tuple(METHODS)]  # type: ignore[valid-type]
Backbone = Literal["resnet50", "resnet18", "mobilenet_v3_large"]   # see microtune.seg.deeplab
DEEPLAB_BACKBONES = get_args(Backbone)

Label = typed.Label


class SegOptionsError(MicrotuneError):
    """A segmentation option is invalid. ``field`` is the option, ``problem`` the rest of the sentence."""

    def __init__(self, field: str, problem: str, label: Label | None = None) -> None:
        self.field, self.problem = field, problem.rstrip(".")
        super().__init__(f"{(label or option_label)(field)}: {self.problem}.")


OptionsError = SegOptionsError  # the name microtune.gan.config uses for the same kind of error


def option_label(name: str) -> str:
    """How ``microtune segment`` names an option in messages: its flag (every option has one)."""
    return "--" + name.replace("_", "-")


# -- transfer depths ---------------------------------------------------------------------------------

def parse_depth(value: int | str, name: str) -> int:
    """A depth from a number or a unit name (the last unit transferred), checked against its limit;
    raises :class:`SegOptionsError` (field ``depths``)."""
    limit = MAX_DEPTH[name]
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        elif text in UNITS:
            value = UNITS.index(text) + 1
        else:
            raise SegOptionsError("depths", f"{name}={value!r} is neither a number nor a unit name "
                                            f"({', '.join(UNITS[:limit])})")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise SegOptionsError("depths", f"{name} must be between 0 and {limit} ({', '.join(UNITS[:limit])}), "
                                        f"got {value!r}")
    return value


def parse_depths(value: str | Sequence) -> tuple[int, int, int]:
    """``"2,8,9"``, ``"conv2,score_fr,upscore2"`` or a sequence of three → (t1, t2, t3)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != 3:
        raise SegOptionsError("depths", f"needs three values t1,t2,t3, got {value!r}")
    return tuple(parse_depth(p, n) for p, n in zip(parts, ("t1", "t2", "t3")))  # type: ignore[return-value]


# -- the model ---------------------------------------------------------------------------------------

def _doc(text: str):
    """An option's help text (``microtune segment --help`` shows it with the range and default)."""
    return Field(description=text)


@dataclass(frozen=True, config=ConfigDict(strict=True, extra="forbid", allow_inf_nan=False))
class SegOptions:
    """A resolved segmentation configuration (flat: it is logged as MLflow params).

    Constructing one checks every option's type and range (a bad one raises
    :class:`SegOptionsError` naming its flag); :func:`validate` adds the two-option rule and the files.
    """

    data: Annotated[str, _doc("dataset directory with masks")]
    method: Annotated[Method, _doc("segmentation method: HPTL (hptl, hptl-r, hptl-2h) or a baseline")] = "hptl"
    depths: Annotated[str, _doc("transfer depths t1,t2,t3 in units, as numbers or unit names (paper 2,8,9 = "
                                "conv2,score_fr,upscore2; t1 <= 7, t2 <= 8, t3 <= 10)")] = "2,8,9"
    freeze: Annotated[bool, _doc("freeze transferred units (default: retrain them)")] = False
    epochs: Annotated[int, Field(ge=1), _doc("epochs per trained network (each HPTL stage)")] = 10
    batch: Annotated[int, Field(ge=1), _doc("crops per step (paper 16)")] = 16
    # 32: the smallest crop that survives VGG-19's five 2x poolings
    crop: Annotated[int, Field(ge=32), _doc("training crop side in pixels (paper 224; five 2x poolings)")] = 224
    lr: Annotated[float, Field(gt=0), _doc("Adam learning rate (paper γ2 = 1e-4)")] = 1e-4
    samples_per_epoch: Annotated[int, Field(ge=0), _doc("training crops per epoch (0: 8 x training images)")] = 0
    l2: Annotated[float, Field(ge=0), _doc("L2 penalty λ (0: none; hptl-r then uses the paper's 0.5)")] = 0.0
    l2_mode: Annotated[Literal["decay", "transfer"],
                       _doc("decay: Σw² as in the paper; transfer: toward the transferred weights")] = "decay"
    width: Annotated[float, Field(gt=0, le=1),
                     _doc("channel multiplier of VGG-19/FCN and the DeepLabV3+ head (CPU runs: 0.0625)")] = 1.0
    channels: Annotated[Literal[1, 3], _doc("network input channels (grey replicated)")] = 1
    batch_norm: Annotated[bool, _doc("VGG-19-BN convs (not in the paper; for tiny CPU nets)")] = False
    dropout: Annotated[float, Field(ge=0, lt=1), _doc("dropout after fc6/fc7 (0 helps tiny CPU nets)")] = 0.5
    split: Annotated[str, _doc("specimens (every 4th specimen is test) or lists:TRAIN.txt,TEST.txt")] = "specimens"
    subset: Annotated[int, Field(ge=0), _doc("training images used (0: all)")] = 0
    source: Annotated[Literal["auto", "imagenet", "textures"],
                      _doc("stage-1 VGG-19: ImageNet weights (file or torch hub cache) or trained on textures "
                           "here; auto: ImageNet when found and --width is 1")] = "auto"
    source_weights: Annotated[str, _doc("torchvision VGG-19 ImageNet state-dict file")] = ""
    source_steps: Annotated[int, Field(ge=0), _doc("texture-task training steps of the source VGG-19")] = 300
    source_optimizer: Annotated[Literal["adam", "sgd"],
                                _doc("texture-source optimiser (sgd: the paper's, slow from scratch)")] = "adam"
    cache_dir: Annotated[str, _doc("cache of trained source networks")] = ""
    deeplab_backbone: Annotated[Backbone, _doc("DeepLabV3+ encoder (resnet18 for CPU runs)")] = "resnet50"
    deeplab_weights: Annotated[str, _doc("DeepLabV3+ encoder weights: empty (random init), imagenet (torch hub "
                                         "cache, else download) or a torchvision state-dict file")] = ""
    svm_samples: Annotated[int, Field(ge=1), _doc("training pixels of the SVM")] = 4000
    device: Annotated[str, _doc("auto (cuda when available), cpu, cuda or cuda:N")] = "auto"
    seed: Annotated[int, Field(ge=0), _doc("random seed (split subset, initialisation, crops)")] = 0

    @property
    def label(self) -> str:
        """The method's table label (``HPTL``, ``FCN-8s``, ...)."""
        return METHODS[self.method]

    # One rule for each string option with a grammar (the others: Literal or a range above).
    @field_validator("depths")
    @classmethod
    def _depths(cls, value: str) -> str:
        try:
            parse_depths(value)
        except SegOptionsError as exc:
            raise typed.rule(exc.problem) from None
        return value

    @field_validator("split")
    @classmethod
    def _split(cls, value: str) -> str:
        files = value[len("lists:"):].split(",") if value.startswith("lists:") else []
        if value != "specimens" and (len(files) != 2 or not all(f.strip() for f in files)):
            raise typed.rule(f"must be 'specimens' or 'lists:TRAIN.txt,TEST.txt' (two files), got {value!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise typed.rule(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value


_build = SegOptions.__init__  # pydantic's validating constructor


def _init(self, *args, **kwargs) -> None:
    try:
        _build(self, *args, **kwargs)
    except ValidationError as exc:
        raise _error(exc, option_label) from None


SegOptions.__init__ = _init  # SegOptions(...) raises SegOptionsError (one sentence), not pydantic's report
FIELDS = tuple(f.name for f in dataclasses.fields(SegOptions))


def option_type(name: str) -> type:
    """The Python type of option ``name``'s values (a Literal's: that of its choices)."""
    kind = SegOptions.__pydantic_fields__[name].annotation
    return type(get_args(kind)[0]) if get_origin(kind) is Literal else kind


# dataclasses.fields(SegOptions)[i].type stays the plain type name ("int", "float", "bool", "str"), as
# before this became a pydantic model (readers of it need no pydantic); the rules are in the annotations.
for _field in dataclasses.fields(SegOptions):
    _field.type = option_type(_field.name).__name__


# -- messages ----------------------------------------------------------------------------------------

def _error(exc: ValidationError, label: Label) -> SegOptionsError:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "options"
    return SegOptionsError(field, _problem(error, field), label)


def _problem(error: dict, field: str) -> str:
    kind = error["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        close = difflib.get_close_matches(field, FIELDS, n=1)
        return "is not a segmentation option" + (f" (did you mean {close[0]}?)" if close else "")
    info = SegOptions.__pydantic_fields__.get(field)
    text = typed.problem(error, info)
    if kind.startswith("string") and field == "depths":
        text += " (write depths as '2,8,9')"
    return text


def option_choices(name: str) -> tuple:
    """The values a Literal option accepts."""
    return typed.choices(SegOptions.__pydantic_fields__[name])


def range_text(name: str) -> str:
    """The range rule of option ``name`` in words, read from its annotation ("in (0, 1]", ">= 1"),
    or "" when it has none."""
    return typed.range_text(typed.constraints(SegOptions.__pydantic_fields__[name]))


# -- building and checking ---------------------------------------------------------------------------

def _construct(values: Mapping[str, Any], label: Label) -> SegOptions:
    options = SegOptions.__new__(SegOptions)
    try:
        _build(options, **typed.plain(values))  # numpy scalars count as Python values
    except ValidationError as exc:
        raise _error(exc, label) from None
    return options


def check_value(name: str, value: Any, label: Label = option_label) -> None:
    """Refuse one option value on its own (type, range, grammar), e.g. one value of a sweep axis or
    one CLI flag; unknown names are refused too. Raises :class:`SegOptionsError`."""
    _construct({"data": ""} | {name: value}, label)


def _check_together(o: SegOptions, label: Label) -> None:
    """The rules that involve two options (each option's own rule is in its annotation)."""
    if o.method.startswith("hptl") and parse_depths(o.depths)[0] > 0 and o.source == "imagenet" \
            and (o.width != 1.0 or o.batch_norm):
        got = " and ".join(([f"{label('width')} {o.width:g}"] if o.width != 1.0 else [])
                           + ([f"{label('batch_norm')} true"] if o.batch_norm else []))
        raise SegOptionsError("source", f"imagenet needs {label('width')} 1 and {label('batch_norm')} off "
                                        f"(the ImageNet VGG-19 weights are full width, without batch norm), "
                                        f"got {got}", label)


def check_files(o: SegOptions, label: Label = option_label, *, lists: bool = True) -> None:
    """What the options name must exist on this machine: the VGG-19 source weights (when HPTL
    transfers from it), a DeepLabV3+ weight file, the split lists. (The dataset, the torch hub cache
    and CUDA are checked by :mod:`microtune.seg.run` before any work.)"""
    if o.source_weights and o.method.startswith("hptl") and parse_depths(o.depths)[0] > 0 \
            and not Path(o.source_weights).is_file():
        raise SegOptionsError("source_weights", f"{o.source_weights}: no such file", label)
    weights = o.deeplab_weights
    if weights not in ("", "imagenet") and not Path(weights).is_file():
        raise SegOptionsError("deeplab_weights", f"must be empty (random init), 'imagenet' or an existing "
                                                 f"torchvision state-dict file, got {weights!r}", label)
    if lists and o.split.startswith("lists:"):
        for f in o.split[len("lists:"):].split(","):
            if not Path(f).is_file():
                raise SegOptionsError("split", f"the split list {f} does not exist", label)


def make_seg_options(values: Mapping[str, Any], *, label: Label = option_label,
                     files: bool = True) -> SegOptions:
    """Every rule at once: ``values`` (a flat dict; ``data`` required, unknown keys refused) → the
    checked :class:`SegOptions`. ``label`` names an option in messages (default its CLI flag; a
    study spec passes the YAML path, e.g. ``lambda k: f"train.{k}"``). ``files``: also run
    :func:`check_files` (leave it on unless the files live on another machine).
    Raises :class:`SegOptionsError` (``field``, ``problem``, message = ``label(field): problem.``)."""
    options = _construct(values, label)
    _check_together(options, label)
    if files:
        check_files(options, label)
    return options


def validate(options: SegOptions, label: Label = option_label) -> SegOptions:
    """The rules a constructed :class:`SegOptions` may still break: two options together, and the
    weight files it names (split lists are read, and refused, by ``microtune.seg.run.load_split``);
    raises :class:`SegOptionsError` naming the option. Returns ``options``."""
    _check_together(options, label)
    check_files(options, label, lists=False)
    return options


def options_from_dict(values: Mapping[str, Any], label: Label = option_label) -> SegOptions:
    """SegOptions from a flat dict (a namespace or a sweep's config), ignoring unknown keys; every
    option's type and range are checked (:func:`validate` adds the rest, :func:`make_seg_options`
    does both and refuses unknown keys)."""
    return _construct({k: v for k, v in values.items() if k in FIELDS}, label)

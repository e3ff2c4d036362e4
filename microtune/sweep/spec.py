"""Study specs: ``sweeps/NAME.yaml`` → a validated :class:`StudySpec`.

Importing this module imports neither torch nor ray. Everything a spec says is checked here,
before any work starts, by typed models (pydantic: :class:`SpecIn` and its sections; strict types,
unknown keys refused, one range rule per field); every problem is one sentence naming the file and
the YAML path, e.g. ``sweeps/x.yaml: search.params.ada_target[2]: must be in [0, 1], got 1.2.`` or
``s.yaml: search.sampler: must be one of tpe, nsga2, got 'cmaes'.`` What ``train``, the axes
and the arms may hold is the model family's (:mod:`microtune.sweep.families`): a GAN family builds
every trial's :class:`microtune.gan.config.TrainOptions`, the segmentation family its
:class:`microtune.seg.options.SegOptions`.

Grammar (every key optional unless marked)::

    name: quickstart                 # required; the MLflow experiment; letters, digits, . _ -
    description: free text
    model: stylegan2                 # a registered model family: stylegan2 | dcgan | hptl
    dataset: path/to/dataset         # required; a prepared dataset directory (relative to the
                                     # current directory) or {path: ..., }
    train: {cfg: tiny, kimg: 4, ...} # fixed training options (microtune.gan.config.TrainOptions;
                                     # hptl: microtune.seg.options.SegOptions)
    search:
      method: grid                   # grid | optuna
      seeds: [0, 1, 2]               # every configuration runs once per seed
      params:                        # grid: name -> list of values
        augpipe: [none, bg]          # optuna: name -> distribution (see below) or list (categorical)
      arms:                          # grid: fixed configurations run besides the cross product
        - {augpipe: bgc, ada_target: 0.6}   # (once per seed), e.g. the baselines of a study
      num_samples: 16                # optuna: configurations to sample (each run per seed)
      sampler: tpe                   # optuna: tpe | nsga2
      objectives:                    # optuna: one (single objective) or more (multi-objective)
        - {metric: fid, mode: min}
    scheduler:
      type: fifo                     # fifo | asha
      metric: fid                    # asha: the metric it prunes on (fid, kid, precision, recall,
      mode: min                      #   best_fid, best_recall: the best so far); mode: its direction
      rungs_kimg: [1, 2, 4]          # asha: the rungs; grace period = first, factor = ratio
    metrics:
      protocols: [fid500_full]       # evaluation protocols (names encode sizes)
      detector: standard             # standard | random-seed:N | texture-vgg19-seed:N
      eval_every_kimg: 1             # overrides train.eval_every_kimg
    resources: {cpu: 1, gpu: 0}      # per trial; fractions allowed
    max_concurrent: 2                # trials at once (0 = as many as resources allow)
    failure: {max_retries: 3}        # retries of a failed trial, each from its last checkpoint
    tracking: {uri: null}            # null: the local MLflow server of the project

``model: hptl`` (segmentation, :mod:`microtune.sweep.families.segmentation`): ``train`` and the axes are segmentation
options (``method``, ``depths``, ``epochs``, ...; the dataset needs masks); trials report
``seg_acc``, ``seg_miou``, the losses and ms per image every epoch; the default objective is
``{metric: seg_acc, mode: max}``; ``metrics`` and ASHA do not apply. Paths in ``split: lists:A,B``,
``source_weights``, ``cache_dir`` and ``deeplab_weights`` are relative to the current directory.

Optuna distributions: ``{type: float, low: 0.3, high: 0.9, step: 0.1, log: false}``,
``{type: int, low: 10, high: 3000, log: true}``, ``{type: categorical, choices: [bg, bgc]}``.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from microtune import typed
from microtune.errors import MicrotuneError
from microtune.sweep import families
from microtune.tracking import schema

SEARCH_METHODS = ("grid", "optuna")
SAMPLERS = ("tpe", "nsga2")  # microtune/sweep/samplers.py makes them (spec stays optuna-free)
SCHEDULERS = ("fifo", "asha")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def __getattr__(name: str) -> Any:
    """``MODELS``: the registered model families' names; ``OBJECTIVE_METRICS``: the metrics they offer
    as objectives (read from the registry each time, so a family registered later counts)."""
    if name == "MODELS":
        return families.names()
    if name == "OBJECTIVE_METRICS":
        return families.objective_metrics()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SpecError(MicrotuneError):
    """A study spec is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Objective:
    metric: str            # a metric key, e.g. "fid"
    mode: str              # "min" or "max"


@dataclass(frozen=True)
class Distribution:
    """An Optuna search dimension."""

    kind: str                              # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class StudySpec:
    """A validated study. Build with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    model: str
    dataset: Path
    source: str                                            # the spec file, for messages
    description: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    method: str = "grid"
    seeds: tuple[int, ...] = (0,)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    arms: tuple[dict[str, Any], ...] = ()                  # grid: fixed extra configurations
    space: dict[str, Distribution] = field(default_factory=dict)
    num_samples: int = 1
    sampler: str = "tpe"
    objectives: tuple[Objective, ...] = (Objective("fid", "min"),)
    scheduler: str = "fifo"
    scheduler_metric: str = "fid"
    scheduler_mode: str = "min"
    rungs_kimg: tuple[float, ...] = ()
    protocols: tuple[str, ...] = ()
    detector: str = "standard"
    eval_every_kimg: float | None = None
    cpu: float = 1.0
    gpu: float = 0.0
    max_concurrent: int = 0
    max_retries: int = 3
    tracking_uri: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)      # the spec as written, for the record

    @property
    def spec_hash(self) -> str:
        """sha256 of the resolved spec (canonical JSON), recorded on every run."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data (dataset as an absolute path)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("raw", "source")}
        out["dataset"] = str(self.dataset)
        out["space"] = {k: v.__dict__ for k, v in self.space.items()}
        out["objectives"] = [o.__dict__ for o in self.objectives]
        out["arms"] = [dict(a) for a in self.arms]
        return out

    def grid_configurations(self) -> list[dict[str, Any]]:
        """The grid's configurations: the cross product of ``params`` (one empty configuration when
        there are no params and no arms), then the ``arms``."""
        names = list(self.grid)
        if names:
            combos = [dict(zip(names, combo)) for combo in itertools.product(*(self.grid[n] for n in names))]
        else:
            combos = [] if self.arms else [{}]
        return combos + [dict(arm) for arm in self.arms]

    def grid_trials(self) -> list[dict[str, Any]]:
        """Every (configuration × seed) of a grid study, as override dicts, in launch order."""
        return [{**config, "seed": seed} for config in self.grid_configurations() for seed in self.seeds]

    def trial_count(self) -> int:
        """Number of trials the study runs."""
        if self.method == "grid":
            return len(self.grid_trials())
        return self.num_samples * len(self.seeds)


# -- the spec as typed models ------------------------------------------------------------------------
# What a spec file may say, section by section: strict types (no string-to-number coercion), unknown
# keys refused, choices as Literals, one range rule per field. Rules in code raise typed.rule(...)
# with the sentence; _sentence() names the YAML path of any error. What ``train``, the axes and the
# arms hold is checked by the model family (their values are Any here).

def _empty_if_none(value: Any) -> Any:
    return {} if value is None else value           # ``train:`` with nothing after it


def _one_of(names: Callable[[], tuple[str, ...]]) -> AfterValidator:
    """A choice read from the family registry when the spec is validated (families may register late)."""
    def check(value: str) -> str:
        if value not in names():
            raise typed.rule(f"must be one of {', '.join(names())}, got {value!r}")
        return value
    return AfterValidator(check)


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise typed.rule(f"must be letters, digits, '.', '_' or '-' (at most 100 characters), got {value!r}")
    return value


def _protocol(value: str) -> str:
    from microtune.metrics.cache import parse_protocol

    try:
        parse_protocol(value)
    except MicrotuneError as exc:
        raise typed.rule(str(exc)) from None
    return value


def _detector(value: str) -> str:
    if value != "standard" and not re.fullmatch(r"(random|texture-vgg19)-seed:\d+", value):
        raise typed.rule(f"must be standard, random-seed:N or texture-vgg19-seed:N, got {value!r}")
    return value


Text = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Mode = Literal["min", "max"]
Options = Annotated[dict[str, Any], BeforeValidator(_empty_if_none)]   # train / one arm: the family's
ModelName = Annotated[str, _one_of(families.names)]
MetricName = Annotated[str, _one_of(families.objective_metrics)]


class _Section(BaseModel):
    """One mapping of the spec; an empty one (``search:`` alone) means all defaults."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, data: Any) -> Any:
        return _empty_if_none(data)


class DatasetIn(_Section):
    path: Text

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, data: Any) -> Any:              # ``dataset: DIR`` is short for ``dataset: {path: DIR}``
        if isinstance(data, str):
            return {"path": data}
        if not isinstance(data, dict):
            raise typed.rule(f"must be a dataset directory or {{path: DIR}}, got {data!r}")
        return data


class ObjectiveIn(_Section):
    metric: MetricName
    mode: Mode


class _RangeDistribution(_Section):
    """A float or int range: high above low; a log scale needs low > 0 and no step."""

    @model_validator(mode="after")
    def _bounds(self):
        return _check_bounds(self)


class FloatDistribution(_RangeDistribution):
    type: Literal["float"]
    low: float
    high: float
    step: Positive | None = None
    log: bool = False


class IntDistribution(_RangeDistribution):
    type: Literal["int"]
    low: int
    high: int
    step: Annotated[int, Field(gt=0)] | None = None
    log: bool = False


class CategoricalDistribution(_Section):
    type: Literal["categorical"]
    choices: Annotated[list[Any], Field(min_length=1)]


def _check_bounds(d: FloatDistribution | IntDistribution):
    if d.high <= d.low:
        raise typed.rule(f"{d.high} must be greater than low ({d.low})", at="high")
    if d.log and (d.low <= 0 or d.step is not None):
        raise typed.rule("needs low > 0 and no step", at="log")
    return d


def _axis(value: Any) -> Any:
    """A list of values (a grid axis; categorical for Optuna) or a distribution mapping."""
    if isinstance(value, list):
        if not value:
            raise typed.rule("must not be empty")
        return {"type": "categorical", "choices": value}
    if not isinstance(value, dict):
        raise typed.rule(f"must be a list of values or a distribution {{type: float|int|categorical, ...}}, "
                         f"got {value!r}")
    return value


Axis = Annotated[Union[FloatDistribution, IntDistribution, CategoricalDistribution], Field(discriminator="type"),
                 BeforeValidator(_axis)]


class SearchIn(_Section):
    method: Literal[SEARCH_METHODS] = "grid"
    seeds: Annotated[list[Count], Field(min_length=1)] = [0]
    params: Annotated[dict[str, Axis], BeforeValidator(_empty_if_none)] = {}
    arms: list[Options] = []
    num_samples: Annotated[int, Field(ge=1)] = 8
    sampler: Literal[SAMPLERS] = "tpe"
    objectives: Annotated[list[ObjectiveIn], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _per_method(self):
        given = self.model_fields_set
        if len(set(self.seeds)) != len(self.seeds):
            raise typed.rule("lists a seed twice", at="seeds")
        if self.method == "grid":
            for key in ("num_samples", "sampler", "objectives"):
                if key in given:
                    raise typed.rule("applies only to method: optuna", at=key)
            for key, axis in self.params.items():
                if axis.type != "categorical":
                    raise typed.rule(f"a grid axis is a list of values ({axis.type} distributions apply to "
                                     "method: optuna)", at=f"params.{key}")
            if any(arm == {} for arm in self.arms):
                raise typed.rule("lists an empty configuration", at="arms")
            return self
        if "arms" in given:
            raise typed.rule("applies only to method: grid", at="arms")
        if not self.params:
            raise typed.rule("needs at least one parameter to search for method: optuna", at="params")
        metrics = [o.metric for o in self.objectives or ()]
        if len(set(metrics)) != len(metrics):
            raise typed.rule("names a metric twice", at="objectives")
        return self


class SchedulerIn(_Section):
    type: Literal[SCHEDULERS] = "fifo"
    metric: MetricName | None = None           # asha; default: the family's objective
    mode: Mode | None = None
    rungs_kimg: list[Positive] | None = None   # asha: grace period = first, reduction factor = ratio

    @model_validator(mode="after")
    def _rungs(self):
        if self.type == "fifo":
            for key in ("rungs_kimg", "metric", "mode"):
                if key in self.model_fields_set:
                    raise typed.rule("applies only to type: asha", at=key)
            return self
        rungs = self.rungs_kimg or []
        if len(rungs) < 2 or any(b <= a for a, b in zip(rungs, rungs[1:])):
            raise typed.rule("needs at least two increasing rungs", at="rungs_kimg")
        ratios = [b / a for a, b in zip(rungs, rungs[1:])]
        if max(ratios) - min(ratios) > 1e-6 * max(ratios):
            raise typed.rule(f"must grow geometrically (ASHA's reduction factor), got ratios {ratios}",
                             at="rungs_kimg")
        return self


class MetricsIn(_Section):
    protocols: list[Annotated[str, AfterValidator(_protocol)]] = []
    detector: Annotated[str, AfterValidator(_detector)] = "standard"
    eval_every_kimg: Positive | None = None    # overrides train.eval_every_kimg


class ResourcesIn(_Section):
    cpu: Positive = 1.0
    gpu: NonNegative = 0.0


class FailureIn(_Section):
    max_retries: Count = 3


class TrackingIn(_Section):
    uri: Text | None = None


class SpecIn(_Section):
    """The whole spec file."""

    name: Annotated[str, AfterValidator(_name)]
    description: str | None = None
    model: ModelName = families.DEFAULT
    dataset: DatasetIn
    train: Options = {}
    search: SearchIn = Field(default_factory=SearchIn)
    scheduler: SchedulerIn = Field(default_factory=SchedulerIn)
    metrics: MetricsIn = Field(default_factory=MetricsIn)
    resources: ResourcesIn = Field(default_factory=ResourcesIn)
    max_concurrent: Count = 0                 # 0: as many as resources allow
    failure: FailureIn = Field(default_factory=FailureIn)
    tracking: TrackingIn = Field(default_factory=TrackingIn)

    @model_validator(mode="after")
    def _together(self):
        if self.scheduler.type == "asha" and len(self.search.objectives or ()) > 1:
            raise typed.rule("asha prunes on one metric and cannot drive a multi-objective search",
                             at="scheduler.type")
        return self


# -- pydantic's report → one sentence naming the YAML path -------------------------------------------

def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _tag(model: Any) -> Any:
    """The ``type`` value that selects ``model`` in a tagged union (a distribution)."""
    fields = getattr(model, "model_fields", {})
    return typed.choices(fields["type"])[0] if "type" in fields else None


def _locate(loc: tuple) -> tuple[str, Any, tuple, tuple[str, ...] | None]:
    """Follow a pydantic error location through :class:`SpecIn`: the YAML path, the annotation and
    metadata found there (for choices and ranges) and, when the path ends at a key its mapping does
    not have, the keys that mapping allows. Union tags in the location (``float``) are not YAML keys."""
    path, kind, meta = "", SpecIn, ()
    for item in loc:
        kind, meta = typed.unwrap(kind, meta)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            path = _join(path, item)
            info = kind.model_fields.get(item)
            if info is None:
                return path, None, (), tuple(kind.model_fields)
            kind, meta = info.annotation, tuple(info.metadata)
        elif get_origin(kind) is Union:                       # a tagged union: this item is the tag
            kind, meta = next((m for m in get_args(kind) if _tag(m) == item), None), ()
        elif get_origin(kind) is dict:
            path, kind, meta = _join(path, item), get_args(kind)[1], ()
        elif get_origin(kind) is list:
            path, kind, meta = _join(path, item), get_args(kind)[0], ()
        else:
            path, kind, meta = _join(path, item), None, ()
    kind, meta = typed.unwrap(kind, meta)
    return path, kind, meta, None


def _sentence(source: str, error: dict) -> str:
    loc, kind = tuple(error["loc"]), error["type"]
    if loc and loc[-1] == "[key]":                        # a YAML key that is not a string
        path = _locate(loc[:-2])[0]
        problem = f"key {loc[-2]!r} must be a string"
    else:
        path, annotation, metadata, allowed = _locate(loc)
        if kind in ("union_tag_not_found", "union_tag_invalid"):
            path = _join(path, "type")
            tags = [_tag(m) for m in get_args(annotation)]
            problem = ("is required" if kind == "union_tag_not_found"
                       else f"must be one of {', '.join(tags)}, got {error['ctx']['tag']!r}")
        else:
            problem = typed.problem(error, annotation, metadata,
                                    unknown=f"unknown key (allowed: {', '.join(allowed or ())})")
    at = (error.get("ctx") or {}).get("at")
    if at:
        path = _join(path, at)
    problem = problem.rstrip(".")
    return f"{source}: {path}: {problem}." if path else f"{source}: {problem}."


# -- loading ----------------------------------------------------------------------------------------

def load_spec(path: str | Path, *, check_dataset: bool = True) -> StudySpec:
    """Read and validate ``path``; raises :class:`SpecError` naming the field."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file does not exist.") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', None) or exc}).") from None
    return parse_spec(data, source=str(path), check_dataset=check_dataset)


def parse_spec(data: Any, *, source: str = "<spec>", check_dataset: bool = True) -> StudySpec:
    """Validate already-parsed YAML data (see the module docstring for the grammar): the sections
    through :class:`SpecIn`, then ``train``, the axes and the arms through the model family, which
    builds every trial's resolved options."""
    try:
        doc = SpecIn.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_sentence(source, exc.errors()[0])) from None
    family = families.get(doc.model)
    search, scheduler, metrics = doc.search, doc.scheduler, doc.metrics
    kw: dict[str, Any] = dict(
        name=doc.name, model=doc.model, dataset=Path(doc.dataset.path).expanduser().absolute(), source=source,
        description=doc.description or "", train=family.normalize(dict(doc.train)), method=search.method,
        seeds=tuple(search.seeds), raw=copy.deepcopy(data), protocols=tuple(metrics.protocols),
        detector=metrics.detector, eval_every_kimg=metrics.eval_every_kimg, cpu=doc.resources.cpu,
        gpu=doc.resources.gpu, max_concurrent=doc.max_concurrent, max_retries=doc.failure.max_retries,
        tracking_uri=doc.tracking.uri, scheduler=scheduler.type)
    if search.method == "grid":
        kw["grid"] = {k: tuple(family.normalize({k: x})[k] for x in axis.choices) for k, axis in search.params.items()}
        kw["arms"] = tuple(family.normalize(dict(arm)) for arm in search.arms)
    else:
        kw["space"] = {k: _distribution(axis) for k, axis in search.params.items()}
        kw.update(num_samples=search.num_samples, sampler=search.sampler)
        default = [Objective(*family.default_objective)]
        kw["objectives"] = tuple(Objective(o.metric, o.mode) for o in search.objectives or ()) or tuple(default)
    if scheduler.type == "asha":
        metric, mode = family.default_objective
        if scheduler.metric:  # its own direction unless given (recall: max, even for a family minimising fid)
            metric, mode = scheduler.metric, "min" if scheduler.metric in schema.LOWER_IS_BETTER else "max"
        mode = scheduler.mode or mode
        kw.update(scheduler_metric=metric, scheduler_mode=mode,
                  rungs_kimg=tuple(scheduler.rungs_kimg or ()))
    spec = StudySpec(**kw)
    families.check_spec(spec, check_dataset=check_dataset)   # train, axes, arms: every trial's options
    return spec


def _distribution(axis: FloatDistribution | IntDistribution | CategoricalDistribution) -> Distribution:
    if isinstance(axis, CategoricalDistribution):
        return Distribution("categorical", choices=tuple(axis.choices))
    return Distribution(axis.type, low=axis.low, high=axis.high, step=axis.step, log=axis.log)

"""Study specs: ``sweeps/NAME.yaml`` → a validated :class:`StudySpec`.

Importing this module imports neither torch nor ray. Everything a spec says is checked here,
before any work starts; every problem is one sentence naming the file and the field, e.g.
``sweeps/x.yaml: search.params.ada_target[2]: must be in [0, 1], got 1.2.`` What ``train``, the axes
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
      metric: fid                    # asha: the metric and mode it prunes on
      mode: min
      rungs_kimg: [1, 2, 4]          # asha: the rungs; grace period = first, factor = ratio
    metrics:
      protocols: [fid500_full]       # evaluation protocols (names encode sizes)
      detector: standard             # standard | random-seed:N
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microtune.errors import MicrotuneError
from microtune.sweep import families

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
    """Validate already-parsed YAML data (see the module docstring for the grammar)."""
    v = _Validator(source)
    root = v.mapping(data, "", required=("name", "dataset"),
                     allowed=("name", "description", "model", "dataset", "train", "search", "scheduler",
                              "metrics", "resources", "max_concurrent", "failure", "tracking"))
    name = v.string(root["name"], "name")
    if not _NAME.match(name):
        v.fail("name", f"{name!r} must be letters, digits, '.', '_' or '-' (at most 100 characters)")
    model = v.choice(root.get("model", "stylegan2"), "model", families.names())
    family = families.get(model)
    dataset = _dataset_path(v, root["dataset"])
    train = dict(v.mapping(root.get("train", {}), "train"))
    kw: dict[str, Any] = dict(name=name, model=model, dataset=dataset, source=source, train=family.normalize(train),
                              description=str(root.get("description", "")), raw=copy.deepcopy(root))
    kw.update(_parse_search(v, root.get("search", {}), family))
    kw.update(_parse_scheduler(v, root.get("scheduler", {}), kw))
    kw.update(_parse_metrics(v, root.get("metrics", {})))
    res = v.mapping(root.get("resources", {}), "resources", allowed=("cpu", "gpu"))
    kw["cpu"] = v.number(res.get("cpu", 1), "resources.cpu", low=0, low_open=True)
    kw["gpu"] = v.number(res.get("gpu", 0), "resources.gpu", low=0)
    kw["max_concurrent"] = v.integer(root.get("max_concurrent", 0), "max_concurrent", low=0)
    failure = v.mapping(root.get("failure", {}), "failure", allowed=("max_retries",))
    kw["max_retries"] = v.integer(failure.get("max_retries", 3), "failure.max_retries", low=0)
    tracking = v.mapping(root.get("tracking", {}), "tracking", allowed=("uri",))
    uri = tracking.get("uri")
    kw["tracking_uri"] = None if uri is None else v.string(uri, "tracking.uri")
    spec = StudySpec(**kw)
    _check_trials(v, spec, check_dataset)
    return spec


def _dataset_path(v: _Validator, value: Any) -> Path:
    if isinstance(value, dict):
        value = v.mapping(value, "dataset", required=("path",), allowed=("path",))["path"]
    return Path(v.string(value, "dataset")).expanduser().absolute()


def _parse_search(v: _Validator, data: Any, family: families.Family) -> dict[str, Any]:
    search = v.mapping(data, "search", allowed=("method", "seeds", "params", "arms", "num_samples", "sampler",
                                                 "objectives"))
    method = v.choice(search.get("method", "grid"), "search.method", SEARCH_METHODS)
    seeds = v.sequence(search.get("seeds", [0]), "search.seeds", nonempty=True)
    seeds = tuple(v.integer(s, f"search.seeds[{i}]", low=0) for i, s in enumerate(seeds))
    if len(set(seeds)) != len(seeds):
        v.fail("search.seeds", "lists a seed twice")
    params = v.mapping(search.get("params", {}), "search.params")
    out: dict[str, Any] = {"method": method, "seeds": seeds}
    if method == "grid":
        for key in ("num_samples", "sampler", "objectives"):
            if key in search:
                v.fail(f"search.{key}", "applies only to method: optuna")
        out["grid"] = {k: tuple(v.sequence(vals, f"search.params.{k}", nonempty=True)) for k, vals in params.items()}
        arms = v.sequence(search.get("arms", []), "search.arms")
        out["arms"] = tuple(dict(v.mapping(arm, f"search.arms[{i}]")) for i, arm in enumerate(arms))
        out["grid"] = {k: tuple(family.normalize({k: x})[k] for x in vals) for k, vals in out["grid"].items()}
        out["arms"] = tuple(family.normalize(arm) for arm in out["arms"])
        if any(arm == {} for arm in out["arms"]):
            v.fail("search.arms", "lists an empty configuration")
        return out
    if "arms" in search:
        v.fail("search.arms", "applies only to method: grid")
    if not params:
        v.fail("search.params", "needs at least one parameter to search for method: optuna")
    out["space"] = {k: _distribution(v, d, f"search.params.{k}") for k, d in params.items()}
    out["num_samples"] = v.integer(search.get("num_samples", 8), "search.num_samples", low=1)
    out["sampler"] = v.choice(search.get("sampler", "tpe"), "search.sampler", SAMPLERS)
    default = dict(zip(("metric", "mode"), family.default_objective))
    objectives = v.sequence(search.get("objectives", [default]), "search.objectives", nonempty=True)
    parsed = []
    for i, obj in enumerate(objectives):
        where = f"search.objectives[{i}]"
        obj = v.mapping(obj, where, required=("metric", "mode"), allowed=("metric", "mode"))
        parsed.append(Objective(v.choice(obj["metric"], f"{where}.metric", families.objective_metrics()),
                                v.choice(obj["mode"], f"{where}.mode", ("min", "max"))))
    if len({o.metric for o in parsed}) != len(parsed):
        v.fail("search.objectives", "names a metric twice")
    out["objectives"] = tuple(parsed)
    return out


def _distribution(v: _Validator, data: Any, where: str) -> Distribution:
    if isinstance(data, list):
        return Distribution("categorical", choices=tuple(v.sequence(data, where, nonempty=True)))
    d = v.mapping(data, where, required=("type",), allowed=("type", "low", "high", "step", "log", "choices"))
    kind = v.choice(d["type"], f"{where}.type", ("float", "int", "categorical"))
    if kind == "categorical":
        return Distribution(kind, choices=tuple(v.sequence(d.get("choices"), f"{where}.choices", nonempty=True)))
    if "low" not in d or "high" not in d:
        v.fail(where, f"a {kind} distribution needs low and high")
    number = v.integer if kind == "int" else v.number
    low, high = number(d["low"], f"{where}.low"), number(d["high"], f"{where}.high")
    if high <= low:
        v.fail(f"{where}.high", f"{high} must be greater than low ({low})")
    step = None if d.get("step") is None else number(d["step"], f"{where}.step", low=0, low_open=True)
    log = v.boolean(d.get("log", False), f"{where}.log")
    if log and (low <= 0 or step is not None):
        v.fail(f"{where}.log", "needs low > 0 and no step")
    return Distribution(kind, low=low, high=high, step=step, log=log)


def _parse_scheduler(v: _Validator, data: Any, kw: dict[str, Any]) -> dict[str, Any]:
    sched = v.mapping(data, "scheduler", allowed=("type", "metric", "mode", "rungs_kimg"))
    kind = v.choice(sched.get("type", "fifo"), "scheduler.type", SCHEDULERS)
    out: dict[str, Any] = {"scheduler": kind}
    if kind == "fifo":
        for key in ("rungs_kimg", "metric", "mode"):
            if key in sched:
                v.fail(f"scheduler.{key}", "applies only to type: asha")
        return out
    metric, mode = families.get(kw["model"]).default_objective
    out["scheduler_metric"] = v.choice(sched.get("metric", metric), "scheduler.metric", families.objective_metrics())
    out["scheduler_mode"] = v.choice(sched.get("mode", mode), "scheduler.mode", ("min", "max"))
    rungs = v.sequence(sched.get("rungs_kimg"), "scheduler.rungs_kimg", nonempty=True)
    rungs = tuple(v.number(r, f"scheduler.rungs_kimg[{i}]", low=0, low_open=True) for i, r in enumerate(rungs))
    if len(rungs) < 2 or any(b <= a for a, b in zip(rungs, rungs[1:])):
        v.fail("scheduler.rungs_kimg", "needs at least two increasing rungs")
    ratios = [b / a for a, b in zip(rungs, rungs[1:])]
    if max(ratios) - min(ratios) > 1e-6 * max(ratios):
        v.fail("scheduler.rungs_kimg", f"must grow geometrically (ASHA's reduction factor), got ratios {ratios}")
    if len(kw.get("objectives", ())) > 1:
        v.fail("scheduler.type", "asha prunes on one metric and cannot drive a multi-objective search")
    out["rungs_kimg"] = rungs
    return out


def _parse_metrics(v: _Validator, data: Any) -> dict[str, Any]:
    metrics = v.mapping(data, "metrics", allowed=("protocols", "detector", "eval_every_kimg"))
    protocols = tuple(v.string(p, f"metrics.protocols[{i}]")
                      for i, p in enumerate(v.sequence(metrics.get("protocols", []), "metrics.protocols")))
    from microtune.metrics.cache import parse_protocol

    for i, p in enumerate(protocols):
        try:
            parse_protocol(p)
        except MicrotuneError as exc:
            v.fail(f"metrics.protocols[{i}]", str(exc))
    detector = v.string(metrics.get("detector", "standard"), "metrics.detector")
    if detector != "standard" and not re.fullmatch(r"random-seed:\d+", detector):
        v.fail("metrics.detector", f"must be standard or random-seed:N, got {detector!r}")
    every = metrics.get("eval_every_kimg")
    every = None if every is None else v.number(every, "metrics.eval_every_kimg", low=0, low_open=True)
    return {"protocols": protocols, "detector": detector, "eval_every_kimg": every}


def _check_trials(v: _Validator, spec: StudySpec, check_dataset: bool) -> None:
    """``train``, the axes and the arms, checked by the model family (every trial's options built)."""
    families.check_spec(spec, check_dataset=check_dataset)


class _Validator:
    """Type checks that raise one :class:`SpecError` sentence naming the source and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> None:
        prefix = f"{self.source}: {where}: " if where else f"{self.source}: "
        raise SpecError(prefix + problem.rstrip(".") + ".")

    def mapping(self, value: Any, where: str, *, required: tuple[str, ...] = (),
                allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if not isinstance(key, str):
                self.fail(where, f"key {key!r} must be a string")
            if allowed is not None and key not in allowed:
                self.fail(f"{where}.{key}" if where else key, f"unknown key (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                self.fail(f"{where}.{key}" if where else key, "is required")
        return value

    def sequence(self, value: Any, where: str, *, nonempty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"must be a list, got {type(value).__name__}")
        if nonempty and not value:
            self.fail(where, "must not be empty")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"must be a non-empty string, got {value!r}")
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.fail(where, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"must be true or false, got {value!r}")
        return value

    def number(self, value: Any, where: str, *, low: float | None = None, low_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"must be a number, got {value!r}")
        if low is not None and (value < low or (low_open and value == low)):
            self.fail(where, f"must be {'>' if low_open else '>='} {low}, got {value}")
        return value

    def integer(self, value: Any, where: str, *, low: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be a whole number, got {value!r}")
        if low is not None and value < low:
            self.fail(where, f"must be >= {low}, got {value}")
        return value

"""Study specs: ``sweeps/NAME.yaml`` → a validated :class:`StudySpec`.

Importing this module imports neither torch nor ray. Everything a spec says is checked here,
before any work starts; every problem is one sentence naming the file and the field, e.g.
``sweeps/x.yaml: search.params.ada_target[2]: must be in [0, 1], got 1.2.`` Training options
(``train``, axes, arms) are checked by the trainer's own typed model, :class:`microtune.gan.config.TrainOptions`.

Grammar (every key optional unless marked)::

    name: quickstart                 # required; the MLflow experiment; letters, digits, . _ -
    description: free text
    model: stylegan2                 # stylegan2 | dcgan | hptl
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

``model: hptl`` (segmentation, :mod:`microtune.seg`): ``train`` and the axes are segmentation
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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microtune.errors import MicrotuneError

MODELS = ("stylegan2", "dcgan", "hptl")
SEARCH_METHODS = ("grid", "optuna")
SAMPLERS = ("tpe", "nsga2")  # microtune/sweep/samplers.py makes them (spec stays optuna-free)
SCHEDULERS = ("fifo", "asha")
OBJECTIVE_METRICS = ("fid", "kid", "precision", "recall", "seg_acc", "seg_miou")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


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
    model = v.choice(root.get("model", "stylegan2"), "model", MODELS)
    dataset = _dataset_path(v, root["dataset"])
    train = dict(v.mapping(root.get("train", {}), "train"))
    kw: dict[str, Any] = dict(name=name, model=model, dataset=dataset, source=source, train=train,
                              description=str(root.get("description", "")), raw=copy.deepcopy(root))
    if model == "hptl":
        kw["train"] = _absolute_seg_paths(train)
    kw.update(_parse_search(v, root.get("search", {}), model))
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


def _parse_search(v: _Validator, data: Any, model: str) -> dict[str, Any]:
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
        if model == "hptl":
            out["grid"] = {k: tuple(_absolute_seg_paths({k: x})[k] for x in vals) for k, vals in out["grid"].items()}
            out["arms"] = tuple(_absolute_seg_paths(arm) for arm in out["arms"])
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
    default = {"metric": "seg_acc", "mode": "max"} if model == "hptl" else {"metric": "fid", "mode": "min"}
    objectives = v.sequence(search.get("objectives", [default]), "search.objectives", nonempty=True)
    parsed = []
    for i, obj in enumerate(objectives):
        where = f"search.objectives[{i}]"
        obj = v.mapping(obj, where, required=("metric", "mode"), allowed=("metric", "mode"))
        parsed.append(Objective(v.choice(obj["metric"], f"{where}.metric", OBJECTIVE_METRICS),
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
    out["scheduler_metric"] = v.choice(sched.get("metric", "fid"), "scheduler.metric", OBJECTIVE_METRICS)
    out["scheduler_mode"] = v.choice(sched.get("mode", "min"), "scheduler.mode", ("min", "max"))
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
    """Axis values that must be checked against the model's options and the dataset."""
    if spec.model == "hptl":
        _check_seg_trials(v, spec, check_dataset)
        return
    count, resolution = _dataset_facts(v, spec.dataset, check_dataset)
    from microtune.gan import config as gan_config

    known = {f for f in gan_config.TrainOptions.__dataclass_fields__} - {"model", "resolution", "seed"}
    _check_keys(v, spec, known, "a training option")
    axes = dict(spec.grid) if spec.method == "grid" else {k: d.choices for k, d in spec.space.items() if d.choices}
    for key, values in axes.items():
        for i, value in enumerate(values):
            _check_axis_value(v, f"search.params.{key}[{i}]", key, value, count, gan_config)
    for i, arm in enumerate(spec.arms):
        for key, value in arm.items():
            _check_axis_value(v, f"search.arms[{i}].{key}", key, value, count, gan_config)
    if spec.method == "optuna":
        for key, d in spec.space.items():
            if d.kind != "categorical":
                for bound in ("low", "high"):
                    _check_axis_value(v, f"search.params.{key}.{bound}", key, getattr(d, bound), count, gan_config)
    for key, value in spec.train.items():
        _check_axis_value(v, f"train.{key}", key, value, count, gan_config)
    if resolution is not None:
        _check_resolved_options(v, spec, resolution, gan_config)  # also the rules involving two options


def _check_keys(v: _Validator, spec: StudySpec, known: set[str], what: str) -> None:
    """Every key of train, the axes and the arms must be one of ``known``."""
    for key in spec.train:
        if key not in known:
            v.fail(f"train.{key}", f"is not {what}")
    for key in (spec.grid if spec.method == "grid" else spec.space):
        if key not in known:
            v.fail(f"search.params.{key}", f"is not {what}")
    for i, arm in enumerate(spec.arms):
        for key in arm:
            if key not in known:
                v.fail(f"search.arms[{i}].{key}", f"is not {what}")


# Segmentation options that name files, made absolute at parse time (trials run in other directories)
_SEG_PATH_OPTIONS = ("source_weights", "cache_dir", "deeplab_weights")


def _absolute_seg_paths(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in _SEG_PATH_OPTIONS:
        if isinstance(out.get(key), str) and out[key] and "://" not in out[key] and out[key] != "imagenet":
            out[key] = os.path.abspath(os.path.expanduser(out[key]))
    split = out.get("split")
    if isinstance(split, str) and split.startswith("lists:"):
        files = [os.path.abspath(os.path.expanduser(f)) if f else f for f in split[len("lists:"):].split(",")]
        out["split"] = "lists:" + ",".join(files)
    return out


def _check_seg_trials(v: _Validator, spec: StudySpec, check_dataset: bool) -> None:
    """HPTL (segmentation) studies: options are :class:`microtune.seg.options.SegOptions` fields."""
    import dataclasses

    from microtune.seg.options import SegOptions, options_from_dict, validate

    if spec.protocols or spec.eval_every_kimg is not None or spec.detector != "standard":
        v.fail("metrics", "does not apply to model: hptl (segmentation trials measure pixel accuracy, IoU, "
                          "losses and inference time every epoch)")
    if spec.scheduler == "asha":
        v.fail("scheduler.type", "asha does not apply to model: hptl (a trial trains several networks in "
                                 "stages, so its epochs are not one budget); use fifo")
    types = {f.name: f.type for f in dataclasses.fields(SegOptions)}  # "str", "int", "float" or "bool"
    known = set(types) - {"data", "seed"}
    _check_keys(v, spec, known, "a segmentation option")
    if check_dataset:
        _dataset_facts(v, spec.dataset, True)
        manifest = json.loads((spec.dataset / "manifest.json").read_text())
        if not manifest.get("class_names"):
            v.fail("dataset", f"{spec.dataset} has no masks; model: hptl needs a dataset prepared with --masks "
                              "and --class-names")

    def check_types(where: str, overrides: dict[str, Any], per_key: bool) -> None:
        for key, value in overrides.items():
            at = f"{where}.{key}" if per_key else where
            kind = types[key]
            if kind == "bool":
                v.boolean(value, at)
            elif kind == "int":
                v.integer(value, at)
            elif kind == "float":
                v.number(value, at)
            elif not isinstance(value, str):
                v.fail(at, f"must be a string, got {value!r}" + (" (write depths as '2,8,9')" if key == "depths" else ""))

    def check(where: str, overrides: dict[str, Any], per_key: bool = False) -> None:
        """Refuse ``train`` + ``overrides``; ``per_key``: name ``where.KEY`` in type errors."""
        check_types(where, overrides, per_key)
        values = {**spec.train, **overrides}
        try:
            validate(options_from_dict({**values, "data": str(spec.dataset)}))
        except MicrotuneError as exc:
            v.fail(where, f"{overrides or 'the fixed options'} are invalid: {exc}")
        split = values.get("split", "")
        if check_dataset and isinstance(split, str) and split.startswith("lists:"):  # files on this machine
            for f in split[len("lists:"):].split(","):
                if not Path(f).is_file():
                    v.fail(where, f"split list {f} does not exist")

    check("train", spec.train, per_key=True)
    if spec.method == "grid":
        for key, values in spec.grid.items():
            for i, value in enumerate(values):
                check(f"search.params.{key}[{i}]", {key: value})
        for i, arm in enumerate(spec.arms):
            check(f"search.arms[{i}]", arm, per_key=True)
        for config in spec.grid_configurations():
            check("search.params", config)
        return
    for key, d in spec.space.items():
        values = d.choices if d.kind == "categorical" else (d.low, d.high)
        for i, value in enumerate(values):
            check(f"search.params.{key}" + (f"[{i}]" if d.kind == "categorical" else f".{('low', 'high')[i]}"),
                  {key: int(value) if d.kind == "int" else value})


def _check_axis_value(v: _Validator, where: str, key: str, value: Any, count: int | None, gan_config: Any) -> None:
    """One value on its own, through the same typed model as the trainer (type and range rule)."""
    try:
        gan_config.check_value(key, value)
    except gan_config.OptionsError as exc:
        v.fail(where, exc.problem)
    if key == "subset" and value is not None and count is not None and value > count:
        v.fail(where, f"a subset of {value} images is larger than the dataset's {count} images")


def _check_resolved_options(v: _Validator, spec: StudySpec, resolution: int, gan_config: Any) -> None:
    """Build every configuration's options (cheap, no torch) through the function the trials use,
    so that a bad combination is refused now; messages name the YAML path of the value."""
    from microtune.sweep.space import resolve_options

    seed = {"seed": spec.seeds[0]}
    if spec.method == "grid":
        configs = spec.grid_configurations()
        first_arm = len(configs) - len(spec.arms)
        cases = [(c, i >= first_arm, f"search.arms[{i - first_arm}]" if i >= first_arm else "search.params")
                 for i, c in enumerate(configs)]
    else:
        cases = [({}, False, "search.params")]
    for config, arm, where in cases:
        def label(key: str, config=config, where=where) -> str:
            return f"{where}.{key}" if key in config else f"train.{key}"

        try:
            resolve_options(spec, {**config, **seed}, resolution, label=label, arm=arm)
        except gan_config.OptionsError as exc:
            combination = f" (in the configuration {config})" if exc.field in config and not arm else ""
            v.fail(label(exc.field), exc.problem + combination)
        except MicrotuneError as exc:
            v.fail("dataset", str(exc))


def _dataset_facts(v: _Validator, path: Path, check: bool) -> tuple[int | None, int | None]:
    if not check:
        return None, None
    manifest = path / "manifest.json"
    if not manifest.is_file():
        v.fail("dataset", f"{path} is not a prepared dataset (no manifest.json); run 'microtune data prepare' first")
    try:
        data = json.loads(manifest.read_text())
        return int(data["count"]), int(data["resolution"])
    except (OSError, ValueError, KeyError, TypeError):
        v.fail("dataset", f"{manifest} is unreadable")
        raise AssertionError  # unreachable


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

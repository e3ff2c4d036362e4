"""StudySpec → what the runner hands Ray Tune: trial configurations or Optuna distributions.

Plain data and Optuna only; :mod:`microtune.sweep.runner` builds the Ray objects from it.

Seeds: ``tune.grid_search`` cannot be combined with OptunaSearch (DESIGN.md), so

- a grid study expands every configuration × seed into one explicit list of trial configurations
  (one ``grid_search`` over that list: order and count are exactly :meth:`StudySpec.grid_trials`);
- a single-objective Optuna study repeats each sampled configuration once per seed with Ray's
  ``Repeater``, which sets ``__trial_index__``; :func:`trial_overrides` maps it to the seed;
- a multi-objective Optuna study runs with one seed (validated in :func:`check_supported`).
"""

from __future__ import annotations

from typing import Any, Callable

from microtune.sweep.spec import Distribution, SpecError, StudySpec
from microtune.tracking import schema

TRIAL_KEY = "trial"              # grid studies: the config key holding the trial's overrides
REPEAT_INDEX = "__trial_index__"  # set by ray.tune.search.Repeater


def check_supported(spec: StudySpec) -> None:
    """Refuse combinations this version cannot run, naming the field."""
    if spec.method == "optuna" and len(spec.objectives) > 1 and len(spec.seeds) > 1:
        raise SpecError(
            f"{spec.source}: search.seeds: a multi-objective Optuna search runs with one seed in this "
            f"version (Ray's Repeater averages a single metric); list one seed."
        )
    produced = produced_metrics(spec)
    needed = [("search.objectives", o.metric) for o in spec.objectives if spec.method == "optuna"]
    if spec.scheduler == "asha":
        needed.append(("scheduler.metric", spec.scheduler_metric))
    for where, metric in needed:
        if metric in produced:
            continue
        if spec.model == "hptl":
            raise SpecError(f"{spec.source}: {where}: {metric} is not measured by segmentation trials "
                            f"(use {' or '.join(sorted(produced))}).")
        raise SpecError(
            f"{spec.source}: {where}: {metric} is not measured by metrics.protocols "
            f"({', '.join(spec.protocols) or 'none'}); add a protocol that produces it."
        )
    if spec.scheduler == "asha":
        every = eval_every_kimg(spec)
        for rung in spec.rungs_kimg:
            ratio = rung / every
            if abs(ratio - round(ratio)) > 1e-9:
                raise SpecError(
                    f"{spec.source}: scheduler.rungs_kimg: rung {rung} kimg is not a multiple of the "
                    f"evaluation interval ({every} kimg), so ASHA would never see a metric there."
                )


SEG_PRODUCED = frozenset({schema.SEG_ACC, schema.SEG_MIOU})  # every segmentation trial reports these


def produced_metrics(spec: StudySpec) -> set[str]:
    """Metric keys a trial of the spec reports that objectives and schedulers may use."""
    if spec.model == "hptl":
        return set(SEG_PRODUCED)
    from microtune.metrics.cache import parse_protocol

    families = {parse_protocol(p).metric for p in spec.protocols}
    return {m for f in families for m in ({"precision", "recall"} if f == "pr" else {f})}


def eval_every_kimg(spec: StudySpec) -> float:
    """The evaluation (and checkpoint) interval of every trial, in kimg."""
    if spec.eval_every_kimg is not None:
        return float(spec.eval_every_kimg)
    return float(spec.train.get("eval_every_kimg", 1.0))


def resolve_options(spec: StudySpec, overrides: dict[str, Any], resolution: int,
                    label: Callable[[str], str] | None = None, arm: bool = False):
    """The one merge of a GAN study's fixed ``train`` options and one trial's ``overrides`` (axes,
    arm values, ``seed``) into :class:`~microtune.gan.config.TrainOptions` at ``resolution``.

    Spec validation builds every grid trial through this function and so does the trial itself.
    Evaluations and snapshots coincide (every report to Tune carries a checkpoint of that moment).
    ``label`` names an option in messages (default: ``train.KEY``, or ``search.params.KEY`` when the
    trial's overrides set it). ``arm``: the overrides are one of the spec's ``arms`` (written together),
    not a cross product of separate grid axes (see ``make_options`` on ADA targets without augmentation).
    """
    from microtune.gan.config import make_options

    every = eval_every_kimg(spec)
    study = {k: v for k, v in spec.train.items() if k != "cfg"}
    trial = {k: v for k, v in overrides.items() if k != "cfg"}
    trial.update(eval_every_kimg=every, snapshot_every_kimg=every)
    if "tick_kimg" not in trial and "tick_kimg" not in study:
        trial["tick_kimg"] = every
    if label is None:
        def label(key: str) -> str:
            return f"search.params.{key}" if key in overrides else f"train.{key}"
    cfg = overrides.get("cfg", spec.train.get("cfg", "auto"))
    return make_options(cfg=cfg, model=spec.model, resolution=resolution, study=study,
                        crossed=frozenset() if arm else frozenset(spec.grid), label=label, **trial)


def grid_configs(spec: StudySpec) -> list[dict[str, Any]]:
    """One config per grid trial: ``{"trial": {param: value, ..., "seed": s}}``."""
    return [{TRIAL_KEY: overrides} for overrides in spec.grid_trials()]


def optuna_distributions(spec: StudySpec) -> dict[str, Any]:
    """The spec's search space as Optuna distribution objects (for Ray's OptunaSearch)."""
    from optuna import distributions as od

    out: dict[str, Any] = {}
    for name, d in spec.space.items():
        out[name] = _optuna_distribution(d, od)
    return out


def _optuna_distribution(d: Distribution, od: Any) -> Any:
    if d.kind == "categorical":
        return od.CategoricalDistribution(list(d.choices))
    if d.kind == "int":
        return od.IntDistribution(int(d.low), int(d.high), log=d.log, step=int(d.step or 1))
    return od.FloatDistribution(float(d.low), float(d.high), log=d.log, step=d.step)


def trial_overrides(spec: StudySpec, config: dict[str, Any]) -> dict[str, Any]:
    """The training-option overrides (incl. ``seed``) of one trial from its Ray config."""
    if TRIAL_KEY in config:
        return dict(config[TRIAL_KEY])
    # Optuna's stepped floats carry binary noise (0.8999999999999999): keep 10 significant digits
    overrides = {k: float(f"{v:.10g}") if isinstance(v, float) else v for k, v in config.items() if k in spec.space}
    index = int(config.get(REPEAT_INDEX, 0))
    overrides["seed"] = spec.seeds[index % len(spec.seeds)]
    return overrides


def describe(spec: StudySpec) -> list[str]:
    """Human-readable lines for ``--dry-run``: the resolved trials or the search space."""
    if spec.model == "hptl":
        measured = "pixel accuracy, IoU per class and mean, train/test loss, ms per image: every epoch"
    else:
        measured = (f"{', '.join(spec.protocols) or '(losses only)'} with detector {spec.detector}, "
                    f"every {eval_every_kimg(spec):g} kimg")
    head = [
        f"study      {spec.name} ({spec.model}), spec sha256 {spec.spec_hash[:12]}",
        f"dataset    {spec.dataset}",
        f"train      {', '.join(f'{k}={v}' for k, v in sorted(spec.train.items())) or '(preset defaults)'}",
        f"metrics    {measured}",
        f"resources  {spec.cpu:g} cpu, {spec.gpu:g} gpu per trial; max concurrent "
        f"{spec.max_concurrent or 'as resources allow'}; {spec.max_retries} retries",
        f"scheduler  {spec.scheduler}" + (f" on {spec.scheduler_metric} ({spec.scheduler_mode}), rungs "
                                          f"{', '.join(f'{r:g}' for r in spec.rungs_kimg)} kimg"
                                          if spec.scheduler == "asha" else ""),
    ]
    if spec.method == "grid":
        trials = spec.grid_trials()
        arms = f", {len(spec.arms)} of them fixed arms" if spec.arms else ""
        head.append(f"search     grid: {len(trials)} trials ({len(trials) // len(spec.seeds)} "
                    f"configurations{arms} × {len(spec.seeds)} seeds)")
        names = list(dict.fromkeys([*spec.grid, *(k for arm in spec.arms for k in arm), "seed"]))
        cells = [[str(t.get(n, "")) for n in names] for t in trials]
        widths = [max(len(n), *(len(row[i]) for row in cells)) for i, n in enumerate(names)]
        head.append("  #    " + "  ".join(n.ljust(w) for n, w in zip(names, widths)))
        head.extend((f"  {k:<4d} " + "  ".join(c.ljust(w) for c, w in zip(row, widths))).rstrip()
                    for k, row in enumerate(cells))
        return head
    objectives = ", ".join(f"{o.mode} {o.metric}" for o in spec.objectives)
    head.append(f"search     optuna {spec.sampler}: {spec.num_samples} samples × {len(spec.seeds)} seeds "
                f"= {spec.trial_count()} trials; objectives: {objectives}")
    for name, d in spec.space.items():
        if d.kind == "categorical":
            head.append(f"  {name}: one of {list(d.choices)}")
        else:
            extra = (f", step {d.step:g}" if d.step else "") + (", log scale" if d.log else "")
            head.append(f"  {name}: {d.kind} in [{d.low:g}, {d.high:g}]{extra}")
    return head

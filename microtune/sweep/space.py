"""StudySpec → what the runner hands Ray Tune: trial configurations or Optuna distributions.

Plain data and Optuna only; :mod:`microtune.sweep.runner` builds the Ray objects from it. What
depends on the model (metrics, messages, the dry-run's metrics line) is asked of its family
(:mod:`microtune.sweep.families`).

Seeds: ``tune.grid_search`` cannot be combined with OptunaSearch (DESIGN.md), so

- a grid study expands every configuration × seed into one explicit list of trials, each trial's
  Ray config being exactly its overrides (the runner's param space is one ``grid_search`` over
  that list: order and count are exactly :meth:`StudySpec.grid_trials`);
- a single-objective Optuna study repeats each sampled configuration once per seed with Ray's
  ``Repeater``, which sets ``__trial_index__``; :func:`trial_overrides` maps it to the seed;
- a multi-objective Optuna study runs with one seed (validated in :func:`check_supported`).
"""

from __future__ import annotations

from typing import Any

from microtune.sweep import families
from microtune.sweep.spec import Distribution, SpecError, StudySpec

REPEAT_INDEX = "__trial_index__"
LEGACY_TRIAL_KEY = "trial"        # grid configs of studies launched by earlier versions: {"trial": overrides}  # set by ray.tune.search.Repeater


def check_supported(spec: StudySpec) -> None:
    """Refuse combinations this version cannot run, naming the field."""
    family = families.get(spec.model)
    if spec.method == "optuna" and len(spec.objectives) > 1 and len(spec.seeds) > 1:
        raise SpecError(
            f"{spec.source}: search.seeds: a multi-objective Optuna search runs with one seed in this "
            f"version (Ray's Repeater averages a single metric); list one seed."
        )
    produced = family.produced_metrics(spec)
    needed = [("search.objectives", o.metric) for o in spec.objectives if spec.method == "optuna"]
    if spec.scheduler == "asha":
        needed.append(("scheduler.metric", spec.scheduler_metric))
    for where, metric in needed:
        if metric not in produced:
            families.fail(spec, where, family.unmeasured(spec, metric))
    family.check_supported(spec)


def produced_metrics(spec: StudySpec) -> set[str]:
    """Metric keys a trial of the spec reports that objectives and schedulers may use."""
    return families.get(spec.model).produced_metrics(spec)


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
    """The training-option overrides (incl. ``seed``) of one trial from its Ray config: a grid
    trial's config is its overrides; an Optuna trial's holds the sampled values and Ray's repeat index."""
    if spec.method == "grid":
        if set(config) == {LEGACY_TRIAL_KEY} and isinstance(config[LEGACY_TRIAL_KEY], dict):
            return dict(config[LEGACY_TRIAL_KEY])  # studies launched by earlier versions stay resumable
        return dict(config)
    # Optuna's stepped floats carry binary noise (0.8999999999999999): keep 10 significant digits
    overrides = {k: float(f"{v:.10g}") if isinstance(v, float) else v for k, v in config.items() if k in spec.space}
    index = int(config.get(REPEAT_INDEX, 0))
    overrides["seed"] = spec.seeds[index % len(spec.seeds)]
    return overrides


def describe(spec: StudySpec) -> list[str]:
    """Human-readable lines for ``--dry-run``: the resolved trials or the search space."""
    measured = families.get(spec.model).describe_metrics(spec)
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

"""The GAN families (``stylegan2``, ``dcgan``): options are :class:`microtune.gan.config.TrainOptions`.

A GAN trial trains with periodic evaluation (``metrics.protocols``, every ``eval_every_kimg``),
reports FID/KID/precision/recall and best-so-far values to Tune with a checkpoint at each
evaluation, and continues from its last checkpoint when retried or resumed; ASHA prunes on kimg
rungs. The trial itself is :func:`microtune.sweep.gan_trial.run_trial` (imported when a trial runs).
Importing this module imports neither torch nor pydantic.
"""

from __future__ import annotations

import json

from typing import TYPE_CHECKING, Any, Callable

from microtune.errors import MicrotuneError
from microtune.sweep import families
from microtune.sweep.families import Family, fail
from microtune.tracking import schema

if TYPE_CHECKING:
    from microtune.sweep.contract import Session, TrialContext
    from microtune.sweep.spec import StudySpec
    from microtune.tracking.dashboard import StudyView


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


class GanFamily(Family):
    """A GAN trained by :func:`microtune.gan.loop.train` (``model`` = ``name``)."""

    default_objective = (schema.FID, "min")
    # best_fid / best_recall: the best value so far, reported with every evaluation (ASHA on a noisy
    # FID curve ranks trials by where they got, not by their last evaluation)
    objective_metrics = (schema.FID, schema.KID, schema.PRECISION, schema.RECALL, schema.BEST_FID, schema.BEST_RECALL)
    option_noun = "a training option"
    status_columns = (("kimg", schema.KIMG), ("fid", schema.FID), ("best_fid", schema.BEST_FID),
                      ("recall", schema.RECALL), ("best_recall", schema.BEST_RECALL))

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):  # rebuilt from its class and name on a worker (a subclass stays itself)
        return (type(self), (self.name,))

    # -- the spec ---------------------------------------------------------------------------------
    def option_keys(self) -> set[str]:
        from microtune.gan.config import TrainOptions

        return set(TrainOptions.__dataclass_fields__) - {"model", "resolution", "seed"}

    def validate(self, spec: StudySpec, *, check_dataset: bool) -> None:
        from microtune.gan import config as gan_config

        # the study sets these for every trial (evaluations and snapshots coincide, so every report
        # to Tune carries a checkpoint of that moment): a value here would be silently replaced
        places = [("train", spec.train), *((f"search.arms[{i}]", arm) for i, arm in enumerate(spec.arms))]
        places.append(("search.params", spec.grid if spec.method == "grid" else spec.space))
        for where, values in places:
            if "snapshot_every_kimg" in values:
                fail(spec, f"{where}.snapshot_every_kimg", "is set by the study: snapshots coincide with "
                                                           "evaluations (metrics.eval_every_kimg)")
            if "eval_every_kimg" in values and where != "train":
                fail(spec, f"{where}.eval_every_kimg", "cannot vary between trials; set metrics.eval_every_kimg")
        facts = families.dataset_facts(spec, check_dataset)
        count = int(facts["count"]) if facts else None
        axes = dict(spec.grid) if spec.method == "grid" else {k: d.choices for k, d in spec.space.items() if d.choices}
        for key, values in axes.items():
            for i, value in enumerate(values):
                _check_value(spec, f"search.params.{key}[{i}]", key, value, count, gan_config)
        for i, arm in enumerate(spec.arms):
            for key, value in arm.items():
                _check_value(spec, f"search.arms[{i}].{key}", key, value, count, gan_config)
        if spec.method == "optuna":
            for key, d in spec.space.items():
                if d.kind != "categorical":
                    for bound in ("low", "high"):
                        _check_value(spec, f"search.params.{key}.{bound}", key, getattr(d, bound), count, gan_config)
        for key, value in spec.train.items():
            _check_value(spec, f"train.{key}", key, value, count, gan_config)
        if facts is not None:
            _check_resolved(spec, int(facts["resolution"]), gan_config)  # also the rules involving two options

    def check_supported(self, spec: StudySpec) -> None:
        if spec.scheduler != "asha":
            return
        every = eval_every_kimg(spec)
        for rung in spec.rungs_kimg:
            ratio = rung / every
            if abs(ratio - round(ratio)) > 1e-9:
                fail(spec, "scheduler.rungs_kimg", f"rung {rung} kimg is not a multiple of the evaluation "
                                                   f"interval ({every} kimg), so ASHA would never see a metric there")

    def resolve_options(self, spec: StudySpec, overrides: dict[str, Any], **facts: Any):
        """``facts``: ``resolution`` (required), ``label``, ``arm`` (see :func:`resolve_options`)."""
        return resolve_options(spec, overrides, **facts)

    # -- metrics and views ------------------------------------------------------------------------
    def produced_metrics(self, spec: StudySpec) -> set[str]:
        from microtune.metrics.cache import parse_protocol

        kinds = {parse_protocol(p).metric for p in spec.protocols}
        measured = {m for k in kinds for m in ({schema.PRECISION, schema.RECALL} if k == "pr" else {k})}
        best = {schema.BEST_FID: schema.FID, schema.BEST_RECALL: schema.RECALL}
        return measured | {b for b, m in best.items() if m in measured}

    def unmeasured(self, spec: StudySpec, metric: str) -> str:
        return (f"{metric} is not measured by metrics.protocols ({', '.join(spec.protocols) or 'none'}); "
                f"add a protocol that produces it")

    def describe_metrics(self, spec: StudySpec) -> str:
        return (f"{', '.join(spec.protocols) or '(losses only)'} with detector {spec.detector}, "
                f"every {eval_every_kimg(spec):g} kimg")

    def study_view(self, metrics: set[str]) -> StudyView:
        from microtune.tracking.dashboard import StudyView

        curves = [m for m in (schema.FID, schema.RECALL, schema.PRECISION, schema.KID) if m in metrics]
        bars = [m for m, src in ((schema.BEST_FID, schema.FID), (schema.BEST_RECALL, schema.RECALL)) if src in metrics]
        return StudyView(curves=tuple(curves or (schema.LOSS_G, schema.LOSS_D)), bars=tuple(bars),
                         x_metric=schema.KIMG, answer=((schema.BEST_FID, "min"), (schema.BEST_RECALL, "max")),
                         progress=schema.KIMG)

    def progress(self, result: dict[str, Any]) -> str:
        return f"kimg {result[schema.KIMG]:g}" if schema.KIMG in result else super().progress(result)

    def stopped_early(self, spec: StudySpec, overrides: dict[str, Any], last: dict[str, Any] | None) -> bool:
        planned = overrides.get("kimg", spec.train.get("kimg"))
        reached = (last or {}).get(schema.KIMG)
        return planned is not None and reached is not None and reached < float(planned)

    # -- trials -----------------------------------------------------------------------------------
    def run_trial(self, overrides: dict[str, Any], ctx: TrialContext, session: Session) -> dict[str, float]:
        from microtune.sweep.gan_trial import run_trial

        return run_trial(overrides, ctx, session, family=self)


def _check_value(spec: StudySpec, where: str, key: str, value: Any, count: int | None, gan_config: Any) -> None:
    """One value on its own, through the same typed model as the trainer (type and range rule)."""
    try:
        gan_config.check_value(key, value)
    except gan_config.OptionsError as exc:
        fail(spec, where, exc.problem)
    if key == "subset" and value is not None and count is not None:
        from microtune.data.dataset import subset_problem

        if problem := subset_problem(value, count):
            fail(spec, where, problem)


def _check_resolved(spec: StudySpec, resolution: int, gan_config: Any) -> None:
    """Build every configuration's options (cheap, no torch) through the function the trials use,
    so that a bad combination is refused now; messages name the YAML path of the value."""
    seed = {"seed": spec.seeds[0]}
    if spec.method == "grid":
        configs = spec.grid_configurations()
        first_arm = len(configs) - len(spec.arms)
        cases = [(c, i >= first_arm, f"search.arms[{i - first_arm}]" if i >= first_arm else "search.params")
                 for i, c in enumerate(configs)]
    else:
        cases = [({}, False, "search.params")]
    seen: dict[str, tuple[dict, str]] = {}
    for config, arm, where in cases:
        def label(key: str, config=config, where=where) -> str:
            return f"{where}.{key}" if key in config else f"train.{key}"

        try:
            options = resolve_options(spec, {**config, **seed}, resolution, label=label, arm=arm)
        except gan_config.OptionsError as exc:
            combination = f" (in the configuration {config})" if exc.field in config and not arm else ""
            fail(spec, label(exc.field), exc.problem + combination)
        except MicrotuneError as exc:
            fail(spec, "dataset", str(exc))
        # two configurations that train the same thing (an ada_target axis crossed with augpipe none,
        # whose trials have no target) would spend a trial twice and count one configuration twice
        key = json.dumps(options.to_dict(), sort_keys=True, default=str)
        if key in seen:
            first, first_where = seen[key]
            why = ("augpipe none has no ADA target; list a no-augmentation baseline once, in search.arms"
                   if options.augpipe == "none" else "one of them is redundant")
            fail(spec, where, f"the configurations {first}{'' if first_where == where else f' ({first_where})'} and {config} train the same options ({why})")
        seen[key] = (config, where)

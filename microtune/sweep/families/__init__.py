"""Model families: what a study's ``model:`` names, looked up by the spec, the runner and the dashboard.

A family is one object (a :class:`Family`) registered under its name. It says which options a
spec may set (``train``, the axes, the arms), validates them by building every trial's resolved
options, turns spec + one trial's overrides into those options (one function), names the metrics
its trials report, the default objective, whether ASHA and ``metrics.protocols`` apply, what the
study's MLflow view charts and summarises, and runs (and resumes) one trial. No module outside
this package names a family.

Built-in families register themselves when this package is imported: ``stylegan2`` and
``dcgan`` (:mod:`.gan`), ``hptl`` (the segmentation methods, :mod:`.segmentation`). Their modules
import nothing heavy: torch, ray and mlflow are imported inside the functions that need them, so
that importing :mod:`microtune.sweep.spec` stays light.

Adding a family (see README, "Adding a model family")::

    from microtune.sweep import families

    class Toy(families.Family):
        name = "toy"
        ...
    families.register(Toy())
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from microtune.sweep.contract import Session, TrialContext
    from microtune.sweep.spec import StudySpec
    from microtune.tracking.dashboard import StudyView


class Family:
    """One model family. Subclass it, set the attributes, implement the methods marked *required*."""

    #: the spec's ``model:`` value
    name: str = ""
    #: (metric, mode) optimised when a spec names no objective
    default_objective: tuple[str, str] = ("fid", "min")
    #: metric keys a spec may name as an objective or ASHA metric
    objective_metrics: tuple[str, ...] = ()
    #: None when ASHA applies, else the reason it does not (refused with it: ``scheduler.type``)
    no_asha: str | None = None
    #: None when ``metrics:`` (protocols, detector, eval_every_kimg) applies, else what trials measure instead
    no_metric_protocols: str | None = None
    #: what an option is called in messages: "train.x: is not <option_noun>"
    option_noun: str = "an option"
    #: ``sweep status`` columns after trial and state: (column, key of the trial's last result);
    #: empty: the objective metrics
    status_columns: tuple[tuple[str, str], ...] = ()

    # -- the spec ---------------------------------------------------------------------------------
    def option_keys(self) -> set[str]:
        """*Required.* The option names ``train``, the axes and the arms may set."""
        raise NotImplementedError

    def normalize(self, values: dict[str, Any]) -> dict[str, Any]:
        """Options as written in a spec (``train``, one axis value, one arm) → as trials use them
        (e.g. paths made absolute: trials run in other directories). Default: unchanged."""
        return dict(values)

    def validate(self, spec: StudySpec, *, check_dataset: bool) -> None:
        """*Required.* Refuse a spec whose trials cannot run, by building every trial's resolved
        options; raise :class:`~microtune.sweep.spec.SpecError` naming the YAML path (:func:`fail`).
        Unknown keys and the scheduler/metrics rules above are checked before (:func:`check_spec`)."""
        raise NotImplementedError

    def check_supported(self, spec: StudySpec) -> None:
        """Refuse what this version cannot run (called at launch, after validation). Default: nothing."""

    def resolve_options(self, spec: StudySpec, overrides: dict[str, Any], **facts: Any) -> Any:
        """*Required.* The one merge of the spec's fixed options and one trial's ``overrides`` into the
        trial's resolved options (``facts``: what the family needs besides, e.g. the dataset's resolution)."""
        raise NotImplementedError

    # -- metrics and views ------------------------------------------------------------------------
    def produced_metrics(self, spec: StudySpec) -> set[str]:
        """*Required.* Metric keys a trial of ``spec`` reports that objectives and schedulers may use."""
        raise NotImplementedError

    def unmeasured(self, spec: StudySpec, metric: str) -> str:
        """Why ``metric`` (an objective or ASHA metric not in :meth:`produced_metrics`) is refused."""
        produced = sorted(self.produced_metrics(spec))
        return f"{metric} is not measured by {self.name} trials (use {' or '.join(produced) or 'another family'})"

    def describe_metrics(self, spec: StudySpec) -> str:
        """The ``metrics`` line of ``sweep launch --dry-run``."""
        return ", ".join(sorted(self.produced_metrics(spec))) or "(nothing)"

    def study_view(self, metrics: set[str]) -> StudyView:
        """*Required.* What the study's MLflow view charts and its summary table shows, given the
        metrics its trials report (:class:`microtune.tracking.dashboard.StudyView`)."""
        raise NotImplementedError

    def progress(self, result: dict[str, Any]) -> str:
        """Where a trial was when it reported ``result`` (the launch's "new best" lines)."""
        return f"iteration {result.get('training_iteration', '-')}"

    def stopped_early(self, spec: StudySpec, overrides: dict[str, Any], last: dict[str, Any] | None) -> bool:
        """True when a trial that Tune terminated ended before its planned budget (ASHA stopped it)."""
        return False

    # -- trials -----------------------------------------------------------------------------------
    def run_trial(self, overrides: dict[str, Any], ctx: TrialContext, session: Session) -> dict[str, float]:
        """*Required.* Run one trial to the end; also called when a trial is retried or its study
        resumed (``session.restored_dir()`` is then its last checkpoint, if it keeps any)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<model family {self.name}>"


_REGISTRY: dict[str, Family] = {}
DEFAULT = "stylegan2"  # the family of a spec that names no model:


def register(family: Family) -> Family:
    """Make ``family`` known under ``family.name`` (a later registration of the name replaces it)."""
    if not isinstance(family, Family) or not family.name:
        raise TypeError(f"{family!r} is not a named microtune.sweep.families.Family")
    _REGISTRY[family.name] = family
    return family


def unregister(name: str) -> None:
    """Forget a family (tests that register a toy family remove it again)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """Registered family names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Family:
    """The family called ``name``; :class:`~microtune.sweep.spec.SpecError` when there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        from microtune.sweep.spec import SpecError

        raise SpecError(f"{name!r} is not a model family; registered: {', '.join(_REGISTRY)}.") from None


def objective_metrics() -> tuple[str, ...]:
    """Every metric some registered family offers as an objective (the spec's allowed values)."""
    return tuple(dict.fromkeys(m for f in _REGISTRY.values() for m in f.objective_metrics))


# -- helpers for families' validation ----------------------------------------------------------------

def fail(spec: StudySpec, where: str, problem: str) -> None:
    """Raise one SpecError sentence naming the spec file and the YAML path ``where``."""
    from microtune.sweep.spec import SpecError

    prefix = f"{spec.source}: {where}: " if where else f"{spec.source}: "
    raise SpecError(prefix + problem.rstrip(".") + ".")


def check_keys(spec: StudySpec, known: set[str], what: str) -> None:
    """Every key of ``train``, the axes and the arms must be one of ``known``."""
    for key in spec.train:
        if key not in known:
            fail(spec, f"train.{key}", f"is not {what}")
    for key in (spec.grid if spec.method == "grid" else spec.space):
        if key not in known:
            fail(spec, f"search.params.{key}", f"is not {what}")
    for i, arm in enumerate(spec.arms):
        for key in arm:
            if key not in known:
                fail(spec, f"search.arms[{i}].{key}", f"is not {what}")


def dataset_facts(spec: StudySpec, check: bool) -> dict[str, Any] | None:
    """The dataset's manifest (count, resolution, class names, ...), or None when not checked."""
    if not check:
        return None
    manifest = Path(spec.dataset) / "manifest.json"
    if not manifest.is_file():
        fail(spec, "dataset", f"{spec.dataset} is not a prepared dataset (no manifest.json); run "
                              "'microtune data prepare' first")
    try:
        data = json.loads(manifest.read_text())
        int(data["count"]), int(data["resolution"])
    except (OSError, ValueError, KeyError, TypeError):
        fail(spec, "dataset", f"{manifest} is unreadable")
    return data


def check_spec(spec: StudySpec, *, check_dataset: bool) -> None:
    """What every family's spec must satisfy, then the family's own :meth:`Family.validate`."""
    family = get(spec.model)
    if family.no_metric_protocols and (spec.protocols or spec.eval_every_kimg is not None
                                       or spec.detector != "standard"):
        fail(spec, "metrics", f"does not apply to model: {spec.model} ({family.no_metric_protocols})")
    if family.no_asha and spec.scheduler == "asha":
        fail(spec, "scheduler.type", f"asha does not apply to model: {spec.model} ({family.no_asha}); use fifo")
    check_keys(spec, family.option_keys(), family.option_noun)
    family.validate(spec, check_dataset=check_dataset)


def _register_builtins() -> None:
    # in this order (the order of names() and of messages listing them); each module registers itself
    import microtune.sweep.families.stylegan2  # noqa: F401
    import microtune.sweep.families.dcgan  # noqa: F401
    import microtune.sweep.families.segmentation  # noqa: F401


_register_builtins()

"""``model: hptl``: the segmentation methods (HPTL and its baselines), options are
:class:`microtune.seg.options.SegOptions`.

``train`` and the axes are segmentation options (``method``, ``depths``, ``epochs``, ...; the dataset
needs masks); trials report ``seg_acc``, ``seg_miou``, the losses and ms per image every epoch; the
default objective is ``{metric: seg_acc, mode: max}``; ``metrics`` and ASHA do not apply. Paths in
``split: lists:A,B``, ``source_weights``, ``cache_dir`` and ``deeplab_weights`` are relative to the
current directory (made absolute when the spec is read). The trial is
:func:`microtune.sweep.seg_trial.run_seg_trial` (imported when a trial runs); it keeps no checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from microtune.sweep import families
from microtune.sweep.families import Family, fail
from microtune.tracking import schema

if TYPE_CHECKING:
    from microtune.sweep.contract import Session, TrialContext
    from microtune.sweep.spec import StudySpec
    from microtune.tracking.dashboard import StudyView

SOURCE_CACHE = "seg-source"    # under the launch's cache directory
# Segmentation options that name files, made absolute at parse time (trials run in other directories)
PATH_OPTIONS = ("source_weights", "cache_dir", "deeplab_weights")
PRODUCED = frozenset({schema.SEG_ACC, schema.SEG_MIOU})  # every segmentation trial reports these


def resolve_options(spec: StudySpec, overrides: dict[str, Any], cache_dir: str | None = None, *,
                    label: Callable[[str], str] | None = None, files: bool = True):
    """The one merge of the spec's fixed ``train`` options, one trial's ``overrides`` (axes, arm,
    ``seed``) and the dataset into :class:`~microtune.seg.options.SegOptions`, checked by every rule
    of the typed model (:func:`~microtune.seg.options.make_seg_options`; ``files``: also the files the
    options name). ``label`` names an option in messages (default: ``train.KEY``, or
    ``search.params.KEY`` when the trial's overrides set it). Trials of one launch share a cache of
    trained stage-1 source networks (``<cache_dir>/seg-source``) unless the options set ``cache_dir``:
    HPTL, HPTL-R and HPTL-2H with one seed train the source VGG-19 once."""
    from microtune.seg.options import make_seg_options

    values = {**spec.train, **overrides, "data": str(spec.dataset)}
    if not values.get("cache_dir") and cache_dir:
        values["cache_dir"] = str(Path(cache_dir) / SOURCE_CACHE)
    if label is None:
        def label(key: str) -> str:
            return f"search.params.{key}" if key in overrides else f"train.{key}"
    return make_seg_options(values, label=label, files=files)


class SegmentationFamily(Family):
    name = "hptl"
    default_objective = (schema.SEG_ACC, "max")
    objective_metrics = (schema.SEG_ACC, schema.SEG_MIOU)
    no_asha = "a trial trains several networks in stages, so its epochs are not one budget"
    no_metric_protocols = "segmentation trials measure pixel accuracy, IoU, losses and inference time every epoch"
    option_noun = "a segmentation option"
    status_columns = (("stage", schema.SEG_STAGE), ("epoch", schema.SEG_EPOCH), ("seg_acc", schema.SEG_ACC),
                      ("seg_miou", schema.SEG_MIOU))

    def __reduce__(self):
        return (type(self), ())

    # -- the spec ---------------------------------------------------------------------------------
    def option_keys(self) -> set[str]:
        from microtune.seg.options import FIELDS

        return set(FIELDS) - {"data", "seed"}

    def normalize(self, values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        for key in PATH_OPTIONS:
            if isinstance(out.get(key), str) and out[key] and "://" not in out[key] and out[key] != "imagenet":
                out[key] = os.path.abspath(os.path.expanduser(out[key]))
        split = out.get("split")
        if isinstance(split, str) and split.startswith("lists:"):
            files = [os.path.abspath(os.path.expanduser(f)) if f else f for f in split[len("lists:"):].split(",")]
            out["split"] = "lists:" + ",".join(files)
        return out

    def validate(self, spec: StudySpec, *, check_dataset: bool) -> None:
        """Every value on its own (type, range: each axis value, each distribution bound), then
        ``train`` and every configuration (grid product and arms) built through :func:`resolve_options`,
        the function the trials use; messages name the YAML path (``search.params.lr[1]: must be > 0``)."""
        from microtune.seg.options import SegOptionsError, check_value

        facts = families.dataset_facts(spec, check_dataset)
        if facts is not None and not facts.get("class_names"):
            fail(spec, "dataset", f"{spec.dataset} has no masks; model: {self.name} needs a dataset prepared with "
                                  "--masks and --class-names")

        def one(where: str, key: str, value: Any) -> None:
            try:
                check_value(key, value, label=lambda _key: where)
            except SegOptionsError as exc:
                fail(spec, where, exc.problem)

        def config(where: str, overrides: dict[str, Any], crossed: bool = False) -> None:
            def label(key: str) -> str:
                return f"{where}.{key}" if key in overrides else f"train.{key}"

            try:
                resolve_options(spec, overrides, label=label, files=check_dataset)
            except SegOptionsError as exc:
                combination = f" (in the configuration {overrides})" if crossed and len(overrides) > 1 else ""
                fail(spec, label(exc.field), exc.problem + combination)

        config("train", {})
        if spec.method == "grid":
            for key, values in spec.grid.items():
                for i, value in enumerate(values):
                    one(f"search.params.{key}[{i}]", key, value)
            for i, arm in enumerate(spec.arms):
                for key, value in arm.items():
                    one(f"search.arms[{i}].{key}", key, value)
            configs = spec.grid_configurations()
            first_arm = len(configs) - len(spec.arms)
            for n, overrides in enumerate(configs):
                if n >= first_arm:
                    config(f"search.arms[{n - first_arm}]", overrides)
                else:
                    config("search.params", overrides, crossed=True)
            return
        for key, d in spec.space.items():
            if d.kind == "categorical":
                for i, value in enumerate(d.choices):
                    one(f"search.params.{key}[{i}]", key, value)
            else:
                for bound in ("low", "high"):
                    one(f"search.params.{key}.{bound}", key, getattr(d, bound))

    def resolve_options(self, spec: StudySpec, overrides: dict[str, Any], **facts: Any):
        """``facts``: ``cache_dir``, the launch's cache directory (see :func:`resolve_options`)."""
        return resolve_options(spec, overrides, **facts)

    # -- metrics and views ------------------------------------------------------------------------
    def produced_metrics(self, spec: StudySpec) -> set[str]:
        return set(PRODUCED)

    def unmeasured(self, spec: StudySpec, metric: str) -> str:
        return f"{metric} is not measured by segmentation trials (use {' or '.join(sorted(PRODUCED))})"

    def describe_metrics(self, spec: StudySpec) -> str:
        return "pixel accuracy, IoU per class and mean, train/test loss, ms per image: every epoch"

    def study_view(self, metrics: set[str]) -> StudyView:
        from microtune.tracking.dashboard import StudyView

        curves = [m for m in (schema.SEG_ACC, schema.SEG_MIOU, schema.SEG_TEST_LOSS) if m in metrics]
        bars = [m for m in (schema.SEG_ACC, schema.SEG_MIOU) if m in metrics]
        return StudyView(curves=tuple(curves), bars=tuple(bars), x_metric=None,
                         answer=((schema.SEG_ACC, "max"), (schema.SEG_MIOU, "max")), progress=None)

    def progress(self, result: dict[str, Any]) -> str:
        return f"stage {result.get(schema.SEG_STAGE, '-')} epoch {result.get(schema.SEG_EPOCH, '-')}"

    # -- trials -----------------------------------------------------------------------------------
    def run_trial(self, overrides: dict[str, Any], ctx: TrialContext, session: Session) -> dict[str, float]:
        from microtune.sweep.seg_trial import run_seg_trial

        return run_seg_trial(overrides, ctx, session, family=self)


FAMILY = families.register(SegmentationFamily())

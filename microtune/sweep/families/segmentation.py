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
from typing import TYPE_CHECKING, Any

from microtune.errors import MicrotuneError
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


def _field_kinds() -> dict[str, str]:
    """SegOptions field -> "str", "int", "float" or "bool" (a dataclass or a pydantic model)."""
    from microtune.seg.options import SegOptions

    fields = getattr(SegOptions, "__dataclass_fields__", None)
    if fields:
        kinds = {name: f.type for name, f in fields.items()}
    else:
        kinds = {name: f.annotation for name, f in SegOptions.model_fields.items()}
    return {name: k if isinstance(k, str) else getattr(k, "__name__", str(k)) for name, k in kinds.items()}


def resolve_options(spec: StudySpec, overrides: dict[str, Any], cache_dir: str | None = None):
    """The one merge of the spec's fixed ``train`` options, one trial's ``overrides`` (axes, arm,
    ``seed``) and the dataset into validated :class:`~microtune.seg.options.SegOptions`. Trials of one
    launch share a cache of trained stage-1 source networks (``<cache_dir>/seg-source``) unless the
    options set ``cache_dir``: HPTL, HPTL-R and HPTL-2H with one seed train the source VGG-19 once."""
    from microtune.seg.options import options_from_dict, validate

    values = {**spec.train, **overrides, "data": str(spec.dataset)}
    if not values.get("cache_dir") and cache_dir:
        values["cache_dir"] = str(Path(cache_dir) / SOURCE_CACHE)
    return validate(options_from_dict(values))


class SegmentationFamily(Family):
    name = "hptl"
    default_objective = (schema.SEG_ACC, "max")
    objective_metrics = (schema.SEG_ACC, schema.SEG_MIOU)
    no_asha = "a trial trains several networks in stages, so its epochs are not one budget"
    no_metric_protocols = "segmentation trials measure pixel accuracy, IoU, losses and inference time every epoch"
    resumes_from_checkpoint = False
    option_noun = "a segmentation option"

    def __reduce__(self):
        return (SegmentationFamily, ())

    # -- the spec ---------------------------------------------------------------------------------
    def option_keys(self) -> set[str]:
        return set(_field_kinds()) - {"data", "seed"}

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
        facts = families.dataset_facts(spec, check_dataset)
        if facts is not None and not facts.get("class_names"):
            fail(spec, "dataset", f"{spec.dataset} has no masks; model: {self.name} needs a dataset prepared with "
                                  "--masks and --class-names")
        kinds = _field_kinds()

        def check_types(where: str, overrides: dict[str, Any], per_key: bool) -> None:
            for key, value in overrides.items():
                at, kind = (f"{where}.{key}" if per_key else where), kinds[key]
                if kind == "bool" and not isinstance(value, bool):
                    fail(spec, at, f"must be true or false, got {value!r}")
                elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                    fail(spec, at, f"must be a whole number, got {value!r}")
                elif kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    fail(spec, at, f"must be a number, got {value!r}")
                elif kind == "str" and not isinstance(value, str):
                    fail(spec, at, f"must be a string, got {value!r}"
                         + (" (write depths as '2,8,9')" if key == "depths" else ""))

        def check(where: str, overrides: dict[str, Any], per_key: bool = False) -> None:
            """Refuse ``train`` + ``overrides``; ``per_key``: name ``where.KEY`` in type errors."""
            check_types(where, overrides, per_key)
            try:
                resolve_options(spec, overrides)
            except MicrotuneError as exc:
                fail(spec, where, f"{overrides or 'the fixed options'} are invalid: {exc}")
            split = {**spec.train, **overrides}.get("split", "")
            if check_dataset and isinstance(split, str) and split.startswith("lists:"):  # files on this machine
                for f in split[len("lists:"):].split(","):
                    if not Path(f).is_file():
                        fail(spec, where, f"split list {f} does not exist")

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
        return f"stage {result.get('seg_stage', '-')} epoch {result.get('seg_epoch', '-')}"

    # -- trials -----------------------------------------------------------------------------------
    def run_trial(self, overrides: dict[str, Any], ctx: TrialContext, session: Session) -> dict[str, float]:
        from microtune.sweep.seg_trial import run_seg_trial

        return run_seg_trial(overrides, ctx, session)


FAMILY = families.register(SegmentationFamily())

"""One segmentation trial (``model: hptl``): its overrides → :func:`microtune.seg.run.run_segmentation`.

The family :mod:`microtune.sweep.families.segmentation` describes the study and calls
:func:`run_seg_trial`; this module knows nothing of ``ray.tune`` (the runner hands it a
:class:`~microtune.sweep.contract.Session`) and does not import the GAN trial.

What a trial does

1. Resolve its :class:`~microtune.seg.options.SegOptions`
   (:func:`microtune.sweep.families.segmentation.resolve_options`): the spec's fixed ``train``
   options, the trial's overrides (axes, arm and ``seed``) and the spec's dataset. Trials of one launch share a
   cache of trained stage-1 source networks (``<metrics cache>/seg-source``) unless the spec sets
   ``cache_dir``: HPTL, HPTL-R and HPTL-2H with one seed train the texture source VGG-19 once.
2. Open its MLflow child run (:func:`microtune.sweep.contract.open_trial`): params are the
   resolved options (nothing else), with ``method`` = the table label
   (``HPTL``, ``HPTL-R``, ``OTSU``, ... as :mod:`analysis.hptl_tables` groups them) and
   ``method_key`` = the option value (``hptl``, ``hptl-r``, ``otsu``, ...); tag ``model`` = the
   method key.
3. Train: after every epoch of every trained network, the epoch's metrics (pixel accuracy beside
   the test set's majority-class rate ``seg_majority`` and the flag ``seg_near_majority``, per-class
   and mean IoU, losses and their gap, ms per image, stage, epoch) go to MLflow at step = training
   crops seen and to Tune. Otsu and the SVM report once.

Segmentation trials keep no checkpoint: a retried trial trains again from the start. Its earlier
attempt's MLflow run is closed as FAILED (tag ``retried=true``) so no curve mixes two
attempts, and the analysis, which leaves failed runs out, counts the trial once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from microtune.sweep.contract import RUN_ID_KEY, Session, TrialContext, open_trial
from microtune.sweep import families
from microtune.tracking import schema

SEG_STEP = "seg_step"          # training crops seen when a report was made (the MLflow step)


def seg_params(options: Any, dataset_size: int) -> dict[str, Any]:
    """MLflow params of a segmentation trial (see the module docstring)."""
    params = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("method", "data")}
    params.update({schema.PARAM_METHOD: options.label, schema.PARAM_METHOD_KEY: options.method,
                   schema.PARAM_DATASET: options.data, schema.PARAM_DATASET_SIZE: dataset_size})
    return params


def run_seg_trial(overrides: dict[str, Any], ctx: TrialContext, session: Session,
                  family: families.Family | None = None) -> dict[str, float]:
    """Run one segmentation trial (``overrides``: its axes, arm and ``seed``) to the end; returns its
    final metrics. A retried trial starts again (see the module docstring). ``family`` resolves the
    options (default: the registry's family of ``ctx.spec.model``)."""
    import torch

    from microtune.data.dataset import Dataset
    from microtune.device import device_name, select_device
    from microtune.seg.run import run_segmentation

    spec = ctx.spec
    options = (family or families.get(spec.model)).resolve_options(spec, overrides, cache_dir=ctx.cache_dir)
    torch.set_num_threads(max(1, int(spec.cpu)))
    trial = open_trial(ctx, session, overrides)
    tracker = trial.tracker
    # an earlier attempt of this trial: from this trial directory's spool, else (another node) the server
    earlier = tracker.previous_trial_run(spec.name, trial.name, ctx.parent_run_id)
    if earlier is None:
        found = tracker.find_run(spec.name, {schema.TRIAL_ID: trial.trial_id, schema.PARENT_RUN_ID: ctx.parent_run_id})
        earlier = found[0] if found else None
    run_id = tracker.start_trial_run(
        spec.name, parent_run_id=ctx.parent_run_id, name=trial.name, resume=False,
        tags=trial.tags(ctx, **{schema.MODEL: options.method, schema.DEVICE: device_name(select_device(options.device)),
                                schema.DETECTOR: "none"}),
        params=seg_params(options, Dataset.open(spec.dataset).count),
    )
    if earlier is not None:  # a retry: close the abandoned attempt's run
        tracker.set_tags(earlier, {schema.RETRIED: "true", schema.TRIAL_STATUS: "FAILED"})
        tracker.end_run(earlier, "FAILED")

    last = {"step": 0}

    def report(step: int, metrics: dict[str, float]) -> None:
        last["step"] = step
        tracker.log_metrics(run_id, metrics, step=step)
        session.report({**metrics, SEG_STEP: step, RUN_ID_KEY: run_id}, None)

    final = run_segmentation(options, report=report)
    tracker.log_metrics(run_id, {schema.SEG_SECONDS: final[schema.SEG_SECONDS]}, step=last["step"])  # whole trial, s
    tracker.end_run(run_id, "FINISHED")
    tracker.flush()
    return final

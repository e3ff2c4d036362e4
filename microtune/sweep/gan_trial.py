"""One GAN trial (``model: stylegan2`` or ``dcgan``): overrides → training with evaluation → MLflow child run + Tune reports.

The family :mod:`microtune.sweep.families.gan` describes the study (options, metrics, views) and
calls :func:`run_trial`; this module knows nothing of ``ray.tune``: the runner hands it a
:class:`~microtune.sweep.contract.Session` that talks to Tune, so this code runs (and is tested)
without Ray.

What a trial does

1. Resolve its training options (:func:`microtune.sweep.families.gan.resolve_options`: the spec's
   fixed ``train`` options, the trial's overrides (the study axes and ``seed``), the evaluation
   interval); snapshots coincide with evaluations so that every report to Tune carries a
   checkpoint of exactly that moment.
2. Open (or, after a retry, re-open) its MLflow child run (:func:`microtune.sweep.contract.open_trial`);
   the run id travels inside the Tune checkpoint (:class:`~microtune.sweep.contract.TrialState`)
   so a resumed trial keeps logging into the same run.
3. Train. At every tick the losses, ADA p and r_t go to MLflow (step = nimg); at every evaluation
   the metrics and best-so-far values go to MLflow and to Tune with the checkpoint. Steps that were
   logged before a crash are not logged again after the resume: curves stay continuous.
4. At the end: the final and best generator snapshots and the last sample grid as artifacts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from microtune.io import atomic_write_json
from microtune.sweep.contract import RUN_ID_KEY, OpenTrial, Session, TrialContext, TrialState, open_trial
from microtune.sweep import families
from microtune.tracking import schema

GAN_CHECKPOINT = "checkpoint-latest.pt"   # the training loop's full-state checkpoint


def update_best(best: dict[str, float], metrics: dict[str, float]) -> bool:
    """Fold ``metrics`` into best-so-far values; True when best FID improved."""
    improved = False
    if schema.FID in metrics and metrics[schema.FID] < best.get(schema.BEST_FID, float("inf")):
        best[schema.BEST_FID] = metrics[schema.FID]
        improved = True
    if schema.RECALL in metrics and metrics[schema.RECALL] > best.get(schema.BEST_RECALL, float("-inf")):
        best[schema.BEST_RECALL] = metrics[schema.RECALL]
    return improved


def run_trial(overrides: dict[str, Any], ctx: TrialContext, session: Session,
              family: families.Family | None = None) -> dict[str, float]:
    """Run one trial (``overrides``: its axes and ``seed``) to the end, or until Tune stops it;
    returns the last metrics. A retried or resumed trial continues from ``session.restored_dir()``.
    ``family`` resolves the options (default: the registry's family of ``ctx.spec.model``)."""
    from microtune.data.dataset import Dataset
    from microtune.gan.loop import train

    spec = ctx.spec
    dataset = Dataset.open(spec.dataset)
    options = (family or families.get(spec.model)).resolve_options(spec, overrides, resolution=dataset.resolution)
    trial = open_trial(ctx, session, overrides)
    tracker = trial.tracker
    work = trial.trial_dir / "train"
    work.mkdir(parents=True, exist_ok=True)
    restored = session.restored_dir()
    state = TrialState.load(restored)
    if state.run_id is None:  # first start, or restarted without a checkpoint: continue our run if any
        found = tracker.find_run(spec.name, {schema.TRIAL_ID: trial.trial_id,
                                             schema.PARENT_RUN_ID: ctx.parent_run_id})
        if found is not None:
            state.run_id, state.logged_nimg = found
    if state.run_id is None:
        state.run_id = _start_run(trial, ctx, overrides, options, work, dataset.count)
    else:
        tracker.resume_run(state.run_id)
    evaluate, detector = _evaluator(ctx, dataset, options)
    if detector:
        tracker.set_tags(state.run_id, {schema.DETECTOR: detector})

    def report(nimg: int, metrics: dict[str, float]) -> None:
        metrics = {**metrics, schema.KIMG: nimg / 1000.0}
        evaluated = any(k in metrics for k in (schema.FID, schema.KID, schema.RECALL, schema.PRECISION))
        if update_best(state.best, metrics):
            state.best_nimg = nimg
        if nimg > state.logged_nimg:
            tracker.log_metrics(state.run_id, {**metrics, **(state.best if evaluated else {})}, step=nimg)
            state.logged_nimg = nimg
        if evaluated or (evaluate is None and (work / GAN_CHECKPOINT).exists() and _snapshot_at(work, nimg)):
            _report_with_checkpoint(session, work, state, {**metrics, **state.best, RUN_ID_KEY: state.run_id})

    resume_from = restored / GAN_CHECKPOINT if restored is not None and (restored / GAN_CHECKPOINT).exists() else None
    result = train(options, dataset=dataset, run_dir=work, report=report, evaluate=evaluate, resume_from=resume_from)
    _log_final_artifacts(tracker, state, work)
    tracker.end_run(state.run_id, "FINISHED")
    tracker.flush()
    return dict(result.metrics)


def _start_run(trial: OpenTrial, ctx: TrialContext, overrides: dict[str, Any], options: Any,
               work: Path, dataset_size: int) -> str:
    from microtune.device import device_name, select_device

    spec = ctx.spec
    device = select_device(options.device)
    run_id = trial.tracker.start_trial_run(
        spec.name, parent_run_id=ctx.parent_run_id, name=trial.name,
        tags=trial.tags(ctx, **{schema.MODEL: spec.model, schema.DEVICE: device_name(device),
                                schema.DETECTOR: spec.detector if spec.protocols else "none"}),
        # resolved values only (the axes are fields)
        params={**options.to_dict(), schema.PARAM_DATASET: str(spec.dataset), schema.PARAM_DATASET_SIZE: dataset_size},
    )
    work.mkdir(parents=True, exist_ok=True)
    resolved = work / "resolved_config.json"
    atomic_write_json(resolved, {"options": options.to_dict(), "overrides": overrides, "spec": spec.to_dict()},
                      indent=1, default=str)
    trial.tracker.log_artifact(run_id, resolved, os.path.dirname(schema.ARTIFACT_CONFIG))
    return run_id


def _evaluator(ctx: TrialContext, dataset: Any, options: Any):
    """(evaluate(G, nimg) -> dict, detector tag) or (None, None) when the spec measures nothing."""
    spec = ctx.spec
    if not spec.protocols:
        return None, None
    from microtune.metrics import generator_sampler, make_evaluator

    evaluator = make_evaluator(dataset, metrics=spec.protocols, detector=spec.detector,
                               detector_weights=tuple(ctx.detector_weights),
                               cache_dir=ctx.cache_dir, device=options.device)

    def evaluate(generator: Any, nimg: int) -> dict[str, float]:
        return evaluator(generator_sampler(generator, seed=0), nimg)

    return evaluate, evaluator.detector


def _snapshot_at(work: Path, nimg: int) -> bool:
    return (work / f"network-nimg{nimg:09d}.pt").exists()


def _report_with_checkpoint(session: Session, work: Path, state: TrialState, metrics: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="microtune-ckpt-") as tmp:
        tmp_path = Path(tmp)
        source = work / GAN_CHECKPOINT
        if source.exists():
            try:
                os.link(source, tmp_path / GAN_CHECKPOINT)
            except OSError:
                shutil.copy2(source, tmp_path / GAN_CHECKPOINT)
        state.save(tmp_path)
        session.report(metrics, tmp_path)


def _log_final_artifacts(tracker: Any, state: TrialState, work: Path) -> None:
    """The final and best G_ema snapshots (as checkpoints/final.pt, best.pt) and the last sample grid."""
    networks = sorted(work.glob("network-nimg*.pt"))
    chosen = {schema.ARTIFACT_CHECKPOINT_FINAL: networks[-1] if networks else None}
    if state.best_nimg is not None:
        chosen[schema.ARTIFACT_CHECKPOINT_BEST] = work / f"network-nimg{state.best_nimg:09d}.pt"
    for artifact, source in chosen.items():
        if source is not None and source.exists():
            named = work / "artifacts" / artifact  # kept: the tracker uploads it when it can
            named.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, named)
            tracker.log_artifact(state.run_id, named, str(Path(artifact).parent))
    for grid in sorted(work.glob("samples-nimg*.png"))[-1:]:
        tracker.log_artifact(state.run_id, grid, schema.ARTIFACT_SAMPLES_DIR)

"""Launch, resume and inspect studies on Ray Tune: the one module that imports ``ray.tune``.

A launch

1. validates the spec (nothing starts on a bad one);
2. connects to tracking: ``--tracking-uri``, the spec's ``tracking.uri``, or the project's local
   MLflow server on 127.0.0.1 (started, or reused when already running);
3. creates the study's experiment and a parent run, and records both with the resolved spec in
   ``<storage>/<name>/microtune_study.json`` (what ``resume`` and ``status`` read);
4. starts (``address="local"``) or joins (``--address``) Ray and runs a Tuner: one function trial
   per configuration × seed, Optuna's searcher and/or ASHA where the spec asks, retries from the
   last checkpoint (``failure.max_retries``);
5. closes every child run with the trial's final state and the parent run with the study's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microtune.errors import MicrotuneError
from microtune.sweep import space
from microtune.sweep.spec import StudySpec, load_spec, parse_spec
from microtune.sweep.trainable import RUN_ID_KEY, TrialContext, git_sha, run_trial
from microtune.tracking import schema

log = logging.getLogger(__name__)
STUDY_FILE = "microtune_study.json"
TIME_ATTR = "nimg"


@dataclass
class StudyRecord:
    """What a launch records beside Tune's experiment state."""

    spec: dict[str, Any]                 # the spec as written (re-validated on resume)
    spec_source: str
    dataset: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    git_sha: str
    cache_dir: str | None
    detector_weights: list[str]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{STUDY_FILE}.tmp"
        tmp.write_text(json.dumps(self.__dict__, indent=1))
        os.replace(tmp, directory / STUDY_FILE)

    @classmethod
    def load(cls, directory: Path) -> StudyRecord:
        path = directory / STUDY_FILE
        if not path.is_file():
            raise MicrotuneError(f"{directory}: not a microtune study (no {STUDY_FILE}); give a study name or its directory.")
        return cls(**json.loads(path.read_text()))


# -- Tune glue ---------------------------------------------------------------------------------------

class _TuneSession:
    """:class:`microtune.sweep.trainable.Session` backed by Ray Tune."""

    def __init__(self) -> None:
        from ray import tune

        self._tune = tune
        self._restored_tmp: str | None = None

    def trial_id(self) -> str:
        return self._tune.get_context().get_trial_id()

    def trial_dir(self) -> Path:
        return Path(self._tune.get_context().get_trial_dir())

    def restored_dir(self) -> Path | None:
        checkpoint = self._tune.get_checkpoint()
        return None if checkpoint is None else Path(checkpoint.to_directory())

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        from ray.tune import Checkpoint

        if schema.KIMG in metrics:  # GAN trials: ASHA's time axis (segmentation trials report seg_step)
            metrics = {**metrics, TIME_ATTR: int(round(metrics[schema.KIMG] * 1000))}
        checkpoint = Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        self._tune.report(metrics, checkpoint=checkpoint)


def _trainable(config: dict[str, Any], context: TrialContext) -> None:
    run_trial(config, context, _TuneSession())


def _progress_callback(total: int, spec: StudySpec, tracking_uri: str, spool_dir: Path | None):
    from ray.tune import Callback

    metric, mode = _headline(spec)

    class Progress(Callback):
        """Prints trials done and best so far; closes each trial's MLflow run with its final state."""

        def __init__(self) -> None:
            self.done = 0
            self.best: tuple[float, str] | None = None
            self._tracker: Any = None

        def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with its state
            return {**self.__dict__, "_tracker": None}

        @property
        def tracker(self) -> Any:
            if self._tracker is None:
                from microtune.tracking.mlflow_io import Tracker

                self._tracker = Tracker(tracking_uri, spool_dir=spool_dir)
            return self._tracker

        def on_trial_result(self, iteration, trials, trial, result, **info):
            value = result.get(metric)
            if value is None:
                return
            if self.best is None or (value < self.best[0] if mode == "min" else value > self.best[0]):
                self.best = (value, trial.trial_id)
                at = (f"kimg {result[schema.KIMG]:g}" if schema.KIMG in result else
                      f"stage {result.get('seg_stage', '-')} epoch {result.get('seg_epoch', '-')}")
                print(f"[{time.strftime('%H:%M:%S')}] new best {metric} {value:.4g} (trial {trial.trial_id}, {at})",
                      flush=True)

        def _finish(self, trial, status: str) -> None:
            self.done += 1
            run_id = (trial.last_result or {}).get(RUN_ID_KEY)
            if run_id:
                try:
                    self.tracker.set_tags(run_id, {schema.TRIAL_STATUS: status})
                    self.tracker.end_run(run_id, "FAILED" if status == "FAILED" else "FINISHED")
                except Exception as exc:  # tracking must never stop the sweep
                    log.warning("could not close MLflow run %s: %s", run_id, exc)
            best = f", best {metric} {self.best[0]:.4g}" if self.best else ""
            print(f"[{time.strftime('%H:%M:%S')}] trial {trial.trial_id} {status.lower()}: "
                  f"{self.done}/{total} done{best}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            # a trial the scheduler stopped (ASHA) completes before its planned length
            planned = space.trial_overrides(spec, trial.config).get("kimg", spec.train.get("kimg"))
            reached = (trial.last_result or {}).get(schema.KIMG)
            stopped = planned is not None and reached is not None and reached < float(planned)
            self._finish(trial, "STOPPED" if stopped else "FINISHED")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._finish(trial, "FAILED")

    return Progress()


def _headline(spec: StudySpec) -> tuple[str, str]:
    if spec.method == "optuna":
        return spec.objectives[0].metric, spec.objectives[0].mode
    if spec.scheduler == "asha":
        return spec.scheduler_metric, spec.scheduler_mode
    produced = space.produced_metrics(spec)
    return ("fid", "min") if "fid" in produced or not produced else (sorted(produced)[0], "max")


def _build_tuner(spec: StudySpec, context: TrialContext, storage: str, max_concurrent: int | None,
                 callbacks: list[Any]):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    trainable = tune.with_resources(tune.with_parameters(_trainable, context=context),
                                    {"cpu": spec.cpu, "gpu": spec.gpu})
    scheduler: Any = FIFOScheduler()
    if spec.scheduler == "asha":
        rungs = [int(round(r * 1000)) for r in spec.rungs_kimg]
        scheduler = ASHAScheduler(time_attr=TIME_ATTR, metric=spec.scheduler_metric, mode=spec.scheduler_mode,
                                  grace_period=rungs[0], reduction_factor=rungs[1] / rungs[0], max_t=rungs[-1])
    search_alg = None
    param_space: dict[str, Any] = {}
    num_samples = 1
    if spec.method == "grid":
        param_space = {space.TRIAL_KEY: tune.grid_search([c[space.TRIAL_KEY] for c in space.grid_configs(spec)])}
    else:
        search_alg, num_samples = _optuna_search(spec)
    concurrent = max_concurrent if max_concurrent is not None else spec.max_concurrent
    tune_config = tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                                  max_concurrent_trials=concurrent or None)
    run_config = tune.RunConfig(
        name=spec.name, storage_path=storage, verbose=0, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=spec.max_retries),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def _optuna_search(spec: StudySpec):
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    from microtune.sweep.samplers import make_sampler

    sampler = make_sampler(spec.sampler, seed=spec.seeds[0])
    metrics = [o.metric for o in spec.objectives]
    modes = [o.mode for o in spec.objectives]
    single = len(metrics) == 1
    searcher = OptunaSearch(space=space.optuna_distributions(spec), sampler=sampler,
                            metric=metrics[0] if single else metrics, mode=modes[0] if single else modes)
    if single and len(spec.seeds) > 1:
        return Repeater(searcher, repeat=len(spec.seeds), set_index=True), spec.num_samples * len(spec.seeds)
    return searcher, spec.num_samples


# -- Ray and tracking set-up -------------------------------------------------------------------------

def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")  # set for drivers of `ray job submit`
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # never attach to someone else's cluster by accident: start our own
        ray.init(address="local", include_dashboard=False, log_to_driver=False)


def _tracking(uri: str | None, project_dir: Path) -> str:
    if uri:
        return uri
    from microtune.tracking.mlflow_io import ensure_local_server

    server = ensure_local_server(project_dir)
    print(f"MLflow UI: {server.uri}", flush=True)
    return server.uri


def default_storage(project_dir: Path) -> Path:
    """Where studies live unless ``--storage`` says otherwise."""
    return project_dir / "runs" / "sweeps"


def _study_dir(storage: str, name: str) -> Path | None:
    if "://" in storage:
        return None
    return Path(storage) / name


# -- public API ----------------------------------------------------------------------------------------

def launch(spec: StudySpec, *, project_dir: Path, address: str | None = None, tracking_uri: str | None = None,
           storage: str | None = None, max_concurrent: int | None = None, cache_dir: str | None = None,
           detector_weights: tuple[str, ...] = (), force: bool = False) -> int:
    """Run a study to the end; returns 0 when every trial finished, 1 otherwise."""
    space.check_supported(spec)
    storage = storage or str(default_storage(project_dir))
    study_dir = _study_dir(storage, spec.name)
    if study_dir is not None and study_dir.exists():
        if not force:
            raise MicrotuneError(f"{study_dir}: study {spec.name!r} was launched before; resume it with "
                                 f"'microtune sweep resume {spec.name}' or pass --force to start it afresh.")
        shutil.rmtree(study_dir)
    from microtune.tracking.mlflow_io import Tracker

    uri = _tracking(tracking_uri or spec.tracking_uri, project_dir)
    tracker = Tracker(uri, spool_dir=(study_dir or project_dir / "runs") / "driver-spool")
    experiment_id = tracker.ensure_experiment(spec.name)
    sha = git_sha(project_dir)
    parent = tracker.start_study_run(
        spec.name, name=f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={schema.STUDY: spec.name, schema.SPEC_HASH: spec.spec_hash, schema.GIT_SHA: sha,
              schema.MODEL: spec.model, schema.DETECTOR: spec.detector if spec.protocols else "none"},
        params={"trials": spec.trial_count(), "method": spec.method, "scheduler": spec.scheduler,
                "dataset": str(spec.dataset), "seeds": ",".join(map(str, spec.seeds))},
    )
    record = StudyRecord(spec=spec.raw, spec_source=spec.source, dataset=str(spec.dataset), tracking_uri=uri,
                         experiment_id=experiment_id, parent_run_id=parent, git_sha=sha, cache_dir=cache_dir,
                         detector_weights=list(detector_weights))
    if study_dir is not None:
        record.save(study_dir)
    return _run(spec, record, tracker, storage, address, max_concurrent, restore=False)


def resume(name_or_path: str, *, project_dir: Path, address: str | None = None, storage: str | None = None) -> int:
    """Finish a study whose driver stopped: unfinished and errored trials continue from checkpoints."""
    study_dir = resolve_study(name_or_path, project_dir, storage)
    record = StudyRecord.load(study_dir)
    spec = parse_spec(record.spec, source=record.spec_source)
    spec = _with_dataset(spec, record.dataset)
    from microtune.tracking.mlflow_io import Tracker

    tracker = Tracker(record.tracking_uri, spool_dir=study_dir / "driver-spool")
    return _run(spec, record, tracker, str(study_dir.parent), address, None, restore=True)


def _run(spec: StudySpec, record: StudyRecord, tracker: Any, storage: str, address: str | None,
         max_concurrent: int | None, *, restore: bool) -> int:
    # Tune saves its experiment state at most every 10 s by default; a driver killed in between
    # loses what happened since. Every 2 s costs little with tens of trials.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    from ray import tune

    context = TrialContext(spec=spec, tracking_uri=record.tracking_uri, experiment_id=record.experiment_id,
                           parent_run_id=record.parent_run_id, git_sha=record.git_sha, cache_dir=record.cache_dir,
                           detector_weights=tuple(record.detector_weights))
    _init_ray(address)
    spool = Path(storage) / spec.name / "callback-spool" if "://" not in storage else None
    callbacks = [_progress_callback(spec.trial_count(), spec, record.tracking_uri, spool)]
    print(f"study {spec.name}: {spec.trial_count()} trials, results in {storage}/{spec.name}", flush=True)
    if restore:
        path = f"{storage}/{spec.name}"
        trainable = tune.with_resources(tune.with_parameters(_trainable, context=context),
                                        {"cpu": spec.cpu, "gpu": spec.gpu})
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        # callbacks are not part of the restored state: attach ours again
        tuner._local_tuner._run_config.callbacks = callbacks
    else:
        tuner = _build_tuner(spec, context, storage, max_concurrent, callbacks)
    results = tuner.fit()
    failed = sum(1 for r in results if r.error is not None)
    tracker.set_tags(record.parent_run_id, {"trials_failed": str(failed), "trials": str(len(results))})
    tracker.end_run(record.parent_run_id, "FAILED" if failed else "FINISHED")
    tracker.flush()
    if "://" not in storage:
        _deliver_leftovers(Path(storage) / spec.name, record.tracking_uri, spec.name)
    print(f"study {spec.name}: {len(results) - failed}/{len(results)} trials finished; "
          f"MLflow experiment {spec.name!r} at {record.tracking_uri}", flush=True)
    return 1 if failed else 0


def _deliver_leftovers(study_dir: Path, tracking_uri: str, name: str) -> None:
    """Deliver what trials and the driver spooled while MLflow was unreachable (waits a while)."""
    from microtune.tracking.mlflow_io import sync_spools

    deadline = time.monotonic() + float(os.environ.get("MICROTUNE_SYNC_TIMEOUT_S", "120"))
    while True:
        pending = sync_spools([study_dir], tracking_uri)["pending"]
        if pending == 0 or time.monotonic() > deadline:
            break
        print(f"{pending} tracking record(s) wait for MLflow at {tracking_uri}; retrying", flush=True)
        time.sleep(5)
    if pending:
        print(f"{pending} tracking record(s) could not reach MLflow; they are kept in {study_dir}: deliver them "
              f"with 'microtune sweep sync {name}'", flush=True)


def _with_dataset(spec: StudySpec, dataset: str) -> StudySpec:
    from dataclasses import replace

    return replace(spec, dataset=Path(dataset))


def resolve_study(name_or_path: str, project_dir: Path, storage: str | None = None) -> Path:
    """A study directory from its name (under the storage) or its path."""
    candidate = Path(name_or_path)
    if (candidate / STUDY_FILE).is_file():
        return candidate.absolute()
    under = Path(storage or default_storage(project_dir)) / name_or_path
    if (under / STUDY_FILE).is_file():
        return under.absolute()
    raise MicrotuneError(f"no study named {name_or_path!r} under {under.parent} (and {candidate} is not a study directory).")


def status_rows(name_or_path: str, *, project_dir: Path, storage: str | None = None) -> list[dict[str, Any]]:
    """One row per trial: trial, state, kimg, latest and best fid/recall (segmentation trials: stage,
    epoch, pixel accuracy, mean IoU), failures, config."""
    from ray.tune import ExperimentAnalysis

    study_dir = resolve_study(name_or_path, project_dir, storage)
    analysis = ExperimentAnalysis(str(study_dir))
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        rows.append({
            "trial": trial.trial_id, "state": trial.status, "kimg": last.get(schema.KIMG),
            "fid": last.get(schema.FID), "best_fid": last.get(schema.BEST_FID),
            "recall": last.get(schema.RECALL), "best_recall": last.get(schema.BEST_RECALL),
            "stage": last.get("seg_stage"), "epoch": last.get("seg_epoch"),
            "seg_acc": last.get(schema.SEG_ACC), "seg_miou": last.get(schema.SEG_MIOU),
            "failures": trial.num_failures, "config": _short_config(trial.config),
        })
    return rows


def _short_config(config: dict[str, Any]) -> str:
    values = config.get(space.TRIAL_KEY, config)
    return " ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("__"))


def load_and_check(path: str, dataset: str | None = None) -> StudySpec:
    """Load a spec file, optionally pointing it at another dataset, and check it can run."""
    if dataset is None:
        spec = load_spec(path)
    else:
        spec = load_spec(path, check_dataset=False)
        import yaml

        raw = dict(yaml.safe_load(Path(path).read_text()))
        raw["dataset"] = str(Path(dataset).absolute())
        spec = parse_spec(raw, source=path)
    space.check_supported(spec)
    return spec

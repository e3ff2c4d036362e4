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

The parent run carries the study's answer (microtune/tracking/dashboard.py): the spec (``spec/``),
a summary table (``study_summary.json``, one row per trial, rewritten whenever a trial ends) and
the study's best values as metrics; when the study ends, ``analysis/report.py`` runs on the launch
and its figures, tables and importances are logged there too. The launch prints the MLflow
address that opens the study (trials grouped, FID against kimg) and, for Optuna studies, where
the Optuna study is stored for optuna-dashboard.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microtune.errors import MicrotuneError
from microtune.io import atomic_write_json, atomic_write_text
from microtune.sweep import families, space
from microtune.sweep.contract import RUN_ID_KEY, TrialContext, git_sha, trial_run_name
from microtune.sweep.spec import StudySpec, load_spec, parse_spec
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
    optuna_storage: str | None = None    # Optuna studies: the storage URL and study name there
    optuna_study: str | None = None
    files_dir: str | None = None         # the parent run's local files (summary, spec, analysis)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(directory / STUDY_FILE, self.__dict__, indent=1)

    @classmethod
    def load(cls, directory: Path) -> StudyRecord:
        path = directory / STUDY_FILE
        if not path.is_file():
            raise MicrotuneError(f"{directory}: not a microtune study (no {STUDY_FILE}); give a study name or its directory.")
        return cls(**json.loads(path.read_text()))


# -- Tune glue ---------------------------------------------------------------------------------------

class _TuneSession:
    """:class:`microtune.sweep.contract.Session` backed by Ray Tune."""

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


def _trainable(config: dict[str, Any], context: TrialContext, family: families.Family) -> None:
    """Tune's function trainable: the Ray config → the trial's overrides → the family's trial.
    ``family`` travels with the trainable (a family registered only in the driver reaches workers)."""
    family.run_trial(space.trial_overrides(context.spec, config), context, _TuneSession())


def _with_family(spec: StudySpec, context: TrialContext):
    from ray import tune

    trainable = tune.with_parameters(_trainable, context=context, family=families.get(spec.model))
    return tune.with_resources(trainable, {"cpu": spec.cpu, "gpu": spec.gpu})


def _progress_callback(total: int, spec: StudySpec, record: StudyRecord, spool_dir: Path | None):
    from ray.tune import Callback

    metric, mode = _headline(spec)
    family = families.get(spec.model)
    tracking_uri = record.tracking_uri

    class Progress(Callback):
        """Prints trials done and best so far; closes each trial's MLflow run with its final state."""

        def __init__(self) -> None:
            self.done = 0
            self.best: tuple[float, str] | None = None
            self.states: dict[str, str] = {}
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
                print(f"[{time.strftime('%H:%M:%S')}] new best {metric} {value:.4g} (trial {trial.trial_id}, "
                      f"{family.progress(result)})",
                      flush=True)

        def _finish(self, trial, status: str, trials) -> None:
            self.done += 1
            self.states[trial.trial_id] = status
            run_id = (trial.last_result or {}).get(RUN_ID_KEY)
            if run_id:
                try:
                    self.tracker.set_tags(run_id, {schema.TRIAL_STATUS: status})
                    self.tracker.end_run(run_id, "FAILED" if status == "FAILED" else "FINISHED")
                except Exception as exc:  # tracking must never stop the sweep
                    log.warning("could not close MLflow run %s: %s", run_id, exc)
            try:  # the parent run's summary table and best values, as of now
                records = [_trial_record(spec, t.trial_id, t.config, t.last_result,
                                         self.states.get(t.trial_id) or _tune_state(spec, t.status, t.config,
                                                                                     t.last_result))
                           for t in trials]
                publish_answer(self.tracker, spec, record, records)
            except Exception as exc:
                log.warning("could not update the study's summary on MLflow run %s: %s", record.parent_run_id, exc)
            best = f", best {metric} {self.best[0]:.4g}" if self.best else ""
            print(f"[{time.strftime('%H:%M:%S')}] trial {trial.trial_id} {status.lower()}: "
                  f"{self.done}/{total} done{best}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._finish(trial, _tune_state(spec, "TERMINATED", trial.config, trial.last_result), trials)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._finish(trial, "FAILED", trials)

    return Progress()


def _tune_state(spec: StudySpec, status: str, config: dict[str, Any], last: dict[str, Any] | None) -> str:
    """A trial's state in microtune's words: FINISHED, STOPPED (ended before its planned kimg: ASHA),
    FAILED, or Tune's own (RUNNING, PENDING, PAUSED)."""
    if status == "ERROR":
        return "FAILED"
    if status != "TERMINATED":
        return status
    stopped = families.get(spec.model).stopped_early(spec, space.trial_overrides(spec, config), last)
    return "STOPPED" if stopped else "FINISHED"


def _study_axes(spec: StudySpec) -> list[str]:
    """The parameters a study varies (grid axes, arms' keys, or the Optuna space) and ``seed``."""
    axes = list(spec.grid) if spec.method == "grid" else list(spec.space)
    for arm in spec.arms:
        axes += [k for k in arm if k not in axes]
    return [a for a in axes if a != "seed"] + ["seed"]


def _trial_record(spec: StudySpec, trial_id: str, config: dict[str, Any], last: dict[str, Any] | None,
                  state: str) -> dict[str, Any]:
    overrides = space.trial_overrides(spec, config or {})
    return {"trial": trial_id, "name": trial_run_name(trial_id, overrides), "axes": overrides,
            "result": dict(last or {}), "state": state}


def publish_answer(tracker: Any, spec: StudySpec, record: StudyRecord, records: list[dict[str, Any]]) -> dict:
    """Write the study's summary table and best values to its parent run (through the spool);
    returns :func:`microtune.tracking.dashboard.study_best`'s answer."""
    from microtune.tracking import dashboard

    view = families.get(spec.model).study_view(space.produced_metrics(spec))
    frame = dashboard.summary_frame(records, view, _study_axes(spec))
    files = Path(record.files_dir) if record.files_dir else None
    if files is not None:
        tracker.log_table(record.parent_run_id, frame, schema.ARTIFACT_SUMMARY, files)
    best = dashboard.study_best(frame, view)
    done = int(frame["state"].isin(("FINISHED", "STOPPED", "FAILED")).sum())
    metrics = {metric: value for metric, (value, _trial) in best.items()}
    metrics[schema.TRIALS_DONE] = done
    metrics[schema.TRIALS_FAILED] = int((frame["state"] == "FAILED").sum())
    tracker.log_metrics(record.parent_run_id, metrics, step=done)
    names = dict(zip(frame["trial"], frame["run"]))
    tracker.set_tags(record.parent_run_id, {f"{metric}_trial": names.get(trial, trial)
                                            for metric, (_value, trial) in best.items()})
    return best


def _headline(spec: StudySpec) -> tuple[str, str]:
    if spec.method == "optuna":
        return spec.objectives[0].metric, spec.objectives[0].mode
    if spec.scheduler == "asha":
        return spec.scheduler_metric, spec.scheduler_mode
    family = families.get(spec.model)
    produced = family.produced_metrics(spec)
    metric, mode = family.default_objective
    if metric in produced or not produced:
        return metric, mode
    # e.g. only kid measured: the family's first objective it produces, in its direction
    first = next((m for m in family.objective_metrics if m in produced), sorted(produced)[0])
    return first, "min" if first in schema.LOWER_IS_BETTER else "max"


def _build_tuner(spec: StudySpec, context: TrialContext, storage: str, max_concurrent: int | None,
                 callbacks: list[Any], record: StudyRecord):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    trainable = _with_family(spec, context)
    scheduler: Any = FIFOScheduler()
    if spec.scheduler == "asha":
        rungs = [int(round(r * 1000)) for r in spec.rungs_kimg]
        scheduler = ASHAScheduler(time_attr=TIME_ATTR, metric=spec.scheduler_metric, mode=spec.scheduler_mode,
                                  grace_period=rungs[0], reduction_factor=rungs[1] / rungs[0], max_t=rungs[-1])
    search_alg = None
    param_space: dict[str, Any] = {}
    num_samples = 1
    if spec.method == "grid":
        # One grid variable over whole trials: Ray resolves a param space of the form
        # {"grid_search": [...]} at the path ("config",) (ray/tune/search/variant_generator.py:
        # _split_resolved_unresolved_values, assign_value), so each trial's config is exactly one
        # trial's overrides, in order, and Tune names it "config=augpipe_bg_seed_0".
        param_space = tune.grid_search(spec.grid_trials())
    else:
        search_alg, num_samples = _optuna_search(spec, record.optuna_storage, record.optuna_study)
    concurrent = max_concurrent if max_concurrent is not None else spec.max_concurrent
    tune_config = tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                                  max_concurrent_trials=concurrent or None)
    run_config = tune.RunConfig(
        name=spec.name, storage_path=storage, verbose=0, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=spec.max_retries),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def _optuna_search(spec: StudySpec, storage_url: str | None = None, study_name: str | None = None):
    """Ray's OptunaSearch with microtune's picklable sampler; with ``storage_url``, the Optuna study
    (``study_name``) lives in that storage, where optuna-dashboard and ``optuna.load_study`` find it.
    Ray 2.60's OptunaSearch takes the storage object (``storage=``, an
    ``optuna.storages.BaseStorage``) and creates the study there with ``load_if_exists=True``; only
    the driver writes to it (the searcher runs in the driver). RDBStorage pickles by URL, so the
    searcher's checkpoints (``tuner.pkl``, experiment state) reconnect on ``sweep resume``."""
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    from microtune.sweep.samplers import make_sampler

    sampler = make_sampler(spec.sampler, seed=spec.seeds[0])
    metrics = [o.metric for o in spec.objectives]
    modes = [o.mode for o in spec.objectives]
    single = len(metrics) == 1
    extra: dict[str, Any] = {}
    if storage_url:
        extra = {"storage": optuna_storage(storage_url), "study_name": study_name or spec.name}
    searcher = OptunaSearch(space=space.optuna_distributions(spec), sampler=sampler,
                            metric=metrics[0] if single else metrics, mode=modes[0] if single else modes, **extra)
    if single and len(spec.seeds) > 1:
        return Repeater(searcher, repeat=len(spec.seeds), set_index=True), spec.num_samples * len(spec.seeds)
    return searcher, spec.num_samples


def default_optuna_storage(project_dir: Path) -> str:
    """``sqlite:////<project>/optuna.db``: beside the local MLflow store (``mlflow.db``)."""
    return "sqlite:///" + str((project_dir / "optuna.db").resolve())


def optuna_storage(url: str):
    """An Optuna RDB storage for ``url`` (SQLite waits up to 60 s for a lock instead of failing)."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # bad URL, missing driver, unreachable database
        raise MicrotuneError(f"cannot open the Optuna storage {url!r}: {str(exc).splitlines()[0]}") from exc


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
    print(f"MLflow UI: {server.uri}", flush=True)  # the study's own addresses follow once it exists
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
           detector_weights: tuple[str, ...] = (), force: bool = False, optuna_storage_url: str | None = None,
           report: bool = True, report_dir: str | os.PathLike | None = None) -> int:
    """Run a study to the end; returns 0 when every trial finished, 1 otherwise.

    ``optuna_storage_url``: where an Optuna study (``search.method: optuna``) is stored (default
    ``sqlite:////<project>/optuna.db``). ``report``: run ``analysis/report.py`` when the study ends
    and log its files to the parent run (into ``report_dir``, default beside the study).
    """
    space.check_supported(spec)
    if optuna_storage_url and spec.method != "optuna":
        raise MicrotuneError(f"--optuna-storage applies to Optuna studies only; {spec.source} has search.method: {spec.method}.")
    optuna_url = None
    if spec.method == "optuna":
        optuna_url = optuna_storage_url or default_optuna_storage(project_dir)
        optuna_storage(optuna_url)  # refused now, before anything starts, when it cannot be opened
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
    run_name = f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    optuna_name = run_name if optuna_url else None  # one Optuna study per launch: never mixes in old trials
    parent = tracker.start_study_run(
        spec.name, name=run_name,
        tags={schema.STUDY: spec.name, schema.SPEC_HASH: spec.spec_hash, schema.GIT_SHA: sha,
              schema.MODEL: spec.model, schema.DETECTOR: spec.detector if spec.protocols else "none",
              schema.OPTUNA_STORAGE: optuna_url, schema.OPTUNA_STUDY: optuna_name},
        params={schema.STUDY_TRIALS: spec.trial_count(), schema.STUDY_SEARCH_METHOD: spec.method,
                schema.STUDY_SCHEDULER: spec.scheduler, schema.PARAM_DATASET: str(spec.dataset),
                schema.STUDY_SEEDS: ",".join(map(str, spec.seeds))},
    )
    files = (study_dir / "parent-run") if study_dir is not None else project_dir / "runs" / "parent-runs" / spec.name
    record = StudyRecord(spec=spec.raw, spec_source=spec.source, dataset=str(spec.dataset), tracking_uri=uri,
                         experiment_id=experiment_id, parent_run_id=parent, git_sha=sha, cache_dir=cache_dir,
                         detector_weights=list(detector_weights), optuna_storage=optuna_url,
                         optuna_study=optuna_name, files_dir=str(files))
    if study_dir is not None:
        record.save(study_dir)
    _log_spec(tracker, spec, record)
    _publish_view(tracker, spec, record)
    for line in addresses(record, spec.name):
        print(line, flush=True)
    return _run(spec, record, tracker, storage, address, max_concurrent, restore=False, report=report,
                report_dir=report_dir)


def resume(name_or_path: str, *, project_dir: Path, address: str | None = None, storage: str | None = None,
           report: bool = True) -> int:
    """Finish a study whose driver stopped: unfinished and errored trials continue from checkpoints."""
    study_dir = resolve_study(name_or_path, project_dir, storage)
    record = StudyRecord.load(study_dir)
    spec = parse_spec(record.spec, source=record.spec_source)
    spec = _with_dataset(spec, record.dataset)
    from microtune.tracking.mlflow_io import Tracker

    tracker = Tracker(record.tracking_uri, spool_dir=study_dir / "driver-spool")
    for line in addresses(record, spec.name):
        print(line, flush=True)
    return _run(spec, record, tracker, str(study_dir.parent), address, None, restore=True, report=report)


def addresses(record: StudyRecord, name: str) -> list[str]:
    """Where to look at a study: its MLflow view, its parent run (the answer), its Optuna study."""
    from microtune.tracking import dashboard

    lines = []
    view = dashboard.study_url(record.tracking_uri, record.experiment_id)
    if view is None:
        lines.append(f"MLflow store {record.tracking_uri}: serve it with 'mlflow server --backend-store-uri "
                     f"{record.tracking_uri}' to open experiment {name!r} in a browser")
    else:
        lines.append(f"MLflow study view: {view}")
        answer = dashboard.run_url(record.tracking_uri, record.experiment_id, record.parent_run_id,
                                   schema.ARTIFACT_SUMMARY)
        if answer:
            lines.append(f"MLflow study answer (summary table; figures under analysis/): {answer}")
    if record.optuna_storage:
        lines.append(f"Optuna study {record.optuna_study!r}: optuna-dashboard {record.optuna_storage}")
    return lines


def _publish_view(tracker: Any, spec: StudySpec, record: StudyRecord) -> None:
    """The experiment's saved view that the study address opens (see microtune/tracking/dashboard.py)."""
    from microtune.tracking import dashboard

    view = families.get(spec.model).study_view(space.produced_metrics(spec))
    _key, tag, value = dashboard.view_tag(record.experiment_id, view, int(time.time() * 1000))
    try:
        tracker.set_experiment_tag(spec.name, tag, value)
    except MicrotuneError as exc:  # the study runs without its view; the runs page still lists it
        log.warning("%s", exc)


def _log_spec(tracker: Any, spec: StudySpec, record: StudyRecord) -> None:
    """The spec as written (the YAML file's text) and resolved (JSON) as the parent run's ``spec/``."""
    import yaml

    folder = Path(record.files_dir) / schema.ARTIFACT_SPEC_DIR
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(spec.source)
    text = source.read_text() if source.is_file() else yaml.safe_dump(spec.raw, sort_keys=False)
    for name, content in ((f"{spec.name}.yaml", text),
                          ("resolved_spec.json", json.dumps(spec.to_dict(), indent=1, default=str))):
        atomic_write_text(folder / name, content)
    tracker.log_artifact(record.parent_run_id, folder, schema.ARTIFACT_SPEC_DIR)


def _run(spec: StudySpec, record: StudyRecord, tracker: Any, storage: str, address: str | None,
         max_concurrent: int | None, *, restore: bool, report: bool = True,
         report_dir: str | os.PathLike | None = None) -> int:
    # Tune saves its experiment state at most every 10 s by default; a driver killed in between
    # loses what happened since. Every 2 s costs little with tens of trials.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    from ray import tune

    context = TrialContext(spec=spec, tracking_uri=record.tracking_uri, experiment_id=record.experiment_id,
                           parent_run_id=record.parent_run_id, git_sha=record.git_sha, cache_dir=record.cache_dir,
                           detector_weights=tuple(record.detector_weights))
    _init_ray(address)
    spool = Path(storage) / spec.name / "callback-spool" if "://" not in storage else None
    progress = _progress_callback(spec.trial_count(), spec, record, spool)
    callbacks = [progress]
    print(f"study {spec.name}: {spec.trial_count()} trials, results in {storage}/{spec.name}", flush=True)
    if restore:
        path = f"{storage}/{spec.name}"
        tuner = tune.Tuner.restore(path, trainable=_with_family(spec, context), resume_unfinished=True,
                                   resume_errored=True)
        # callbacks are not part of the restored state: attach ours again
        tuner._local_tuner._run_config.callbacks = callbacks
    else:
        tuner = _build_tuner(spec, context, storage, max_concurrent, callbacks, record)
    results = tuner.fit()
    failed = sum(1 for r in results if r.error is not None)
    best: dict = {}
    try:  # the final summary, from Tune's results (also trials finished before a resume)
        records = []
        for i, r in enumerate(results):
            last = r.metrics or {}
            trial_id = str(last.get("trial_id") or (Path(r.path).name if r.path else f"trial-{i}"))
            state = "FAILED" if r.error is not None else _tune_state(spec, "TERMINATED", r.config or {}, last)
            records.append(_trial_record(spec, trial_id, r.config or {}, last, state))
        best = publish_answer(progress.tracker, spec, record, records)
        progress.tracker.flush()
    except Exception as exc:  # tracking must never fail the study
        log.warning("could not write the study's summary to MLflow run %s: %s", record.parent_run_id, exc)
    tracker.set_tags(record.parent_run_id, {schema.TRIALS_FAILED: str(failed), schema.STUDY_TRIALS: str(len(results))})
    tracker.flush()
    if "://" not in storage:
        _deliver_leftovers(Path(storage) / spec.name, record.tracking_uri, spec.name)
    if report:
        _report(spec, record, tracker, report_dir)
    tracker.end_run(record.parent_run_id, "FAILED" if failed else "FINISHED")
    tracker.flush()
    print(f"study {spec.name}: {len(results) - failed}/{len(results)} trials finished; "
          f"MLflow experiment {spec.name!r} at {record.tracking_uri}", flush=True)
    for metric, (value, trial) in best.items():
        print(f"  the study's {metric}: {value:.4g} (trial {trial})", flush=True)
    for line in addresses(record, spec.name):
        print(line, flush=True)
    return 1 if failed else 0


def _report(spec: StudySpec, record: StudyRecord, tracker: Any, report_dir: str | os.PathLike | None) -> Path | None:
    """Run analysis/report.py on this launch; log its files (and importances) to the parent run."""
    import subprocess
    import sys

    import microtune

    script = Path(microtune.__file__).resolve().parents[1] / "analysis" / "report.py"
    if not script.is_file():
        print("analysis scripts are not part of this build: the parent run holds no figures", flush=True)
        return None
    parent = tracker.resolve(record.parent_run_id)
    if parent is None:
        print(f"the parent run is not in MLflow yet; run 'python {script} --launch <its id>' later", flush=True)
        return None
    base = Path(record.files_dir) if record.files_dir else Path.cwd() / "runs" / "parent-runs" / spec.name
    out = Path(report_dir).absolute() if report_dir else base / schema.ARTIFACT_ANALYSIS_DIR
    if out.exists() and report_dir is None:
        shutil.rmtree(out)  # figures of an earlier resume of this launch
    start = time.perf_counter()
    print(f"analysing the study (analysis/report.py) into {out}", flush=True)
    result = subprocess.run([sys.executable, str(script), "--tracking-uri", record.tracking_uri,
                             "--experiment", spec.name, "--out", str(out), "--launch", parent],
                            capture_output=True, text=True, check=False)
    for line in result.stderr.splitlines():
        if line.startswith(("warning:", "error:")):
            print(f"  analysis {line}", flush=True)
    if result.returncode != 0 or not out.is_dir():
        print("analysis failed; the parent run holds no figures", flush=True)
        return None
    tracker.log_artifact(record.parent_run_id, out, schema.ARTIFACT_ANALYSIS_DIR)
    table = out / "importance.csv"
    if table.is_file():
        import pandas as pd

        frame = pd.read_csv(table)
        metrics = {f"{schema.IMPORTANCE_PREFIX}.{col[len('importance '):]}.{row['parameter']}": float(row[col])
                   for _, row in frame.iterrows() for col in frame.columns
                   if col.startswith("importance ") and pd.notna(row[col])}
        tracker.log_metrics(record.parent_run_id, metrics, step=0)
    tracker.flush()
    print(f"analysis logged to the parent run ({time.perf_counter() - start:.0f} s)", flush=True)
    return out


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
    """One row per trial: trial, state, the family's status columns from the trial's last result
    (GAN: kimg, latest and best fid/recall; segmentation: stage, epoch, pixel accuracy, mean IoU),
    failures, config. Every row has the same keys, in table order."""
    from ray.tune import ExperimentAnalysis

    study_dir = resolve_study(name_or_path, project_dir, storage)
    model = StudyRecord.load(study_dir).spec.get("model", families.DEFAULT)
    try:
        family = families.get(model)
        columns = family.status_columns or tuple((m, m) for m in family.objective_metrics)
    except MicrotuneError:  # a family registered only in the process that launched the study
        columns = ()
    analysis = ExperimentAnalysis(str(study_dir))
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        rows.append({"trial": trial.trial_id, "state": _live_state(trial.status, last),
                     **{c: last.get(k) for c, k in columns},
                     "failures": trial.num_failures, "config": _short_config(trial.config)})
    return rows


def _live_state(state: str, last: dict[str, Any]) -> str:
    """Ray's saved experiment state files a running trial as PENDING (``Trial.__setstate__``, so that
    a resumed study restarts it); a trial whose last result came from a process alive on this machine
    is RUNNING. (A worker on another node cannot be checked from here: it stays PENDING.)"""
    if state != "PENDING" or last.get("hostname") != socket.gethostname() or not last.get("pid"):
        return state
    try:
        os.kill(int(last["pid"]), 0)
    except PermissionError:  # alive, another user's
        return "RUNNING"
    except (OSError, ValueError):
        return state
    return "RUNNING"


def _short_config(config: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items() if not k.startswith("__"))


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

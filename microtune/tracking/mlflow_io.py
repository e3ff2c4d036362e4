"""The one module of microtune that imports mlflow (lazily: importing this module is cheap).

Write side: :class:`Tracker` logs studies (parent runs) and trials (child runs tagged
``mlflow.parentRunId``) through ``MlflowClient`` with explicit run ids, because trials run in Ray
worker processes with no shared active-run state. Every write goes first to an fsync'd spool
(:mod:`microtune.tracking.spool`) and is acknowledged there once MLflow accepted it; an unreachable
server only delays delivery: :meth:`Tracker.flush` or :func:`sync_spools` replays what is pending.
Run ids handed out while the server was unreachable are ``"local-<key>"``; every method accepts
them, and they resolve to the MLflow run id (tag ``microtune.run_key``) once delivered.
:meth:`Tracker.log_table` writes MLflow table artifacts (replacing, through the spool);
:meth:`Tracker.set_experiment_tag` (not spooled) writes the study's saved UI view.

Read side (for analysis/): :func:`load_runs`, :func:`load_histories`, :func:`list_artifacts`,
:func:`download_artifact`. Server management is re-exported from :mod:`.server`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

from microtune.errors import MicrotuneError
from microtune.io import atomic_output
from microtune.tracking import schema
from microtune.tracking.server import LocalServer, ensure_local_server, find_local_server, health_ok  # noqa: F401
from microtune.tracking.spool import SPOOL_FILENAME, Spool, find_spools  # noqa: F401
from microtune.tracking.values import (  # noqa: F401
    KEY_LIMIT, METRICS_PER_BATCH, PARAM_VALUE_LIMIT, PARAMS_PER_BATCH, TAG_VALUE_LIMIT, TRUNCATION_MARKER,
    chunks, clip_key, flatten, shape_params, shape_tags,
)

log = logging.getLogger(__name__)

LOCAL_PREFIX = "local-"
# Client-side HTTP limits the Tracker sets unless the user did: the spool does the retrying, so a
# dead server costs a training loop one fast failure, not MLflow's default minutes of backoff.
CLIENT_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                   "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # no per-run links in sweep logs
READER_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
                   "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
_PERMANENT = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS",
                        "INVALID_STATE", "BAD_REQUEST", "MALFORMED_REQUEST", "ENDPOINT_NOT_FOUND"})
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


class _Unresolved(Exception):
    """A local run id whose run is not in MLflow yet (its creation is still pending)."""


def _is_transient(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code not in _PERMANENT
    return isinstance(exc, OSError)  # requests' errors are OSErrors


def _artifact_location(tracking_uri: str, name: str) -> str | None:
    """For a sqlite store, artifacts beside the database (MLflow's default is ./mlruns of the cwd)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        return (db.parent / "mlartifacts" / safe).resolve().as_uri()
    return None


# -- write side --------------------------------------------------------------------------------------
class Tracker:
    """Writes studies and trials to MLflow through a durable spool.

    Parameters
    ----------
    tracking_uri : str
        ``http://host:port`` of an MLflow server, or an absolute ``sqlite:////…`` URI (one writer
        process only: many processes on one SQLite file race).
    spool_dir : path-like, optional
        Directory of the spool file (a trial's own directory, the study directory). None keeps
        the spool in memory: nothing is lost while the process lives, everything when it dies.
    offline_backoff_s : float
        After a failed delivery, writes are only spooled for this many seconds before the next
        attempt, so training never waits on a dead server more than one fast failure per period.
    """

    def __init__(self, tracking_uri: str, *, spool_dir: str | os.PathLike | None = None,
                 offline_backoff_s: float = 30.0):
        for name, value in CLIENT_HTTP_ENV.items():
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.spool = Spool(spool_dir)
        self.offline_backoff_s = offline_backoff_s
        self._retry_at = 0.0
        self._offline_warned = False
        self._lock = threading.RLock()  # Ray runs function trainables in a thread: be safe anyway
        self._experiments: dict[str, str] = {}      # name -> experiment id
        self._keymap: dict[str, str] = {}           # run key -> MLflow run id
        self._id2key: dict[str, str] = {}           # MLflow run id -> run key
        self._key_experiment: dict[str, str] = {}   # run key -> experiment name
        self._steps: set[tuple[str, str, int]] = set()  # (run, metric key, step) already spooled
        for rec in self.spool.records:
            self._index(rec)

    # -- public API --------------------------------------------------------------------------------
    def ensure_experiment(self, name: str) -> str:
        """The id of experiment ``name``, created when missing (needs the server to answer)."""
        try:
            return self._experiment_id(name)
        except MicrotuneError:
            raise
        except Exception as exc:
            raise MicrotuneError(f"cannot reach MLflow at {self.tracking_uri} to create experiment {name!r}: {exc}") from exc

    def start_study_run(self, experiment: str, *, name: str | None = None, tags: Mapping | None = None,
                        params: Mapping | None = None) -> str:
        """Start the parent run of a launch (tag ``microtune.role=study``); returns its run id."""
        return self._start(experiment, name, None, schema.ROLE_STUDY, tags, params)

    def start_trial_run(self, experiment: str, *, parent_run_id: str, name: str | None = None,
                        tags: Mapping | None = None, params: Mapping | None = None, resume: bool = True) -> str:
        """Start a trial's child run under ``parent_run_id`` (sets ``mlflow.parentRunId``, role=trial).

        With ``resume`` (default), a run that this spool already started for a trial of the same
        ``name`` under the same parent is continued instead (marked RUNNING again, its id
        returned): a trial retried from its checkpoint in a new process, with the same spool
        directory, keeps one continuous run.
        """
        if not parent_run_id:
            raise MicrotuneError("a trial run needs the parent (study) run id.")
        with self._lock:
            previous = self._previous_trial(experiment, name, parent_run_id) if resume and name else None
            if previous is not None:
                self.resume_run(previous)
                if tags:
                    self.set_tags(previous, tags)
                return self._ref(previous)
            return self._start(experiment, name, parent_run_id, schema.ROLE_TRIAL, tags, params)

    def previous_trial_run(self, experiment: str, name: str, parent_run_id: str) -> str | None:
        """The run this spool last started for a trial called ``name`` under ``parent_run_id`` (its
        id, or a local reference while undelivered), or None."""
        with self._lock:
            return self._previous_trial(experiment, name, parent_run_id)

    def _previous_trial(self, experiment: str, name: str, parent: str) -> str | None:
        parent_id = self._identity(self._ref(parent))
        for rec in reversed(self.spool.records):
            if (rec["op"] == "create_run" and rec["experiment"] == experiment and rec["name"] == name
                    and rec["tags"].get(schema.ROLE) == schema.ROLE_TRIAL
                    and self._identity(rec["tags"].get(schema.PARENT_RUN_ID, "")) == parent_id):
                return LOCAL_PREFIX + rec["key"]
        return None

    def log_params(self, run_id: str, params: Mapping) -> None:
        """Log flattened, stringified, truncated params, in batches of at most 100."""
        items = list(shape_params(params).items())
        for chunk in chunks(items, PARAMS_PER_BATCH):
            self.spool.append("log_batch", run=self._ref(run_id), params=chunk)
        self._deliver()

    def set_tags(self, run_id: str, tags: Mapping) -> None:
        """Set tags on a run (values stringified and truncated)."""
        items = list(shape_tags(tags).items())
        for chunk in chunks(items, PARAMS_PER_BATCH):
            self.spool.append("log_batch", run=self._ref(run_id), tags=chunk)
        self._deliver()

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Log metrics at ``step`` (microtune: images shown to D). A (key, step) already logged to
        this run through this spool is skipped: replays and re-reports never duplicate a point."""
        ref, now_ms = self._ref(run_id), int(time.time() * 1000)
        rows = []
        for key, value in metrics.items():
            mark = (self._identity(ref), str(key), int(step))
            if mark in self._steps:
                log.debug("skipping %s at step %s of %s: already logged", key, step, run_id)
                continue
            self._steps.add(mark)
            rows.append([clip_key(str(key)), float(value), now_ms, int(step)])
        for chunk in chunks(rows, METRICS_PER_BATCH):
            self.spool.append("log_batch", run=ref, metrics=chunk)
        self._deliver()

    def log_artifact(self, run_id: str, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload a file or directory (kept where it is until delivered: do not delete it)."""
        self.spool.append("log_artifact", run=self._ref(run_id), path=str(Path(path).resolve()),
                          artifact_path=artifact_path)
        self._deliver()

    def log_table(self, run_id: str, frame, artifact_file: str, local_dir: str | os.PathLike) -> Path:
        """Log ``frame`` as an MLflow table artifact ``artifact_file`` (a ``.json``), replacing it.

        The file is what ``MlflowClient.log_table`` writes (pandas ``to_json(orient="split")``, the
        run tag ``mlflow.loggedArtifacts`` naming it a table), so the UI shows it as a table and
        ``MlflowClient.load_table`` reads it; unlike ``log_table`` a second call replaces the rows
        instead of appending, and the upload goes through the spool. The file is written
        atomically under ``local_dir`` and kept there (the spool uploads it from there).
        """
        if not artifact_file.endswith(".json"):
            raise MicrotuneError(f"an MLflow table artifact must end in .json, got {artifact_file!r}.")
        path = Path(local_dir) / artifact_file
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            frame.to_json(tmp, orient="split", index=False, date_format="iso")
        parent = os.path.dirname(artifact_file) or None
        self.log_artifact(run_id, path, parent)
        self.set_tags(run_id, {schema.LOGGED_ARTIFACTS: json.dumps([{"path": artifact_file, "type": "table"}])})
        return path

    def set_experiment_tag(self, experiment: str, key: str, value: str) -> None:
        """Set a tag on an experiment now (not spooled: needs the server to answer)."""
        try:
            self.client.set_experiment_tag(self._experiment_id(experiment), key, value)
        except MicrotuneError:
            raise
        except Exception as exc:
            raise MicrotuneError(f"cannot set tag {key!r} of MLflow experiment {experiment!r} at "
                                 f"{self.tracking_uri}: {str(exc).splitlines()[0]}") from exc

    def find_run(self, experiment: str, tags: Mapping[str, str]) -> tuple[str, int] | None:
        """A delivered run of ``experiment`` carrying all ``tags``, newest first, with the highest
        step it has logged for ``kimg`` (-1 if none); None when there is none or the server is down.

        A trial that Tune restarted without its checkpoint uses this to continue its own run.
        """
        try:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                return None
            query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
            runs = self.client.search_runs([exp.experiment_id], filter_string=query, max_results=1,
                                           order_by=["attributes.start_time DESC"])
            if not runs:
                return None
            run_id = runs[0].info.run_id
            history = self.client.get_metric_history(run_id, schema.KIMG)
            return run_id, max((m.step for m in history), default=-1)
        except Exception as exc:
            if _is_transient(exc):
                return None
            raise

    def resume_run(self, run_id: str) -> None:
        """Mark a run RUNNING again (a trial restored from its checkpoint continues its run)."""
        self.spool.append("set_status", run=self._ref(run_id), status="RUNNING", end_time=None)
        self._deliver()

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Terminate a run with ``status`` (FINISHED, FAILED or KILLED) and try to deliver all."""
        if status not in RUN_STATUSES:
            raise MicrotuneError(f"run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}.")
        self.spool.append("set_status", run=self._ref(run_id), status=status, end_time=int(time.time() * 1000))
        self._deliver(force=True)

    def flush(self) -> int:
        """Deliver every pending record now, ignoring the offline back-off; returns how many remain."""
        self._deliver(force=True)
        return self.pending

    @property
    def pending(self) -> int:
        """Records written to the spool and not yet accepted by MLflow."""
        return len(self.spool.pending())

    def resolve(self, run_id: str) -> str | None:
        """The MLflow run id of ``run_id`` (a local id resolves once its run was delivered)."""
        try:
            return self._real(run_id)
        except _Unresolved:
            return None
        except Exception as exc:  # server unreachable
            if _is_transient(exc):
                return None
            raise

    # -- internals ---------------------------------------------------------------------------------
    def _start(self, experiment, name, parent, role, tags, params) -> str:
        key = uuid.uuid4().hex
        base = {schema.ROLE: role, schema.RUN_KEY: key}
        if parent is not None:
            base[schema.PARENT_RUN_ID] = self._ref(parent)
        self.spool.append("create_run", key=key, experiment=experiment, name=name, tags=base,
                          start_time=int(time.time() * 1000))
        self._key_experiment[key] = experiment
        ref = LOCAL_PREFIX + key
        extra = {k: v for k, v in shape_tags(tags).items() if k not in base}
        for chunk in chunks(list(extra.items()), PARAMS_PER_BATCH):
            self.spool.append("log_batch", run=ref, tags=chunk)
        for chunk in chunks(list(shape_params(params).items()), PARAMS_PER_BATCH):
            self.spool.append("log_batch", run=ref, params=chunk)
        self._deliver()
        return self._keymap.get(key, ref)

    def _index(self, rec: dict) -> None:
        if rec["op"] == "create_run":
            self._key_experiment[rec["key"]] = rec["experiment"]
            ack = self.spool.acks.get(rec["id"])
            if ack and ack.get("run_id"):
                self._remember(rec["key"], ack["run_id"])
        elif rec["op"] == "log_batch":
            for key, _value, _t, step in rec.get("metrics", ()):
                self._steps.add((self._identity(rec["run"]), key, int(step)))

    def _ref(self, run_id: str) -> str:
        """Normalise a run id for a new record: a resolved local id becomes the MLflow id."""
        if run_id.startswith(LOCAL_PREFIX):
            return self._keymap.get(run_id[len(LOCAL_PREFIX):], run_id)
        return run_id

    def _identity(self, ref: str) -> str:
        """One name per run whichever id it is referred to by (its key when known)."""
        if ref.startswith(LOCAL_PREFIX):
            return ref[len(LOCAL_PREFIX):]
        return self._id2key.get(ref, ref)

    def _remember(self, key: str, run_id: str) -> str:
        self._keymap[key] = run_id
        self._id2key[run_id] = key
        return run_id

    def _experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                exp_id = self.client.create_experiment(name, artifact_location=_artifact_location(self.tracking_uri, name))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage != "active":
                raise MicrotuneError(f"MLflow experiment {name!r} is deleted at {self.tracking_uri}; restore it or choose another study name.")
            exp_id = found.experiment_id
        self._experiments[name] = exp_id
        return exp_id

    def _find_by_key(self, key: str, experiment: str | None) -> str | None:
        names = [experiment] if experiment else list(self._experiments)
        exp_ids = [self._experiment_id(n) for n in names]
        if not exp_ids:
            exp_ids = [e.experiment_id for e in self.client.search_experiments()]
        runs = self.client.search_runs(exp_ids, filter_string=f"tags.`{schema.RUN_KEY}` = '{key}'", max_results=1)
        return self._remember(key, runs[0].info.run_id) if runs else None

    def _real(self, ref: str) -> str:
        if not ref.startswith(LOCAL_PREFIX):
            return ref
        key = ref[len(LOCAL_PREFIX):]
        found = self._keymap.get(key) or self._find_by_key(key, self._key_experiment.get(key))
        if found is None:
            raise _Unresolved(ref)
        return found

    def _deliver(self, *, force: bool = False) -> None:
        with self._lock:
            self._deliver_locked(force)

    def _deliver_locked(self, force: bool) -> None:
        if not force and time.monotonic() < self._retry_at:
            return
        for rec in self.spool.pending():
            try:
                result = self._apply(rec)
            except _Unresolved as exc:
                self._offline(f"run {exc} is not in MLflow yet")
                return
            except Exception as exc:
                if not _is_transient(exc):
                    if isinstance(exc, MicrotuneError) or hasattr(exc, "error_code"):
                        warnings.warn(f"MLflow refused a {rec['op']} record ({exc}); it is dropped from the spool.",
                                      RuntimeWarning, stacklevel=3)
                        self.spool.ack(rec["id"], error=str(exc)[:500])
                        continue
                    raise
                self._offline(str(exc).splitlines()[0][:300])
                return
            self.spool.ack(rec["id"], **result)
        if self._offline_warned:
            log.warning("MLflow at %s is reachable again; the spool is delivered.", self.tracking_uri)
        self._retry_at, self._offline_warned = 0.0, False

    def _offline(self, why: str) -> None:
        self._retry_at = time.monotonic() + self.offline_backoff_s
        if not self._offline_warned:
            where = self.spool.path or "memory"
            log.warning("MLflow at %s is unavailable (%s); spooling to %s (%d pending).",
                        self.tracking_uri, why, where, self.pending)
            self._offline_warned = True

    def _apply(self, rec: dict) -> dict:
        op = rec["op"]
        if op == "create_run":
            return {"run_id": self._create(rec)}
        run_id = self._real(rec["run"])
        if op == "log_batch":
            from mlflow.entities import Metric, Param, RunTag

            self.client.log_batch(
                run_id,
                metrics=[Metric(k, v, t, s) for k, v, t, s in rec.get("metrics", ())],
                params=[Param(k, v) for k, v in rec.get("params", ())],
                tags=[RunTag(k, v) for k, v in rec.get("tags", ())],
                synchronous=True,
            )
        elif op == "set_status":
            if rec["end_time"] is None:
                self.client.update_run(run_id, status=rec["status"])
            else:
                self.client.set_terminated(run_id, status=rec["status"], end_time=rec["end_time"])
        elif op == "log_artifact":
            path = Path(rec["path"])
            if not path.exists():
                raise MicrotuneError(f"artifact {path} no longer exists")
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), rec["artifact_path"])
            else:
                self.client.log_artifact(run_id, str(path), rec["artifact_path"])
        else:
            raise MicrotuneError(f"unknown spool operation {op!r}")
        return {}

    def _create(self, rec: dict) -> str:
        key, experiment = rec["key"], rec["experiment"]
        exp_id = self._experiment_id(experiment)
        if rec["id"] in self.spool.loaded_ids or rec.get("_tried"):  # may exist already: look first
            found = self._find_by_key(key, experiment)
            if found:
                return found
        tags = dict(rec["tags"])
        if schema.PARENT_RUN_ID in tags:
            tags[schema.PARENT_RUN_ID] = self._real(tags[schema.PARENT_RUN_ID])
        rec["_tried"] = True
        run = self.client.create_run(exp_id, start_time=rec["start_time"], tags=tags, run_name=rec["name"])
        return self._remember(key, run.info.run_id)


def sync_spools(paths: Iterable[str | os.PathLike], tracking_uri: str) -> dict[str, int]:
    """Deliver what spools at or under ``paths`` still hold (backs ``microtune sweep sync``).

    Spools are replayed in passes until no more progress is made, so a trial whose parent run
    sits in another, not yet delivered spool is delivered in a later pass.

    Returns
    -------
    dict
        ``spools``, ``delivered`` (records accepted now), ``pending`` (still undelivered).
    """
    files = find_spools(paths)
    trackers = [Tracker(tracking_uri, spool_dir=f.parent, offline_backoff_s=0.0) for f in files]
    before = sum(t.pending for t in trackers)
    remaining = before
    for _ in range(len(trackers) + 1):
        remaining_now = sum(t.flush() for t in trackers)
        if remaining_now in (0, remaining):
            remaining = remaining_now
            break
        remaining = remaining_now
    return {"spools": len(files), "delivered": before - remaining, "pending": remaining}


# -- read side ---------------------------------------------------------------------------------------
def _reader(tracking_uri: str):
    for name, value in READER_HTTP_ENV.items():
        os.environ.setdefault(name, value)
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        if not db.is_file():
            raise MicrotuneError(f"there is no MLflow database at {db} (tracking URI {tracking_uri}).")
    elif tracking_uri.startswith(("http://", "https://")) and not health_ok(tracking_uri, 5.0):
        raise MicrotuneError(f"the MLflow server at {tracking_uri} does not answer; start it or check --tracking-uri.")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _experiment(client, tracking_uri: str, experiment: str):
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage != "active":
        names = sorted(e.name for e in client.search_experiments())
        known = ", ".join(names[:10]) or "none"
        raise MicrotuneError(f"MLflow experiment {experiment!r} does not exist at {tracking_uri} (known: {known}).")
    return found


def experiment_names(tracking_uri: str) -> list[str]:
    """Names of the active experiments at ``tracking_uri``."""
    return sorted(e.name for e in _reader(tracking_uri).search_experiments())


def load_runs(tracking_uri: str, experiment: str, *, role: str | None = schema.ROLE_TRIAL, launch: str = "all"):
    """One row per run of ``experiment``: ids, status, times, then ``params.*``, ``tags.*``, ``metrics.*``.

    Parameters
    ----------
    tracking_uri, experiment : str
        Where to read, and the experiment (study) name.
    role : str or None
        ``"trial"`` (default): trial runs (tag ``microtune.role=trial``, or any child run when the
        tag is absent); ``"study"``: parent runs; None: every run.
    launch : str
        Which launches' trial runs to keep: ``"all"``, ``"latest"`` (the children of the most
        recently started study run; every trial when the experiment has no study run), or the run
        id of one study run.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, parent_run_id, run_name, status, role, start_time, end_time,
        duration_s`` (times: UTC pandas timestamps), then ``params.<k>`` (strings), ``tags.<k>``
        and ``metrics.<k>`` (the last logged value). Empty (with those base columns) if no run.

    Raises
    ------
    MicrotuneError
        Unknown experiment, missing SQLite file, unreachable server.
    """
    import pandas as pd

    client = _reader(tracking_uri)
    exp = _experiment(client, tracking_uri, experiment)
    rows, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        for run in page:
            tags = run.data.tags
            parent = tags.get(schema.PARENT_RUN_ID)
            run_role = tags.get(schema.ROLE) or (schema.ROLE_TRIAL if parent else schema.ROLE_STUDY)
            if role is not None and run_role != role:
                continue
            info = run.info
            row = {"run_id": info.run_id, "parent_run_id": parent, "run_name": info.run_name,
                   "status": info.status, "role": run_role, "start_time": info.start_time,
                   "end_time": info.end_time}
            row.update({f"params.{k}": v for k, v in run.data.params.items()})
            row.update({f"tags.{k}": v for k, v in tags.items()})
            row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
            rows.append(row)
        token = page.token
        if not token:
            break
    base = ["run_id", "parent_run_id", "run_name", "status", "role", "start_time", "end_time"]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True)
    frame["duration_s"] = (frame["end_time"] - frame["start_time"]).dt.total_seconds()
    if launch != "all" and role == schema.ROLE_TRIAL and not frame.empty:
        parent = _launch_run(client, exp, launch)
        if parent is not None:
            frame = frame[frame["parent_run_id"] == parent]
    return frame.reset_index(drop=True)


def _launch_run(client, exp, launch: str) -> str | None:
    """The study run id that ``launch`` ("latest" or a run id) names; None when there is none."""
    if launch != "latest":
        return launch
    for run in client.search_runs([exp.experiment_id], max_results=1000, order_by=["attributes.start_time DESC"]):
        tags = run.data.tags
        if tags.get(schema.ROLE) == schema.ROLE_STUDY or (schema.ROLE not in tags and schema.PARENT_RUN_ID not in tags):
            return run.info.run_id
    return None


def load_histories(tracking_uri: str, experiment: str, keys: Iterable[str], *,
                   run_ids: Iterable[str] | None = None):
    """Every logged point of ``keys`` for the trial runs of ``experiment``, tidy.

    Parameters
    ----------
    keys : iterable of str
        Metric keys (see :mod:`microtune.tracking.schema`).
    run_ids : iterable of str, optional
        Restrict to these runs (default: every trial run of the experiment).

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, key, step, value, timestamp`` sorted by run, key and step; a step logged
        twice keeps its latest value.
    """
    import pandas as pd

    client = _reader(tracking_uri)
    if run_ids is None:
        runs = load_runs(tracking_uri, experiment)
        run_ids = list(runs["run_id"])
    else:
        _experiment(client, tracking_uri, experiment)
    rows = []
    for run_id in run_ids:
        for key in keys:
            for m in client.get_metric_history(run_id, key):
                rows.append((run_id, key, int(m.step), float(m.value), int(m.timestamp)))
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])
    frame = frame.sort_values(["run_id", "key", "step", "timestamp"], kind="stable")
    frame = frame.drop_duplicates(["run_id", "key", "step"], keep="last")
    return frame.reset_index(drop=True)


def list_artifacts(tracking_uri: str, run_id: str, path: str | None = None) -> list[str]:
    """Paths of every file logged under ``path`` of a run (recursive), sorted."""
    client = _reader(tracking_uri)
    out, todo = [], [path]
    while todo:
        for info in client.list_artifacts(run_id, todo.pop()):
            (todo if info.is_dir else out).append(info.path)
    return sorted(out)


def download_artifact(tracking_uri: str, run_id: str, artifact_path: str, dst_dir: str | os.PathLike) -> Path:
    """Download one artifact (file or directory) of a run into ``dst_dir``; returns its local path."""
    import mlflow.artifacts

    _reader(tracking_uri)
    Path(dst_dir).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                    dst_path=str(dst_dir), tracking_uri=tracking_uri)
    except Exception as exc:
        raise MicrotuneError(f"cannot download artifact {artifact_path!r} of run {run_id}: {str(exc).splitlines()[0]}") from exc
    return Path(local)

"""The trial contract: what the runner hands a trial and what every trial does first.

The runner (:mod:`microtune.sweep.runner`, the one importer of ``ray.tune``) calls a family's
``run_trial(overrides, ctx, session)`` (:mod:`microtune.sweep.families`) with

- ``overrides``: the trial's values of the study's axes and ``seed``
  (:func:`microtune.sweep.space.trial_overrides`, the one place that reads a Ray config);
- ``ctx``: a :class:`TrialContext`, constant across the trials of one launch;
- ``session``: a :class:`Session`, the trial's line to the orchestrator (Tune, or a plain loop).

Every trial opens with :func:`open_trial` (its directory, ``worker.pid`` for operators and tests,
an MLflow :class:`~microtune.tracking.mlflow_io.Tracker` spooling into the trial directory, the
run name made of the trial id and its overrides) and reports to Tune with :data:`RUN_ID_KEY` so
that the driver can close the trial's MLflow run. A trial that keeps checkpoints saves a
:class:`TrialState` (atomically) in each.

Nothing here imports torch, ray or mlflow at import time.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from microtune.io import atomic_write_json, atomic_write_text
from microtune.tracking import schema

if TYPE_CHECKING:
    from microtune.sweep.spec import StudySpec

TRIAL_STATE = "microtune_trial.json"      # inside every Tune checkpoint of a checkpointing trial
RUN_ID_KEY = "mlflow_run_id"              # reported to Tune so the driver can close the run
WORKER_PID = "worker.pid"                 # in the trial directory: the process running the trial
SPOOL_DIR = "mlflow-spool"                # in the trial directory: the trial's tracking spool


class Session(Protocol):
    """What a trial needs from the orchestrator (Tune, or a plain loop in tests)."""

    def trial_id(self) -> str: ...
    def trial_dir(self) -> Path: ...
    def restored_dir(self) -> Path | None: ...
    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None: ...


@dataclass(frozen=True)
class TrialContext:
    """Everything constant across the trials of one launch (shipped to workers once)."""

    spec: StudySpec
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    git_sha: str = "unknown"
    cache_dir: str | None = None                       # caches shared by trials (metrics, seg sources)
    detector_weights: tuple[str, ...] = ()             # detector weight files or folders


@dataclass
class TrialState:
    """What a trial carries across restarts (saved in every Tune checkpoint)."""

    run_id: str | None = None
    logged_nimg: int = -1                               # highest step already logged to MLflow
    best: dict[str, float] = field(default_factory=dict)  # best_fid, best_recall
    best_nimg: int | None = None                        # when best_fid was reached

    @classmethod
    def load(cls, directory: Path | None) -> TrialState:
        if directory is None or not (directory / TRIAL_STATE).exists():
            return cls()
        return cls(**json.loads((directory / TRIAL_STATE).read_text()))

    def save(self, directory: Path) -> None:
        atomic_write_json(Path(directory) / TRIAL_STATE, self.__dict__)


def trial_run_name(trial_id: str, overrides: dict[str, Any]) -> str:
    """A trial's MLflow run name: its Tune id and its overrides, e.g. ``ab12_00001 augpipe=bg-seed=0``."""
    return f"{trial_id} " + "-".join(f"{k}={v}" for k, v in overrides.items())


@dataclass
class OpenTrial:
    """A trial's set-up: its directory, its tracker and its run name."""

    trial_id: str
    trial_dir: Path
    tracker: Any                                        # microtune.tracking.mlflow_io.Tracker
    name: str

    def tags(self, ctx: TrialContext, **extra: str) -> dict[str, str]:
        """The tags every trial run carries (study, spec hash, commit, trial id) plus ``extra``."""
        spec = ctx.spec
        return {schema.STUDY: spec.name, schema.SPEC_HASH: spec.spec_hash, schema.GIT_SHA: ctx.git_sha,
                schema.TRIAL_ID: self.trial_id, **extra}


def open_trial(ctx: TrialContext, session: Session, overrides: dict[str, Any]) -> OpenTrial:
    """Create the trial directory, write ``worker.pid``, open a tracker spooling there."""
    from microtune.tracking.mlflow_io import Tracker

    trial_id = session.trial_id()
    trial_dir = Path(session.trial_dir())
    trial_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(trial_dir / WORKER_PID, str(os.getpid()))  # for operators (and tests) to find the process
    tracker = Tracker(ctx.tracking_uri, spool_dir=trial_dir / SPOOL_DIR)
    return OpenTrial(trial_id=trial_id, trial_dir=trial_dir, tracker=tracker, name=trial_run_name(trial_id, overrides))


def git_sha(project_dir: Path) -> str:
    """The project's commit, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
